"""Synthetic augmentation: the per-class policy of 003 and CN <-> AD translation (000); the class-conditional
generator and the experiment grid follow."""

from __future__ import annotations

from pipeline.augment.policy import (SYNTHETIC_COLUMNS, AugmentationPolicy, ClassPolicy, build_training_table,
                                     check_synthetic_only_in_training)

__all__ = ["AugmentationPolicy", "ClassPolicy", "build_training_table", "check_synthetic_only_in_training",
           "SYNTHETIC_COLUMNS"]
