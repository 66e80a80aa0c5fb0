"""Training engines MONAI does not ship (the CycleGAN of 004), their data and checkpoint helpers."""

from __future__ import annotations

from pipeline.engines.checkpoints import ResumeFromLatest, RunInfo, latest_checkpoint
from pipeline.engines.cyclegan import CycleGANLosses, CycleGANTrainer, ImagePool
from pipeline.engines.cyclegan_evaluator import CycleGANEvaluator, cyclegan_metrics, key_metric_name
from pipeline.engines.site_pairs import SitePairData, find_splits_file, site_pair_data
from pipeline.engines.unpaired import SetEpochHandler, UnpairedDataset

__all__ = ["CycleGANLosses", "CycleGANTrainer", "ImagePool", "UnpairedDataset", "SetEpochHandler",
           "CycleGANEvaluator", "cyclegan_metrics", "key_metric_name", "SitePairData", "site_pair_data",
           "find_splits_file", "RunInfo", "ResumeFromLatest", "latest_checkpoint"]
