"""The MNI152 2009a template shipped inside nilearn's wheel, on any grid (no download).

Shared by the phantom (its anatomy) and preprocessing (the registration target and the
91 x 109 x 91 2 mm output box).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "TEMPLATE_NAME",
    "nilearn_template_maps",
    "resample_to_grid",
    "MNI_BOX_SHAPE",
    "MNI_BOX_AFFINE",
    "template_on_box",
]

TEMPLATE_NAME = "MNI152NLin2009aSym"
_NILEARN_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
#: The 2 mm MNI box of FSL's MNI152_T1_2mm (91 x 109 x 91), written in RAS: x from -90 to 90 mm,
#: y from -126 to 90, z from -72 to 108. Same voxels as FSL's LAS-stored file, x not flipped.
MNI_BOX_SHAPE: tuple[int, int, int] = (91, 109, 91)
MNI_BOX_AFFINE = np.array([[2.0, 0, 0, -90.0], [0, 2.0, 0, -126.0], [0, 0, 2.0, -72.0], [0, 0, 0, 1.0]])


@lru_cache(maxsize=1)
def nilearn_template_maps() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The 1 mm template: affine and maps ``t1``, ``gm``, ``wm``, ``brain`` (each in [0, 1]).

    Same values as nilearn's ``load_mni152_*`` loaders (each map rescaled to max 1; the brain
    mask is nilearn's definition, template > 0.2), read straight from its wheel without importing
    nilearn. Returned arrays are shared: do not modify them.
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("nilearn is required: its wheel ships the MNI152 template")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    maps: dict[str, np.ndarray] = {}
    affine = None
    for name, filename in _NILEARN_FILES.items():
        img = nib.load(str(folder / filename))
        maps[name] = np.asarray(img.dataobj, dtype=np.float32)
        maps[name] /= maps[name].max()
        affine = img.affine
    maps["brain"] = (maps["t1"] > 0.2).astype(np.float32)
    return affine, maps


def resample_to_grid(
    array: np.ndarray, src_affine: np.ndarray, affine: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """Trilinear resampling of ``array`` onto the grid (affine, shape), Gaussian anti-aliasing first."""
    src_spacing = float(np.sqrt((src_affine[:3, :3] ** 2).sum(0)).mean())
    spacing = float(np.sqrt((affine[:3, :3] ** 2).sum(0)).mean())
    smooth = max(0.0, (spacing / src_spacing - 1.0) * 0.42)  # FWHM ~ the new voxel size
    if smooth > 0:
        array = ndi.gaussian_filter(array, smooth, truncate=3.0)
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    src_ijk = np.linalg.solve(src_affine[:3, :3], (affine[:3, :3] @ ijk + affine[:3, 3:]) - src_affine[:3, 3:])
    out = ndi.map_coordinates(array, src_ijk, order=1, cval=0.0, prefilter=False)
    return out.reshape(shape).astype(np.float32)


@lru_cache(maxsize=1)
def template_on_box() -> dict[str, np.ndarray]:
    """Template ``t1`` (skull-stripped T1) and ``brain`` mask on the 91 x 109 x 91 2 mm MNI box."""
    src_affine, maps = nilearn_template_maps()
    brain = resample_to_grid(maps["brain"], src_affine, MNI_BOX_AFFINE, MNI_BOX_SHAPE) > 0.5
    t1 = resample_to_grid(maps["t1"], src_affine, MNI_BOX_AFFINE, MNI_BOX_SHAPE) * brain
    return {"t1": t1.astype(np.float32), "brain": brain}
