"""The affine of a cube resampled to another grid size over the same field of view.

Generators may work on a smaller cube than the preprocessed 64^3 images (32^3 on CPU); their outputs keep
the anatomy's position in world space by rescaling the voxel axes about the volume's extent.
"""

from __future__ import annotations

import numpy as np

__all__ = ["resized_affine"]


def resized_affine(affine: np.ndarray, shape: int, size: int) -> np.ndarray:
    """Affine of a ``size``^3 grid covering the same box as a ``shape``^3 grid with ``affine``."""
    affine = np.asarray(affine, dtype=float)
    factor = shape / size
    out = affine.copy()
    out[:3, :3] = affine[:3, :3] * factor
    out[:3, 3] = affine[:3, 3] + affine[:3, :3] @ np.full(3, (factor - 1) / 2)
    return out
