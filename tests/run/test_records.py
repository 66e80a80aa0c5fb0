"""The run's JSON records: what a writer writes is what the report reads, and a file of the wrong shape is refused
with its name and the field."""

from __future__ import annotations

import math

import pytest

from pipeline.run import BrainAgePredictions, ClassificationMetrics, ModelScores, RecordError, SeedsSummary


def _brain_age() -> dict:
    scores = {"metrics": {"mae": 5.0, "n": 10}, "intervals_95": {"mae": [4.0, 6.0]}}
    volume = {**scores, "volumes_file": "truth.tsv", "columns": ["ventricles"]}
    return {"cnn": scores, "baselines": {"train_mean": scores, "volume_linear": volume}, "split": "test"}


def test_nested_records_round_trip_through_a_file(tmp_path):
    record = BrainAgePredictions.from_json(_brain_age())
    assert isinstance(record.cnn, ModelScores) and record.baselines["volume_linear"].columns == ["ventricles"]
    assert record.cnn.interval("mae") == (4.0, 6.0) and record.cnn.interval("r") == (None, None)
    path = record.write(tmp_path / "predictions.json")
    assert BrainAgePredictions.read(path) == record
    assert "volumes_file" not in BrainAgePredictions.read(path).to_json()["baselines"]["train_mean"]


def test_a_file_of_the_wrong_shape_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "predictions.json"
    BrainAgePredictions.from_json(_brain_age()).write(path)
    path.write_text(path.read_text().replace('"metrics"', '"metricz"', 2))
    with pytest.raises(RecordError, match=r"predictions.json: cnn: missing field\(s\) metrics of ModelScores"):
        BrainAgePredictions.read(path)
    with pytest.raises(RecordError, match="unknown field"):
        SeedsSummary.from_json({"bundle": "b", "seeds": [0], "split": "test", "summary": [], "extra": 1})
    assert BrainAgePredictions.read(tmp_path / "absent.json") is None


def test_null_reads_as_nan_for_the_formatters(tmp_path):
    scores = {"metrics": {"auc": float("nan"), "n": 4}, "intervals_95": {"auc": [None, None]}}
    record = ClassificationMetrics.from_json(
        {"task": "cn_ad", "classes": ["CN", "AD"], "model": "resnet", "split": "test", **scores, "baselines": {}}
    )
    path = record.write(tmp_path / "metrics.json")
    assert "NaN" not in path.read_text()  # strict JSON
    assert ClassificationMetrics.read(path).classifier.metrics["auc"] is None
    assert math.isnan(ClassificationMetrics.read(path, nan_for_null=True).classifier.metrics["auc"])
