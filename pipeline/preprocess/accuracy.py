"""Score preprocessing against the phantom's ground truth: mask Dice, bias-field correlation,
registration error in mm. Used by the accuracy benchmark and by the tests."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from pipeline.mni import MNI_BOX_AFFINE, template_on_box

__all__ = [
    "dice",
    "bias_correlation",
    "registration_error_mm",
    "motion_error_mm",
    "template_brain_points_lps",
    "transform_points",
    "canonical_array",
]


def canonical_array(path: str | Path) -> np.ndarray:
    """A NIfTI file's data in canonical RAS orientation (as the chain sees it)."""
    return np.asanyarray(nib.as_closest_canonical(nib.load(str(path))).dataobj)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float(2.0 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def bias_correlation(estimated_log_bias: np.ndarray, true_bias: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of the estimated and the true log bias field inside ``mask``."""
    mask = mask.astype(bool) & (true_bias > 0)
    return float(np.corrcoef(estimated_log_bias[mask], np.log(true_bias[mask]))[0, 1])


def template_brain_points_lps(step: int = 2) -> np.ndarray:
    """Every ``step``-th brain voxel of the 2 mm template box, as (N, 3) LPS points (ITK's world)."""
    brain = template_on_box()["brain"][::step, ::step, ::step]
    ras = (np.argwhere(brain) * step) @ MNI_BOX_AFFINE[:3, :3].T + MNI_BOX_AFFINE[:3, 3]
    return ras * np.array([-1.0, -1.0, 1.0])


def transform_points(transform: str | Path, points_lps: np.ndarray) -> np.ndarray:
    """Where an ITK transform file sends (N, 3) LPS points."""
    tx = sitk.ReadTransform(str(transform))
    return np.array([tx.TransformPoint(tuple(p)) for p in np.asarray(points_lps, float).tolist()])


def registration_error_mm(estimated: str | Path, truth: str | Path, step: int = 2) -> float:
    """Mean distance (mm) between where two template->T1w transforms send the template's brain voxels.

    Both are ITK transform files in the fMRIPrep/ANTs convention (template points -> T1w points).
    """
    points = template_brain_points_lps(step)
    return float(np.linalg.norm(transform_points(estimated, points) - transform_points(truth, points), axis=1).mean())


def motion_error_mm(estimated: str | Path, reference: str | Path, motion_ras: np.ndarray, step: int = 2) -> float:
    """Registration error of a head moved by a known rigid motion (:func:`pipeline.phantom.real_head.move_head`).

    The truth is the motion composed with the unmoved head's own template->T1w transform ``reference``:
    a template point goes to the unmoved head, then moves with it. Mean distance (mm) at the template's
    brain voxels.
    """
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    motion_lps = flip @ np.asarray(motion_ras, float) @ flip
    points = template_brain_points_lps(step)
    on_head = transform_points(reference, points)
    truth = on_head @ motion_lps[:3, :3].T + motion_lps[:3, 3]
    return float(np.linalg.norm(transform_points(estimated, points) - truth, axis=1).mean())
