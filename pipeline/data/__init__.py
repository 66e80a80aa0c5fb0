"""Training data assembled from a preprocessed cohort and its split: the image pairs of a site-to-site (or
class-to-class) CycleGAN (:mod:`pipeline.data.site_pairs`), every source site against the reference for a
many-to-one harmonizer (:mod:`pipeline.data.many_to_one`), and the per-task tables of the downstream bundles
(:mod:`pipeline.data.task_tables`). Beside the stages, below the engines' users; never inside the engines."""

from __future__ import annotations

from pipeline.data.many_to_one import ManyToOneData, many_to_one_data
from pipeline.data.site_pairs import SitePairData, site_pair_data
from pipeline.data.task_tables import task_table

__all__ = ["SitePairData", "site_pair_data", "ManyToOneData", "many_to_one_data", "task_table"]
