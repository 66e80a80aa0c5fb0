"""A real head moved by known rigid motions onto other scanners' grids, to check preprocessing on real anatomy.

The phantom is built from the registration target itself, so it flatters registration. Colin27 (Holmes et
al. 1998, "Enhancement of MR images using registration for signal averaging"; the average of 27 T1 scans of
one person, 1 mm, with skull and scalp) and its FSL-BET brain ship in Debian's ``mricron-data`` package
(BSD licence). ``scripts/fetch_colin27.sh`` unpacks it into a cache folder; nothing here downloads.

:func:`move_head` applies a rigid motion in world space (rotation about the head's centre, then a
translation), resamples the head onto an oblique, anisotropic grid with another voxel-axis ordering,
multiplies a smooth bias field, adds Rician noise and stores int16, as a scanner would. It returns the image,
the BET mask carried the same way (nearest neighbour) and the motion as a 4x4 RAS matrix (original world
point -> moved world point), from which the true template->T1w transform of the moved head follows
(:func:`pipeline.preprocess.accuracy.moved_points_lps`).

Example:
    >>> import numpy as np, nibabel as nib
    >>> head = nib.Nifti1Image(np.ones((20, 20, 20), np.float32), np.diag([2.0, 2, 2, 1]))
    >>> moved, _, motion = move_head(head, HeadMotion(rotation_deg=(0, 0, 90), zooms=(2, 2, 2), noise=0))
    >>> np.round(motion[:3, :3]).astype(int).tolist()
    [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    >>> moved.get_data_dtype().name
    'int16'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi
from scipy.spatial.transform import Rotation

__all__ = ["COLIN27_PACKAGE", "Colin27", "default_cache", "find_colin27", "HeadMotion", "move_head", "axis_directions"]

COLIN27_PACKAGE = "mricron-data"
_COLIN27_SUBDIR = Path("usr/share/mricron/templates")


def default_cache() -> Path:
    """``$MRIHARMONY_CACHE`` or ``~/.cache/mriharmony``: where test data fetched at set-up is kept."""
    return Path(os.environ.get("MRIHARMONY_CACHE", Path.home() / ".cache" / "mriharmony"))


@dataclass(frozen=True)
class Colin27:
    head: Path  # ch2.nii.gz: T1 with skull and scalp, 1 mm, 181 x 217 x 181
    brain: Path  # ch2bet.nii.gz: its FSL-BET brain (mask = brain > 0)


def find_colin27(cache: str | Path | None = None) -> Colin27:
    """The Colin27 files unpacked by ``scripts/fetch_colin27.sh`` into ``cache`` (default :func:`default_cache`).

    Raises:
        FileNotFoundError: not unpacked yet; the message gives the command that fetches it.
    """
    folder = Path(cache or default_cache()) / COLIN27_PACKAGE / _COLIN27_SUBDIR
    found = Colin27(head=folder / "ch2.nii.gz", brain=folder / "ch2bet.nii.gz")
    missing = [str(p) for p in (found.head, found.brain) if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"Colin27 not found ({', '.join(missing)}); run "
            f"`bash scripts/fetch_colin27.sh {Path(cache or default_cache())}` first"
        )
    return found


_DIRECTIONS = {"R": (1, 0, 0), "L": (-1, 0, 0), "A": (0, 1, 0), "P": (0, -1, 0), "S": (0, 0, 1), "I": (0, 0, -1)}


def axis_directions(orientation: str) -> np.ndarray:
    """3x3 matrix whose columns are the world (RAS) directions of the voxel axes named by ``orientation``.

    Example:
        >>> axis_directions("LPS").tolist()
        [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    code = orientation.upper()
    if (
        len(code) != 3
        or set(code) - set(_DIRECTIONS)
        or {int(np.flatnonzero(_DIRECTIONS[c])[0]) for c in code} != {0, 1, 2}
    ):
        raise ValueError(
            f"orientation: expected three letters naming distinct axes (e.g. 'LPS', 'PIR'), got {orientation!r}"
        )
    return np.array([_DIRECTIONS[c] for c in code], dtype=float).T


@dataclass(frozen=True)
class HeadMotion:
    """One simulated acquisition of the head: motion, grid and scanner effects (all keyword-only)."""

    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)  # about x, y, z (RAS), around the head's centre
    translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    zooms: tuple[float, float, float] = (1.0, 1.0, 1.0)  # voxel size along the three voxel axes
    orientation: str = "RAS"  # the voxel axes' ordering, e.g. LPS, PIR, ASL
    obliquity_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the grid's own tilt against the world axes
    bias: float = 0.2  # peak-to-centre amplitude of the smooth multiplicative bias field (0.2 = +-20 %)
    noise: float = 0.02  # Rician noise sigma as a fraction of the head's 99th intensity percentile
    seed: int = 0


def _motion_matrix(motion: HeadMotion, centre: np.ndarray) -> np.ndarray:
    rotation = Rotation.from_euler("xyz", motion.rotation_deg, degrees=True).as_matrix()
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = centre - rotation @ centre + np.asarray(motion.translation_mm, float)
    return matrix


def move_head(
    head: nib.Nifti1Image, motion: HeadMotion, brain: nib.Nifti1Image | None = None
) -> tuple[nib.Nifti1Image, nib.Nifti1Image | None, np.ndarray]:
    """Scan ``head`` again after ``motion``; returns (int16 image, moved brain mask or None, 4x4 RAS motion)."""
    data = np.asarray(head.dataobj, dtype=np.float32)
    foreground = np.argwhere(data > 0.1 * np.percentile(data[data > 0], 99))
    corners = np.array(
        [
            [foreground[:, 0].min(), foreground[:, 1].min(), foreground[:, 2].min()],
            [foreground[:, 0].max(), foreground[:, 1].max(), foreground[:, 2].max()],
        ],
        float,
    )
    centre = head.affine[:3, :3] @ corners.mean(0) + head.affine[:3, 3]
    matrix = _motion_matrix(motion, centre)

    tilt = Rotation.from_euler("xyz", motion.obliquity_deg, degrees=True).as_matrix()
    linear = tilt @ axis_directions(motion.orientation) @ np.diag(np.asarray(motion.zooms, float))
    box = np.array([[a, b, c] for a in corners[:, 0] for b in corners[:, 1] for c in corners[:, 2]])
    world = (matrix[:3, :3] @ (head.affine[:3, :3] @ box.T + head.affine[:3, 3:]) + matrix[:3, 3:]).T
    grid = np.linalg.solve(linear, world.T).T  # the moved head's corners in (unshifted) voxel units
    margin = 8.0 / np.asarray(motion.zooms, float)  # 8 mm of air around the head
    low, high = grid.min(0) - margin, grid.max(0) + margin
    shape = tuple(int(np.ceil(h - lo)) + 1 for lo, h in zip(low, high))
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = linear @ np.floor(low)

    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    to_source = np.linalg.inv(head.affine) @ np.linalg.inv(matrix) @ affine  # moved voxel -> original voxel
    source_ijk = to_source[:3, :3].astype(np.float32) @ ijk + to_source[:3, 3:].astype(np.float32)
    moved = ndi.map_coordinates(data, source_ijk, order=1, cval=0.0).reshape(shape)
    moved_brain = None
    if brain is not None:
        mask = (np.asarray(brain.dataobj) > 0).astype(np.uint8)
        moved_mask = ndi.map_coordinates(mask, source_ijk, order=0, cval=0).reshape(shape)
        moved_brain = nib.Nifti1Image(moved_mask.astype(np.uint8), affine)

    rng = np.random.default_rng(motion.seed)
    if motion.bias:
        xyz = (affine[:3, :3] @ ijk + affine[:3, 3:] - centre[:, None]) / 100.0  # world offsets in 100 mm units
        coeffs = rng.uniform(-1, 1, size=(3, 2))
        log_bias = sum(coeffs[a, 0] * xyz[a] + coeffs[a, 1] * (xyz[a] ** 2 - 0.3) for a in range(3))
        log_bias *= np.log1p(motion.bias) / max(float(np.abs(log_bias).max()), 1e-6)
        moved = moved * np.exp(log_bias).reshape(shape).astype(np.float32)
    scale = float(np.percentile(moved[moved > 0], 99))
    if motion.noise:
        sigma = motion.noise * scale
        moved = np.sqrt((moved + rng.normal(0, sigma, shape)) ** 2 + rng.normal(0, sigma, shape) ** 2)
    stored = np.clip(np.round(moved * (3000.0 / scale)), 0, np.iinfo(np.int16).max).astype(np.int16)
    out = nib.Nifti1Image(stored, affine)
    out.set_qform(affine, code=1)
    out.set_sform(affine, code=1)
    out.header.set_xyzt_units("mm", "sec")
    if moved_brain is not None:
        moved_brain.set_qform(affine, code=1)
        moved_brain.set_sform(affine, code=1)
    return out, moved_brain, matrix
