"""Training engines MONAI does not ship (the CycleGAN of 004)."""

from __future__ import annotations

from pipeline.engines.cyclegan import CycleGANLosses, CycleGANTrainer, ImagePool
from pipeline.engines.unpaired import UnpairedDataset, SetEpochHandler

__all__ = ["CycleGANLosses", "CycleGANTrainer", "ImagePool", "UnpairedDataset", "SetEpochHandler"]
