"""The MNI152 2009 template as the phantom's anatomy, on a padded grid at any resolution.

nilearn ships inside its wheel the ICBM 2009a symmetric T1 template (``MNI152NLin2009aSym``) with
its brain mask and grey / white matter probability maps, at 1 mm and 2 mm. From them we build:

* tissue occupancies: GM and WM from the shipped maps, CSF = brain mask - GM - WM;
* **lateral ventricles**: CSF-dominant voxels (CSF > 0.5) deeper than 10 mm inside the brain
  mask within the box |x| < 32, -50 < y < 35, -5 < z < 38 mm (MNI), keeping the connected
  components larger than 1 ml;
* **hippocampus** (left = 1, right = 2): GM-dominant voxels (GM > 0.5, WM < 0.5) within 6 mm of
  the hippocampal long axis, the segment from (+-24, -12, -19) to (+-28, -38, -2) mm (MNI),
  i.e. head above the temporal horn to the tail below the atrium;
* distance maps (mm) that drive atrophy: signed distance to the ventricles and to the
  hippocampus, distance to the nearest CSF / outside voxel (cortical thinning), depth inside the
  brain and distance outside it (skull and scalp layers).

These labels are coarse anatomical definitions, not a manual segmentation: they are exact for
the phantom (which is generated from them) and approximate for real images.
The grid is the template's, padded with ``PAD_MM`` on every side of the brain so that skull,
scalp, head-size changes and deformations fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

from pipeline.mni import TEMPLATE_NAME, nilearn_template_maps, resample_to_grid

__all__ = ["TemplateSpace", "load_template", "template_labels", "TEMPLATE_NAME", "LABELS"]

PAD_MM = 30.0
#: Label values of :func:`template_labels` and of the phantom's ``dseg`` images.
LABELS: dict[int, str] = {
    0: "background",
    1: "CSF",
    2: "GM",
    3: "WM",
    4: "lateral_ventricles",
    5: "hippocampus",
    6: "skull",
    7: "scalp",
}
_VENTRICLE_BOX = ((-32.0, 32.0), (-50.0, 35.0), (-5.0, 38.0))
_HIPPOCAMPUS_AXIS = (np.array([24.0, -12.0, -19.0]), np.array([28.0, -38.0, -2.0]))
_HIPPOCAMPUS_RADIUS = 6.0


@dataclass(frozen=True)
class TemplateSpace:
    """Template maps on the padded grid (all arrays have shape ``shape``; float32 unless noted).

    Attributes:
        resolution: voxel size in mm (isotropic).
        affine: voxel -> RAS mm of the padded grid.
        t1: the template T1 intensities (for figures and registration checks).
        brain, gm, wm, csf: occupancies in [0, 1]; gm + wm + csf = brain.
        ventricles: bool, lateral ventricles.
        hippocampus: uint8, 1 left, 2 right.
        d_ventricles, d_hippocampus: signed distance (mm, negative inside).
        d_csf: distance (mm) to the nearest CSF-dominant or non-brain voxel.
        depth: distance (mm) inside the brain mask (0 outside).
        d_out: distance (mm) outside the brain mask (0 inside).
        centre: brain centroid (RAS mm), the centre of head-size scaling and head pose.
    """

    resolution: float
    affine: np.ndarray
    t1: np.ndarray
    brain: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    ventricles: np.ndarray
    hippocampus: np.ndarray
    d_ventricles: np.ndarray
    d_hippocampus: np.ndarray
    d_csf: np.ndarray
    depth: np.ndarray
    d_out: np.ndarray
    centre: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.brain.shape)  # type: ignore[return-value]

    @property
    def voxel_ml(self) -> float:
        return self.resolution**3 / 1000.0

    def world_coordinates(self) -> np.ndarray:
        """RAS mm of every voxel, shape (3, *shape), float32."""
        ijk = np.indices(self.shape, dtype=np.float32).reshape(3, -1)
        xyz = self.affine[:3, :3].astype(np.float32) @ ijk + self.affine[:3, 3:].astype(np.float32)
        return xyz.reshape((3,) + self.shape)


def _signed_distance(mask: np.ndarray, spacing: float) -> np.ndarray:
    """Signed Euclidean distance to the boundary of ``mask`` in mm (negative inside)."""
    outside = ndi.distance_transform_edt(~mask, sampling=spacing)
    inside = ndi.distance_transform_edt(mask, sampling=spacing)
    return (outside - inside).astype(np.float32)


@lru_cache(maxsize=4)
def load_template(resolution: float = 2.0) -> TemplateSpace:
    """Build (once per process and resolution) the template maps on the padded grid.

    Args:
        resolution: isotropic voxel size in mm, between 0.5 and 8.
    """
    resolution = float(resolution)
    if not 0.5 <= resolution <= 8.0:
        raise ValueError(f"resolution must be between 0.5 and 8 mm, got {resolution}")
    src_affine, src = nilearn_template_maps()

    brain_src = src["brain"] > 0.5
    idx = np.argwhere(brain_src)
    lo = src_affine[:3, :3] @ idx.min(0) + src_affine[:3, 3] - PAD_MM
    hi = src_affine[:3, :3] @ idx.max(0) + src_affine[:3, 3] + PAD_MM
    # align the padded grid with the source grid when the resolutions are multiples
    origin = src_affine[:3, 3] + np.floor((lo - src_affine[:3, 3]) / resolution) * resolution
    shape = tuple(int(np.ceil((h - o) / resolution)) + 1 for o, h in zip(origin, hi))
    affine = np.diag([resolution, resolution, resolution, 1.0])
    affine[:3, 3] = origin

    maps = {name: resample_to_grid(arr, src_affine, affine, shape) for name, arr in src.items()}
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)

    brain = np.clip(maps["brain"], 0, 1)
    gm = np.clip(maps["gm"], 0, 1) * brain
    wm = np.clip(maps["wm"], 0, 1) * brain
    over = np.maximum(gm + wm, 1e-6)
    scale = np.where(gm + wm > brain, brain / over, 1.0).astype(np.float32)
    gm, wm = gm * scale, wm * scale
    csf = np.clip(brain - gm - wm, 0, 1)

    brain_mask = brain > 0.5
    depth = ndi.distance_transform_edt(brain_mask, sampling=resolution).astype(np.float32)
    d_out = ndi.distance_transform_edt(~brain_mask, sampling=resolution).astype(np.float32)
    xyz = (affine[:3, :3] @ ijk + affine[:3, 3:]).reshape((3,) + shape)

    in_box = np.ones(shape, bool)
    for axis, (a, b) in enumerate(_VENTRICLE_BOX):
        in_box &= (xyz[axis] > a) & (xyz[axis] < b)
    candidates = (csf > 0.5) & in_box & (depth > 10.0)
    components, n = ndi.label(candidates)
    sizes = ndi.sum(candidates, components, range(1, n + 1)) * resolution**3 / 1000.0
    ventricles = np.isin(components, 1 + np.flatnonzero(sizes > 1.0))

    hippocampus = np.zeros(shape, np.uint8)
    inv = np.linalg.inv(affine)
    for label, side in ((1, -1.0), (2, 1.0)):
        a, b = (p * np.array([side, 1.0, 1.0]) for p in _HIPPOCAMPUS_AXIS)
        # distance to the axis segment, computed only in the box around it
        lo_vox = np.floor(inv[:3, :3] @ (np.minimum(a, b) - _HIPPOCAMPUS_RADIUS - 1) + inv[:3, 3]).astype(int)
        hi_vox = np.ceil(inv[:3, :3] @ (np.maximum(a, b) + _HIPPOCAMPUS_RADIUS + 1) + inv[:3, 3]).astype(int) + 1
        box = tuple(slice(max(lo, 0), min(hi, n)) for lo, hi, n in zip(lo_vox, hi_vox, shape))
        points = xyz[(slice(None),) + box].reshape(3, -1).T
        t = np.clip((points - a) @ (b - a) / np.dot(b - a, b - a), 0.0, 1.0)
        dist = np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1).reshape(xyz[(slice(None),) + box].shape[1:])
        inside = (dist < _HIPPOCAMPUS_RADIUS) & (gm[box] > 0.5) & (wm[box] < 0.5)
        hippocampus[box][inside] = label

    csf_or_outside = (csf > 0.5) | ~brain_mask
    d_csf = ndi.distance_transform_edt(~csf_or_outside, sampling=resolution).astype(np.float32)
    centre = affine[:3, :3] @ np.argwhere(brain_mask).mean(0) + affine[:3, 3]

    return TemplateSpace(
        resolution=resolution,
        affine=affine,
        t1=maps["t1"],
        brain=brain,
        gm=gm,
        wm=wm,
        csf=csf,
        ventricles=ventricles,
        hippocampus=hippocampus,
        d_ventricles=_signed_distance(ventricles, resolution),
        d_hippocampus=_signed_distance(hippocampus > 0, resolution),
        d_csf=d_csf,
        depth=depth,
        d_out=d_out,
        centre=centre,
    )


def template_labels(resolution: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Label map of the template (values of :data:`LABELS`) and its affine.

    Tissue labels are the dominant class; ventricles and hippocampus are drawn over them.
    Later stages map this into each image (or each image into template space) for measurements.
    """
    tpl = load_template(resolution)
    stack = np.stack([1.0 - tpl.brain, tpl.csf, tpl.gm, tpl.wm])
    labels = np.argmax(stack, axis=0).astype(np.uint8)  # 0 background, 1 CSF, 2 GM, 3 WM
    labels[tpl.ventricles] = 4
    labels[tpl.hippocampus > 0] = 5
    return labels, tpl.affine.copy()
