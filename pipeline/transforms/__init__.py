"""MONAI-style transforms of mriharmony (one family per module)."""

from __future__ import annotations

from pipeline.transforms.slices import ThreeViewMidSlicesd

__all__ = ["ThreeViewMidSlicesd"]
