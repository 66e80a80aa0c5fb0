"""Synthetic augmentation: the per-class policy of Kwon (2024) (``policy``), CN <-> AD translation of Wang (2020)
(``translate``), the class-conditional generator's images (``generate``) and the experiment grid (``grid``)."""

from __future__ import annotations

from pipeline.augment.policy import (
    SYNTHETIC_COLUMNS,
    AugmentationPolicy,
    ClassPolicy,
    TooFewSyntheticImages,
    build_training_table,
    check_synthetic_only_in_training,
)

__all__ = [
    "AugmentationPolicy",
    "ClassPolicy",
    "build_training_table",
    "check_synthetic_only_in_training",
    "SYNTHETIC_COLUMNS",
    "TooFewSyntheticImages",
]
