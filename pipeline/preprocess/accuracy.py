"""Score preprocessing against the phantom's ground truth: mask Dice, bias-field correlation,
registration error in mm. Used by the accuracy benchmark and by the tests."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from pipeline.templates import MNI_BOX_AFFINE, template_on_box

__all__ = ["dice", "bias_correlation", "registration_error_mm", "canonical_array"]


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


def registration_error_mm(estimated: str | Path, truth: str | Path, step: int = 2) -> float:
    """Mean distance (mm) between where two template->T1w transforms send the template's brain voxels.

    Both are ITK transform files in the fMRIPrep/ANTs convention (template points -> T1w points).
    """
    est, true = sitk.ReadTransform(str(estimated)), sitk.ReadTransform(str(truth))
    brain = template_on_box()["brain"][::step, ::step, ::step]
    ijk = np.argwhere(brain) * step
    ras = ijk @ MNI_BOX_AFFINE[:3, :3].T + MNI_BOX_AFFINE[:3, 3]
    lps = ras * np.array([-1.0, -1.0, 1.0])
    errors = [np.linalg.norm(np.subtract(est.TransformPoint(tuple(p)), true.TransformPoint(tuple(p)))) for p in lps.tolist()]
    return float(np.mean(errors))
