"""Step 1: load a T1w image, refuse what is not a 3D brain volume, reorient to canonical RAS.

Every refusal raises :class:`InputImageError` with the file and the reason, which the batch
runner writes to the failure table. The input file is only read, never modified.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["InputImageError", "load_t1"]


class InputImageError(ValueError):
    """An input image that cannot be preprocessed (the message says why)."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


def load_t1(
    path: str | Path, *, four_d: str = "error", min_voxel_mm: float = 0.2, max_voxel_mm: float = 8.0
) -> nib.Nifti1Image:
    """Load ``path`` as a float32 3D image in canonical RAS orientation.

    Args:
        path: NIfTI file (.nii or .nii.gz).
        four_d: ``"error"`` refuses 4D images; ``"first"`` keeps their first volume.
        min_voxel_mm, max_voxel_mm: plausible voxel sizes; others are refused.

    Raises:
        InputImageError: missing, not NIfTI, truncated / corrupt, not 3D, NaN or Inf voxels,
            constant (e.g. all-zero) image, absurd voxel size, missing or singular affine.
    """
    path = Path(path)
    if not path.exists():
        raise InputImageError(path, "file does not exist")
    try:
        img = nib.load(str(path))
    except Exception as exc:
        raise InputImageError(path, f"not a NIfTI image ({type(exc).__name__}: {exc})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputImageError(path, f"not a NIfTI image (nibabel read it as {type(img).__name__})")

    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) < 3 or min(shape[:3]) < 2:
        raise InputImageError(path, f"image has shape {img.shape}; expected a 3D volume")
    if len(shape) > 4 or (len(shape) == 4 and four_d != "first"):
        raise InputImageError(
            path,
            f"image has shape {img.shape}; expected a 3D volume "
            "(set input.four_d: first to use the first volume of 4D images)",
        )

    header = img.header
    if int(header["sform_code"]) == 0 and int(header["qform_code"]) == 0:
        raise InputImageError(
            path, "no orientation: qform_code and sform_code are both 0, so the voxel-to-world affine is unknown"
        )
    affine = img.affine
    linear = affine[:3, :3]
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(linear)) < 1e-6:
        raise InputImageError(path, f"singular or non-finite affine {np.round(affine, 3).tolist()}")
    zooms = np.sqrt((linear**2).sum(axis=0))
    if zooms.min() < min_voxel_mm or zooms.max() > max_voxel_mm:
        raise InputImageError(
            path,
            f"voxel size {np.round(zooms, 3).tolist()} mm; expected each between {min_voxel_mm} and {max_voxel_mm} mm",
        )

    try:
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # truncated .gz, short file
        raise InputImageError(
            path, f"cannot read the voxel data, the file may be truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from None
    data = data.reshape(data.shape[:3] + data.shape[3:4])
    if data.ndim == 4:
        data = data[..., 0]
    data = data.astype(np.float32)
    bad = ~np.isfinite(data)
    if bad.any():
        raise InputImageError(path, f"{int(bad.sum())} voxels are NaN or Inf")
    if float(data.max()) <= float(data.min()):
        raise InputImageError(path, f"image is constant (every voxel is {float(data.min()):g})")

    out = nib.Nifti1Image(data, affine)
    out.set_qform(affine, code=1)
    out.set_sform(affine, code=1)
    return nib.as_closest_canonical(out)
