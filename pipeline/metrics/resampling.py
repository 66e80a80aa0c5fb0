"""Subject-level (cluster) bootstrap resampling.

A subject scanned several times (traveling subjects: one image per site) is one unit of evidence, not
several: a resample draws subjects with replacement and keeps all of a drawn subject's images.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["ClusterBootstrap"]


class ClusterBootstrap:
    """Draws bootstrap resamples of whole groups (subjects); ``sample`` returns row indices."""

    def __init__(self, groups: Sequence) -> None:
        _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        self.members = [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        chosen = rng.integers(0, len(self.members), len(self.members))
        return np.concatenate([self.members[i] for i in chosen])
