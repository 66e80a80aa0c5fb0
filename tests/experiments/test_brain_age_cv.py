"""Cross-validated brain age: every control predicted once by models that never saw it, the mean predictor
fitted on the training folds only, and the paired difference to it computed on the same subjects."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.preprocess.batch import read_preprocessed
from pipeline.table_paths import read_table

NARROW = [
    "--set",
    "epochs=1",
    "--set",
    "batch_size=4",
    "--set",
    "spatial_size=[32,32,32]",
    "--set",
    "net_kwargs#channels=[4,8,8,16,16]",
    "--set",
    "net_kwargs#hidden=16",
]


def test_every_control_is_predicted_once_by_models_that_never_saw_it(contrast_pair, tmp_path, capsys):
    out = tmp_path / "cv"
    assert (
        main(
            [
                "benchmark",
                "brain-age-cv",
                "--raw",
                str(contrast_pair / "preprocessed"),
                "--folds",
                "3",
                "--out",
                str(out),
                *NARROW,
            ]
        )
        == 0
    )
    assert "3-fold cross-validated" in capsys.readouterr().out
    table = read_preprocessed(contrast_pair / "preprocessed")
    controls = table[table["diagnosis"] == "CN"]
    predictions = read_table(out / "predictions.tsv", dtype={"subject": str, "session": str}, keep_default_na=False)
    folds = pd.read_csv(out / "folds.tsv", sep="\t", dtype={"subject": str}).set_index("subject")["fold"]
    assert set(folds.index) == set(controls["subject"].astype(str))
    for model, part in predictions.groupby("model"):
        assert len(part) == len(controls) and not part.duplicated(["subject", "session"]).any(), model
        assert (part["fold"].to_numpy() == folds[part["subject"]].to_numpy()).all(), model  # a subject's fold
    for fold in range(3):
        splits = pd.read_csv(out / f"fold{fold}" / "splits.tsv", sep="\t", dtype={"subject": str}).set_index("subject")[
            "split"
        ]
        test = set(splits.index[splits == "test"])
        assert test == set(folds.index[folds == fold]) and not test & set(splits.index[splits == "train"])
        # the floor: the training folds' mean age (per image, as the bundle trains on images)
        train_ages = controls[controls["subject"].astype(str).isin(set(splits.index[splits == "train"]))]["age"]
        mean = predictions[(predictions["model"] == "train_mean") & (predictions["fold"] == fold)]["predicted_age"]
        assert np.allclose(mean, train_ages.mean())
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["condition"]: r for r in summary["summary"]}
    assert set(rows) == {"cnn", "features_raw", "tissue_linear", "train_mean"} and summary["folds"] == 3
    for model, row in rows.items():
        part = predictions[predictions["model"] == model]
        assert row["mae_mean"] == pytest.approx((part["predicted_age"] - part["age"]).abs().mean(), rel=1e-9)
        assert row["mae_low"] <= row["mae_mean"] <= row["mae_high"]
        assert row["vs_mean"] == pytest.approx(row["mae_mean"] - rows["train_mean"]["mae_mean"], abs=1e-9)
        assert row["vs_mean_low"] <= row["vs_mean_high"] and row["n_test"] == controls["subject"].nunique()
    assert rows["train_mean"]["vs_mean_low"] == rows["train_mean"]["vs_mean_high"] == 0.0
