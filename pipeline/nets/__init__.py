"""Networks: the 3D CycleGAN generator and PatchGAN discriminator of Komandur et al. (2023), its brain-age CNN, the
classifiers, and the many-to-one harmonization networks after IGUANe (Roca et al. 2025)."""

from __future__ import annotations

from pipeline.nets.brain_age_cnn import BrainAgeCNN3D
from pipeline.nets.classifiers import build_classifier
from pipeline.nets.discriminator import PatchDiscriminator3D
from pipeline.nets.generator import HarmonizationGenerator3D
from pipeline.nets.many_to_one import ManyToOneNetworks, ResidualUNetGenerator3D, SiteDiscriminator3D
from pipeline.nets.three_view import ThreeViewClassifier

__all__ = [
    "HarmonizationGenerator3D",
    "PatchDiscriminator3D",
    "BrainAgeCNN3D",
    "ThreeViewClassifier",
    "build_classifier",
    "ManyToOneNetworks",
    "ResidualUNetGenerator3D",
    "SiteDiscriminator3D",
]
