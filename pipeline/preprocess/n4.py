"""Step 2: N4 bias field correction (SimpleITK), fitted on a shrunk image inside a head mask.

The fit runs on the image shrunk by ``shrink_factor`` (``auto``: to voxels of about 6 mm; the bias
field is smooth, so this loses nothing and saves most of the time), with the head mask made by
Otsu thresholding the shrunk image. The log bias field is evaluated on the shrunk grid, linearly
interpolated to full resolution and divided out. Measured on five 1 mm phantom heads (2 cores):
3 levels of (30, 20, 10) iterations at 6 mm reach a mean log-bias correlation of 0.952 with the
truth in 2.1 s; (50, 50, 25) gave 0.956 in 3.6 s; 4 levels at shrink 4 were slower (10-12 s) and
less accurate (0.87-0.96).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from pipeline.preprocess.config import N4Config

__all__ = ["n4_correct", "to_sitk"]


def to_sitk(data: np.ndarray, zooms: tuple[float, ...]) -> sitk.Image:
    """A (x, y, z) array as a SimpleITK image with the given spacing (identity direction)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0), dtype=np.float32))
    image.SetSpacing([float(z) for z in zooms[:3]])
    return image


def full_field_support(small: sitk.Image, image: sitk.Image) -> tuple[slice, ...] | None:
    """Index box of the full grid lying inside the shrunk grid's voxel centres (None if all of it)."""
    lo, hi = [], []
    for axis in range(3):
        first = small.GetOrigin()[axis]
        last = first + (small.GetSize()[axis] - 1) * small.GetSpacing()[axis]
        origin, spacing, n = image.GetOrigin()[axis], image.GetSpacing()[axis], image.GetSize()[axis]
        lo.append(max(0, int(np.ceil((first - origin) / spacing - 1e-6))))
        hi.append(min(n, int(np.floor((last - origin) / spacing + 1e-6)) + 1))
    if all(low == 0 for low in lo) and all(h == image.GetSize()[i] for i, h in enumerate(hi)):
        return None
    return tuple(slice(low, high) for low, high in zip(lo, hi))


def _extend_edges(field: np.ndarray, inside: tuple[slice, ...]) -> np.ndarray:
    """Fill voxels outside ``inside`` with the nearest value inside (edge padding)."""
    core = field[inside]
    pad = [(s.start, n - s.stop) for s, n in zip(inside, field.shape)]
    return np.pad(core, pad, mode="edge")


def shrink_factor(config: N4Config, zooms: tuple[float, ...]) -> int:
    """The configured factor, or for ``auto`` the smallest one giving voxels of at least ``fit_voxel_mm``
    (the fit costs in proportion to the voxels it sees)."""
    if config.shrink_factor != "auto":
        return int(config.shrink_factor)
    return max(1, int(np.ceil(config.fit_voxel_mm / float(np.mean(zooms[:3])) - 1e-6)))


def n4_correct(img: nib.Nifti1Image, config: N4Config = N4Config()) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """Correct the bias field of ``img``.

    Returns:
        The corrected image and the estimated log bias field, both on ``img``'s grid.
    """
    data = np.asarray(img.dataobj, dtype=np.float32)
    zooms = img.header.get_zooms()[:3]
    offset = float(data.min())
    image = to_sitk(data - offset + 1e-3, zooms)  # N4 works in the log domain: keep values positive
    small = sitk.Shrink(image, [shrink_factor(config, zooms)] * 3)
    if config.mask == "otsu":  # head mask, computed on the shrunk image (the fit only sees that one)
        small_mask = sitk.OtsuThreshold(small, 0, 1, 200)
        small_mask = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(small_mask, [1, 1, 1]))
    else:
        small_mask = sitk.Image(small.GetSize(), sitk.sitkUInt8) + 1
        small_mask.CopyInformation(small)

    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([int(i) for i in config.iterations])
    corrector.SetConvergenceThreshold(config.convergence)
    extent = np.array(image.GetSize()) * np.array(image.GetSpacing())
    control_points = [max(4, int(np.ceil(e / config.spline_distance_mm)) + 3) for e in extent]
    corrector.SetNumberOfControlPoints(control_points)
    corrector.Execute(small, small_mask)
    # evaluate the (smooth) field on the shrunk grid and interpolate it linearly to full size: the
    # B-spline evaluation on every full-resolution voxel would cost more than the fit itself
    small_field = corrector.GetLogBiasFieldAsImage(small)
    full_field = sitk.Resample(small_field, image, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    log_bias = sitk.GetArrayFromImage(full_field).transpose(2, 1, 0)
    # the shrunk grid covers slightly less than the full one: extend its border values outward
    edge = full_field_support(small, image)
    if edge is not None:
        log_bias = _extend_edges(log_bias, edge)
    corrected = (data - offset + 1e-3) / np.exp(log_bias) + offset
    return (
        nib.Nifti1Image(corrected.astype(np.float32), img.affine, img.header),
        nib.Nifti1Image(log_bias.astype(np.float32), img.affine, img.header),
    )
