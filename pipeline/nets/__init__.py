"""Networks: the 3D CycleGAN generator and PatchGAN discriminator of 004 (more to come)."""

from __future__ import annotations

from pipeline.nets.discriminator import PatchDiscriminator3D
from pipeline.nets.generator import HarmonizationGenerator3D

__all__ = ["HarmonizationGenerator3D", "PatchDiscriminator3D"]
