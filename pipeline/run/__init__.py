"""The run-folder contract: where every output of a run lives (:class:`RunLayout`), how a stage knows its
outputs are complete and current (:class:`StageMarker`), the JSON records stages write and the report reads
(:mod:`pipeline.run.records`), and file digests (:func:`file_sha256`).

Below every stage: it imports nothing of the pipeline but :mod:`pipeline.atomic`, so any stage, experiment
or the report can use it without climbing the layers.
"""

from __future__ import annotations

from pipeline.run.digest import file_sha256, settings_digest
from pipeline.run.layout import RunLayout
from pipeline.run.records import (
    AugmentationGridRecord,
    BenchmarkSummary,
    BrainAgePredictions,
    ClassificationMetrics,
    CrossValidatedSummary,
    EvaluationRecord,
    ManyToOneSummary,
    ModelScores,
    RecordError,
    RunSummary,
    SeedsSummary,
    SiteEffectsRecord,
)
from pipeline.run.stage import StageMarker

__all__ = [
    "RunLayout",
    "StageMarker",
    "file_sha256",
    "settings_digest",
    "RecordError",
    "RunSummary",
    "SiteEffectsRecord",
    "EvaluationRecord",
    "ManyToOneSummary",
    "BenchmarkSummary",
    "CrossValidatedSummary",
    "ModelScores",
    "BrainAgePredictions",
    "ClassificationMetrics",
    "SeedsSummary",
    "AugmentationGridRecord",
]
