"""The JSON records a run writes, as types: the stage that writes a file and the report that reads it share one.

Each record's fields are the keys of its file. A writer builds the record from what it computed
(:meth:`JsonRecord.from_json` refuses a missing or unknown key, naming the file and the field) and writes it;
a reader gets attributes, never nested dict keys. Rows of tables (``summary``, ``probes``, ...) stay lists of
dicts: they are tables, one dict per row, with the columns of the matching TSV.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Mapping, TypeVar

from pipeline.atomic import read_json_numbers, write_json

__all__ = [
    "RecordError",
    "JsonRecord",
    "RunSummary",
    "SiteEffectsRecord",
    "EvaluationRecord",
    "BenchmarkSummary",
    "CrossValidatedSummary",
    "ModelScores",
    "BrainAgePredictions",
    "ClassificationMetrics",
    "SeedsSummary",
    "AugmentationGridRecord",
    "ManyToOneSummary",
]

R = TypeVar("R", bound="JsonRecord")


class RecordError(ValueError):
    """A record file or dict does not have the fields its type names."""


@dataclass(frozen=True)
class JsonRecord:
    """Base of the run's records: ``to_json`` / ``from_json``, ``read`` / ``write``.

    Examples:
        >>> record = SeedsSummary(bundle="brain_age", seeds=[0, 1], split="test", summary=[])
        >>> SeedsSummary.from_json(record.to_json()) == record
        True
        >>> SeedsSummary.from_json({"bundle": "brain_age"}, source="seeds.json")
        Traceback (most recent call last):
        ...
        pipeline.run.records.RecordError: seeds.json: missing field(s) seeds, split, summary of SeedsSummary
    """

    #: fields holding one nested record, by field name
    nested: ClassVar[Mapping[str, type]] = {}
    #: fields holding a dict of nested records, by field name
    nested_dicts: ClassVar[Mapping[str, type]] = {}

    @classmethod
    def from_json(cls: type[R], data: Mapping[str, Any], *, source: str = "") -> R:
        """The record of a decoded JSON object; a missing or unknown field is an error naming ``source``."""
        where = source or cls.__name__
        if not isinstance(data, Mapping):
            raise RecordError(f"{where}: expected a JSON object for {cls.__name__}, found {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [n for n in required if n not in data]
        unknown = sorted(set(data) - set(names))
        if missing:
            raise RecordError(f"{where}: missing field(s) {', '.join(missing)} of {cls.__name__}")
        if unknown:
            raise RecordError(f"{where}: unknown field(s) {', '.join(unknown)} of {cls.__name__}; expected {names}")
        values = dict(data)
        for name, kind in cls.nested.items():
            if name in values and values[name] is not None:
                values[name] = kind.from_json(values[name], source=f"{where}: {name}")
        for name, kind in cls.nested_dicts.items():
            if name in values:
                values[name] = {k: kind.from_json(v, source=f"{where}: {name}.{k}") for k, v in values[name].items()}
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the record (fields that are ``None`` and optional are left out)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            optional = f.default is None
            if value is None and optional:
                continue
            if isinstance(value, JsonRecord):
                value = value.to_json()
            elif f.name in self.nested_dicts:
                value = {k: v.to_json() for k, v in value.items()}
            out[f.name] = value
        return out

    @classmethod
    def read(cls: type[R], path: str | Path, *, nan_for_null: bool = False) -> R | None:
        """The record in ``path``, or ``None`` when the file does not exist; ``nan_for_null`` reads ``null`` as NaN
        (for the text formatters)."""
        path = Path(path)
        if not path.exists():
            return None
        try:
            data = read_json_numbers(path) if nan_for_null else json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise RecordError(f"{path}: not JSON ({error})") from error
        return cls.from_json(data, source=str(path))

    def write(self, path: str | Path) -> Path:
        """Write the record atomically (NaN and infinities become ``null``)."""
        return write_json(path, self.to_json())


@dataclass(frozen=True)
class RunSummary(JsonRecord):
    """``summary.json`` of a demo run: what was run on what, and how long each stage took."""

    version: str
    phantom: dict[str, Any]  #: the phantom's specification (``PhantomSpec``)
    sites: list[dict[str, Any]]  #: per-site cohort table (``cohort.summarize``)
    splits: dict[str, int]  #: subjects per split
    excluded: int  #: images left out by validation
    preprocessed_ok: int
    preprocess_failures: int
    seconds: dict[str, float]  #: wall time per stage


@dataclass(frozen=True)
class SiteEffectsRecord(JsonRecord):
    """``site_effects.json``: site probes per site group and per-site image statistics (``site_effects.tsv``,
    ``site_iqms.tsv``)."""

    version: str
    raw: str
    sites: list[str]
    n_images: int
    n_subjects: int
    probes: list[dict[str, Any]]
    per_site: list[dict[str, Any]]
    seed: int
    seconds: float


@dataclass(frozen=True)
class EvaluationRecord(JsonRecord):
    """``evaluation.json`` of the harmonization evaluation: its tables, per harmonizer and baseline."""

    version: str
    raw: str
    harmonized: list[str]
    target_site: str
    reference_site: str
    split: str
    n_images: int
    n_subjects: int
    conditions: list[str]
    probes: list[str]
    seed: int
    site_probe: list[dict[str, Any]]
    traveling: list[dict[str, Any]]  #: per condition, the mean of each traveling-subject metric
    traveling_intervals: list[dict[str, Any]]
    biological: list[dict[str, Any]]
    biology_leak: list[dict[str, Any]]
    n_traveling: int
    seconds: float
    #: the harmonizers' kind per condition (``cyclegan``, ``many_to_one``)
    harmonizer_kinds: dict[str, str] = field(default_factory=dict)
    #: whether the evaluated site was never trained on by the (many-to-one) harmonizers
    unseen_site: bool = False
    #: baselines left out, each with why (ComBat on a site the harmonizers never saw)
    not_applicable: dict[str, str] = field(default_factory=dict)
    #: per site, AD effects, age slopes and the CN-vs-AD probe per condition (pipeline.evaluate.within_site_biology)
    within_site_biology: list[dict[str, Any]] = field(default_factory=list)
    #: per condition, the traveling subjects' within-subject site difference (pipeline.evaluate.traveling_paired)
    traveling_paired: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class BenchmarkSummary(JsonRecord):
    """``benchmark/PROTOCOL/summary.json``: one protocol of the brain-age benchmark."""

    protocol: str
    source_site: str
    target_site: str
    seeds: int
    harmonizer_seeds: list[int]
    harmonizers: list[dict[str, Any]]  #: seed, checkpoint and its SHA-256 per harmonizer
    excluded_seen_subjects: list[str]
    underpowered_below_n: int
    interval: str  #: what the intervals of ``summary`` are
    summary: list[dict[str, Any]]  #: one row per condition (``summary.tsv``)


@dataclass(frozen=True)
class CrossValidatedSummary(JsonRecord):
    """``benchmark/cross_validated/summary.json``: brain age cross-validated over every control."""

    protocol: str
    folds: int
    seed: int
    sites: list[str]
    underpowered_below_n: int
    interval: str
    summary: list[dict[str, Any]]  #: one row per model (``summary.tsv``)


@dataclass(frozen=True)
class ModelScores(JsonRecord):
    """One model's metrics on the scored subjects, with subject-bootstrap 95% intervals per metric."""

    metrics: dict[str, Any]
    intervals_95: dict[str, list[float | None]] = field(default_factory=dict)
    volumes_file: str | None = None  #: the volume baselines: the table they read
    columns: list[str] | None = None  #: the volume baselines: the columns they used

    def interval(self, metric: str) -> tuple[float | None, float | None]:
        """The (low, high) 95% interval of ``metric``, ``(None, None)`` when it has none."""
        low, high = self.intervals_95.get(metric, (None, None))
        return low, high


@dataclass(frozen=True)
class BrainAgePredictions(JsonRecord):
    """``predictions.json`` of the brain_age bundle's inference: the CNN beside its baselines."""

    nested: ClassVar[Mapping[str, type]] = {"cnn": ModelScores}
    nested_dicts: ClassVar[Mapping[str, type]] = {"baselines": ModelScores}

    cnn: ModelScores
    baselines: dict[str, ModelScores]
    gap_analysis: dict[str, Any] = field(default_factory=dict)
    split: str = ""


@dataclass(frozen=True)
class ClassificationMetrics(JsonRecord):
    """``metrics.json`` of the ad_classification bundle's inference: the classifier beside its baselines."""

    nested_dicts: ClassVar[Mapping[str, type]] = {"baselines": ModelScores}

    task: str
    classes: list[str]
    model: str
    split: str
    metrics: dict[str, Any]
    intervals_95: dict[str, list[float | None]]
    baselines: dict[str, ModelScores]

    @property
    def classifier(self) -> ModelScores:
        """The classifier's own scores, in the form of its baselines'."""
        return ModelScores(metrics=self.metrics, intervals_95=self.intervals_95)


@dataclass(frozen=True)
class SeedsSummary(JsonRecord):
    """``BUNDLE/seeds.json``: a downstream bundle's CNN over several training seeds on the same split."""

    bundle: str
    seeds: list[int]
    split: str
    summary: list[dict[str, Any]]  #: per metric: mean, SD, min, max and the value per seed
    note: str = "the same split and test subjects; only the training seed differs"


@dataclass(frozen=True)
class ManyToOneSummary(JsonRecord):
    """``many_to_one/summary.json``: the many-to-one study, per evaluated site (seen or held out)."""

    reference_site: str
    source_sites: list[str]
    held_out_sites: list[str]  #: never trained on
    harmonizer_seeds: int
    bundle_overrides: dict[str, Any]
    #: per site: held_out, unseen, n_subjects, n_traveling, conditions, traveling_mae, site_probe_linear, biology,
    #: brain_age_cross_site, not_applicable (see :func:`pipeline.experiments.many_to_one_study.summarize_site`)
    sites: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class AugmentationGridRecord(JsonRecord):
    """``augment_grid/grid.json``: the grid's settings, its summary, skipped runs, image quality and timings."""

    version: str
    task: str
    dataset_dir: str
    repeats: int
    split: dict[str, Any]
    real_fractions: list[float]
    synthetic_fractions: list[float]
    classifier: dict[str, Any]
    generators: dict[str, Any]
    bootstrap: int
    class_weights: str
    arms: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    skipped: list[dict[str, Any]]  #: runs not made, each with its reason
    quality: list[dict[str, Any]]
    seconds: dict[str, Any]
