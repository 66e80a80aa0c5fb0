"""Step 6: intensities to [0, 1] inside the brain (optional percentile clipping), 0 outside.

MONAI's ``ScaleIntensityRangePercentiles`` has no mask: the background and skull would set the
range. This transform computes the percentiles inside the brain only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["MaskedMinMax", "masked_minmax"]


def masked_minmax(image: np.ndarray, mask: np.ndarray, percentiles: Sequence[float] | None = (0.5, 99.5)) -> np.ndarray:
    """Scale ``image`` so that the brain spans [0, 1].

    Args:
        image: any array.
        mask: brain mask (same shape); voxels outside become 0.
        percentiles: clip to these percentiles of the brain's intensities first (robust to
            outliers); None uses the plain minimum and maximum inside the brain.

    Example:
        >>> masked_minmax(np.array([0., 5., 10., 99.]), np.array([0, 1, 1, 0], bool), None).tolist()
        [0.0, 0.0, 1.0, 0.0]
    """
    mask = mask.astype(bool)
    if not mask.any():
        raise ValueError("masked_minmax: the brain mask is empty")
    values = image[mask]
    low, high = np.percentile(values, percentiles) if percentiles is not None else (values.min(), values.max())
    scale = float(high - low) if high > low else 1.0
    out = np.clip((image - low) / scale, 0.0, 1.0).astype(np.float32)
    out[~mask] = 0.0
    return out


class MaskedMinMax:
    """Array transform: ``MaskedMinMax(percentiles=(0.5, 99.5))(image, mask)`` (see :func:`masked_minmax`)."""

    def __init__(self, *, percentiles: Sequence[float] | None = (0.5, 99.5)):
        self.percentiles = percentiles

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return masked_minmax(image, mask, self.percentiles)
