"""Training engines MONAI does not ship (the 3D CycleGAN of Komandur et al. 2023, many-to-one
harmonization after Roca et al. 2025, the class-conditional GAN),
their checkpoint, autocast and memory-format helpers. The data they train on is assembled in :mod:`pipeline.data`."""

from __future__ import annotations

from pipeline.engines.autocast import AMP_CHOICES, AutocastInferer, cpu_has_bf16, resolve_amp
from pipeline.engines.checkpoints import (
    RUN_INFO_FILE,
    ResumeFromLatest,
    RunInfo,
    RunInfoWriter,
    check_trained_architecture,
    latest_checkpoint,
    read_run_info,
)
from pipeline.engines.cyclegan import CycleGANLosses, CycleGANTrainer, ImagePool
from pipeline.engines.cyclegan_evaluator import CycleGANEvaluator, cyclegan_metrics, key_metric_name
from pipeline.engines.many_to_one import ManyToOneDataset, ManyToOneLosses, ManyToOneTrainer
from pipeline.engines.unpaired import SetEpochHandler, UnpairedDataset

__all__ = [
    "AutocastInferer",
    "AMP_CHOICES",
    "cpu_has_bf16",
    "resolve_amp",
    "CycleGANLosses",
    "CycleGANTrainer",
    "ImagePool",
    "ManyToOneLosses",
    "ManyToOneDataset",
    "ManyToOneTrainer",
    "UnpairedDataset",
    "SetEpochHandler",
    "CycleGANEvaluator",
    "cyclegan_metrics",
    "key_metric_name",
    "RunInfo",
    "RUN_INFO_FILE",
    "RunInfoWriter",
    "read_run_info",
    "check_trained_architecture",
    "ResumeFromLatest",
    "latest_checkpoint",
]
