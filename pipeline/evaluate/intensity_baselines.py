"""Simple harmonization baselines reported beside the CycleGAN: identity, histogram matching, z-score.

All three work inside the brain mask of each image and are fitted on the reference site's *training*
images only:

- ``identity``: the image unchanged (the floor any harmonizer must beat);
- ``histogram``: quantile mapping of the image's in-mask intensities onto the pooled in-mask intensity
  distribution of the reference site (1001 quantiles, linear interpolation);
- ``zscore``: the image's in-mask mean and standard deviation replaced by the reference site's pooled
  in-mask mean and standard deviation.

Outside the mask the image is left as it is (zero after preprocessing); outputs are clipped to [0, 1]
like every preprocessed image. Written by hand: SimpleITK's HistogramMatchingImageFilter matches one
reference image and ignores masks, which is not the baseline the literature reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

__all__ = ["IntensityBaseline", "fit_intensity_baseline", "BASELINES"]

BASELINES = ("identity", "histogram", "zscore")
N_QUANTILES = 1001


@dataclass(frozen=True)
class IntensityBaseline:
    """A fitted baseline: call it on (image, mask) arrays to get the harmonized image."""

    name: str
    reference_quantiles: np.ndarray | None = None
    reference_mean: float = 0.0
    reference_std: float = 1.0

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        image = np.asarray(image, dtype=np.float32)
        inside = np.asarray(mask) > 0
        if self.name == "identity" or not inside.any():
            return image.copy()
        values = image[inside]
        out = image.copy()
        if self.name == "histogram":
            ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable") / max(len(values) - 1, 1)
            out[inside] = np.interp(ranks, np.linspace(0, 1, len(self.reference_quantiles)), self.reference_quantiles)
        else:
            out[inside] = (values - values.mean()) / (values.std() + 1e-8) * self.reference_std + self.reference_mean
        return np.clip(out, 0.0, 1.0).astype(np.float32)


def fit_intensity_baseline(name: str, reference: Iterable[tuple[np.ndarray, np.ndarray]]) -> IntensityBaseline:
    """Fit ``name`` on the reference site's training (image, mask) pairs."""
    if name not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {name!r}")
    if name == "identity":
        return IntensityBaseline(name)
    values = np.concatenate([np.asarray(image, np.float32)[np.asarray(mask) > 0] for image, mask in reference])
    if values.size == 0:
        raise ValueError(f"baseline {name}: the reference images have no voxel inside their masks")
    return IntensityBaseline(
        name,
        reference_quantiles=np.quantile(values, np.linspace(0, 1, N_QUANTILES)),
        reference_mean=float(values.mean()),
        reference_std=float(values.std()),
    )
