"""The QC gate: after each image, its QC numbers are checked against documented thresholds; an image that is
not a usable brain gets status ``qc_failed`` (its outputs and QC picture are kept for inspection) and every
later stage leaves it out unless asked to include it.

Each check, and why (thresholds in ``configs/preprocess.yaml``, section ``qc``; calibrated on the phantom's
five sites and on a real head, Colin27, moved onto three scanners' grids):

* ``mask_volume_ml``: the skull-strip mask in native space must be an adult brain (cerebellum and brainstem
  included): 700-2,800 ml. Good heads gave 1,490-2,250 ml (the phantom is built on the enlarged MNI152
  average; Colin27 1,950), pure noise 4,200-5,000 ml, a 15-voxel field of view 0.6-8 ml.
* ``registration_similarity``: the correlation of the registered brain with the template inside the
  template's brain: >= 0.4. Good heads gave 0.57-0.84; noise 0.04, a brain cut by the field of view 0.26,
  swapped axes 0.12, an inverted contrast below 0.
* ``template_overlap``: Dice of the registered brain mask with the template's brain mask. A mask that is
  a blob, or lands elsewhere, falls below 0.8 (good heads 0.88-0.97; noise 0.66, a 15-voxel field of view 0.01).
* ``fov_coverage``: the fraction of the template's brain that falls inside the input's field of view
  after registration: >= 0.97. Good heads 1.0; the top 30 mm of the brain cut off gave 0.80.
* ``wm_gm_ratio``: white over grey matter intensity (:mod:`pipeline.preprocess.quality`). T1 contrast puts
  it above 1.05 (good heads 1.20-1.67); an inverted (T2-like) image gave 0.87, noise 1.00.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from pipeline.mni import template_on_box
from pipeline.preprocess.config import QCConfig

__all__ = ["qc_reasons", "fov_coverage", "template_overlap"]


def template_overlap(mask_2mm: np.ndarray) -> float:
    """Dice of a registered brain mask with the template's brain mask on the 2 mm box."""
    brain = template_on_box()["brain"]
    return float(2.0 * (mask_2mm & brain).sum() / max(int(mask_2mm.sum() + brain.sum()), 1))


def fov_coverage(transform: str, affine: np.ndarray, shape: tuple[int, ...], step: int = 2) -> float:
    """Fraction of the template's brain voxels that the template->T1w ``transform`` sends inside the input grid
    (``affine`` and ``shape`` of the image as the chain loaded it, RAS)."""
    from pipeline.preprocess.accuracy import template_brain_points_lps

    points = template_brain_points_lps(step)
    tx = sitk.ReadTransform(str(transform))
    # the transform is affine: its matrix from four points, then every point at once
    basis = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    mapped = np.array([tx.TransformPoint(tuple(p)) for p in basis])
    matrix = (mapped[1:] - mapped[0]).T
    lps = points @ matrix.T + mapped[0]
    ras = lps * np.array([-1.0, -1.0, 1.0])
    ijk = (ras - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    inside = np.all((ijk >= -0.5) & (ijk <= np.asarray(shape[:3]) - 0.5), axis=1)
    return float(inside.mean())


def qc_reasons(qc: dict[str, Any], config: QCConfig) -> list[str]:
    """Why an image fails the gate: one sentence per failed check (empty: it passes, or the gate is off)."""
    if not config.enabled:
        return []
    reasons = []
    low, high = config.mask_volume_ml
    volume = qc.get("mask_volume_ml")
    if volume is not None and not low <= volume <= high:
        reasons.append(f"brain mask {volume:g} ml, expected {low:g}-{high:g} ml (qc.mask_volume_ml)")

    def at_least(key: str, threshold: float, what: str) -> None:
        value = qc.get(key)
        if value is None:
            return
        if not np.isfinite(value) or value < threshold:
            reasons.append(f"{what} {value:g}, expected >= {threshold:g} (qc.min_{key})")

    at_least("registration_similarity", config.min_registration_similarity, "registration similarity")
    at_least("template_overlap", config.min_template_overlap, "overlap of the registered brain with the template")
    at_least("fov_coverage", config.min_fov_coverage, "fraction of the brain inside the field of view")
    at_least("wm_gm_ratio", config.min_wm_gm_ratio, "white/grey matter intensity ratio (no T1 contrast)")
    return reasons
