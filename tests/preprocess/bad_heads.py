"""Images that are not a usable brain, made from a real head (Colin27), for the QC gate's tests."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from pipeline.phantom.real_head import HeadMotion, move_head

#: a plain good acquisition at 2 mm (the tests' speed), tilted, LPS
GOOD = HeadMotion(
    rotation_deg=(6, -4, 5),
    translation_mm=(4, -3, 6),
    zooms=(2, 2, 2),
    orientation="LPS",
    obliquity_deg=(3, 0, 2),
    seed=7,
)


def _save(img: nib.Nifti1Image, path: Path) -> Path:
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    nib.save(img, path)
    return path


def make_bad_heads(head: nib.Nifti1Image, folder: Path) -> dict[str, Path]:
    """``good`` and five bad images in ``folder``: noise, a tiny field of view, a brain cut by the field of view,
    an inverted (T2-like) contrast, and a header whose affine swaps two voxel axes."""
    folder.mkdir(parents=True, exist_ok=True)
    good, _, _ = move_head(head, GOOD)
    data = np.asarray(good.dataobj).astype(np.int16)
    affine = good.affine
    rng = np.random.default_rng(0)
    paths = {"good": _save(nib.Nifti1Image(data, affine), folder / "good.nii.gz")}
    noise = np.hypot(rng.normal(0, 400, data.shape), rng.normal(0, 400, data.shape)).astype(np.int16)
    paths["noise"] = _save(nib.Nifti1Image(noise, affine), folder / "noise.nii.gz")
    c = [s // 2 for s in data.shape]
    tiny = data[c[0] - 7 : c[0] + 8, c[1] - 7 : c[1] + 8, c[2] - 7 : c[2] + 8]
    tiny_affine = affine.copy()
    tiny_affine[:3, 3] = affine[:3, :3] @ np.array([c[0] - 7, c[1] - 7, c[2] - 7]) + affine[:3, 3]
    paths["tiny_fov"] = _save(nib.Nifti1Image(np.ascontiguousarray(tiny), tiny_affine), folder / "tiny_fov.nii.gz")
    # the top of the head (LPS grid: axis 2 runs superior) cut 40 mm into the brain
    top = np.flatnonzero(data.max(axis=(0, 1)) > 0.2 * data.max()).max()
    paths["cut_brain"] = _save(
        nib.Nifti1Image(np.ascontiguousarray(data[:, :, : top - 30]), affine), folder / "cut_brain.nii.gz"
    )
    head_mask = data > 0.15 * np.percentile(data, 99)
    inverted = np.where(head_mask, np.percentile(data[head_mask], 99) * 1.1 - data, data).clip(0).astype(np.int16)
    paths["t2_like"] = _save(nib.Nifti1Image(inverted, affine), folder / "t2_like.nii.gz")
    swapped = affine.copy()
    swapped[:, [0, 1]] = affine[:, [1, 0]]  # the header claims axis 0 is axis 1 and back: a mislabelled file
    paths["swapped_axes"] = _save(nib.Nifti1Image(data, swapped), folder / "swapped_axes.nii.gz")
    return paths
