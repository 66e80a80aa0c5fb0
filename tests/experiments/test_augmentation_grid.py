"""The augmentation grid end to end on the tiny CN/AD phantom (through the CLI and real bundle runs): a split
per repeat, generators trained on its training subjects only, exact training-table counts per arm, real
test subjects only, metrics that match the predictions, paired differences, quality report, resume."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import balanced_accuracy_score

from pipeline.cli import main
from pipeline.cohort import read_splits, split_subjects
from pipeline.config import ConfigError
from pipeline.engines.checkpoints import read_run_info
from pipeline.experiments.augmentation_grid import GridConfig, expand_runs
from pipeline.preprocess.batch import read_preprocessed
from pipeline.table_paths import read_table

ARMS = {
    "none": {},
    "classical": {"augment": True},
    "oversampling": {"extra": "real"},
    "translation_AD": {"extra": "translation", "classes": ["AD"]},
    "conditional": {"extra": "conditional"},
    "synthetic_only": {"extra": "conditional", "real": False},
}
TINY = {
    "task": "cn_ad",
    "repeats": 1,
    "split": {"fractions": [0.6, 0.2, 0.2], "seed": 5},
    "real_fractions": [1.0],
    "synthetic_fractions": [0.5],
    "arms": ARMS,
    "classifier": {"epochs": 2, "batch_size": 4, "spatial_size": [16, 16, 16], "net_kwargs": {"widths": [4, 8, 8, 8]}},
    "generators": {
        "translation": {
            "epochs": 1,
            "epoch_length": 2,
            "batch_size": 2,
            "spatial_size": [32, 32, 32],
            "net_kwargs": {"channels": 4, "n_residual": 1},
            "disc_kwargs": {"channels": 4},
        },
        "conditional": {
            "epochs": 2,
            "batch_size": 4,
            "spatial_size": 16,
            "net_kwargs": {"channels": 4, "latent_dim": 8},
            "disc_kwargs": {"channels": 4},
        },
    },
    "bootstrap": 50,
    "quality_size": 16,
}


@pytest.fixture(scope="module")
def grid(ad_pair, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("grid")
    config = folder / "grid.yaml"
    config.write_text(yaml.safe_dump({**TINY, "dataset_dir": str(ad_pair / "preprocessed")}))
    assert main(["augment-grid", "--config", str(config), "--out", str(folder / "out")]) == 0
    return folder / "out"


def _read(path: Path) -> pd.DataFrame:
    return read_table(path, dtype={"subject": str, "source_subject": str}, keep_default_na=False)


def test_split_and_generators_use_training_subjects_only(grid, ad_pair):
    splits = read_splits(grid / "repeat-0" / "splits.tsv")
    expected = split_subjects(read_preprocessed(ad_pair / "preprocessed"), (0.6, 0.2, 0.2), seed=5)
    assert (
        splits.sort_values("subject")
        .reset_index(drop=True)[["subject", "split"]]
        .equals(expected.sort_values("subject").reset_index(drop=True)[["subject", "split"]])
    )  # the repeat's own split
    train = set(splits.loc[splits["split"] == "train", "subject"])
    for checkpoint in ("translation/models/model.pt", "conditional/models/model.pt"):
        info = read_run_info(grid / "repeat-0" / checkpoint)
        assert set(info["train_subjects"]) == train, checkpoint
    translated = _read(grid / "repeat-0" / "synthetic-translation" / "synthetic.tsv")
    assert set(translated["source_subject"]) == train
    row = translated.iloc[0]  # written at the translator's 32^3 with the source's field of view
    made, source = nib.load(row["image"]), nib.load(row["source_image"])
    assert made.shape == (32, 32, 32)
    centre = lambda img: img.affine @ np.r_[(np.array(img.shape) - 1) / 2, 1]  # noqa: E731
    np.testing.assert_allclose(centre(made), centre(source), atol=1e-4)


def test_training_tables_have_the_exact_counts_and_no_held_out_subject(grid):
    splits = read_splits(grid / "repeat-0" / "splits.tsv")
    train = set(splits.loc[splits["split"] == "train", "subject"])
    runs = _read(grid / "runs.tsv").set_index("arm")
    none = _read(grid / "repeat-0" / "none_X1_Y0" / "mixed.tsv")
    n = none.groupby("diagnosis")["subject"].nunique()
    half = {c: int(round(0.5 * n[c])) for c in ("CN", "AD")}
    assert runs.loc["none", "n_real"] == len(none) and runs.loc["none", "n_synthetic"] == 0
    assert runs.loc["oversampling", "n_real"] == len(none) + half["CN"] + half["AD"]
    assert runs.loc["oversampling", "n_real_subjects"] == n.sum()
    mixed = _read(grid / "repeat-0" / "translation_AD_X1_Y0.5" / "mixed.tsv")
    synthetic = mixed[mixed["synthetic"].astype(str) == "True"]
    assert len(synthetic) == half["AD"] and set(synthetic["diagnosis"]) == {"AD"}  # selective
    assert set(synthetic["source_subject"]) <= train
    only = _read(grid / "repeat-0" / "synthetic_only_X0_Y0.5" / "mixed.tsv")
    assert (only["synthetic"].astype(str) == "True").all() and len(only) == half["CN"] + half["AD"]
    for folder in (grid / "repeat-0").glob("*_X*_Y*"):
        table = _read(folder / "mixed.tsv")
        real = table[table["synthetic"].astype(str) != "True"]
        assert set(real["subject"]) <= train, folder.name
    settings = json.loads((grid / "repeat-0" / "classical_X1_Y0" / "train_settings.json").read_text())["settings"]
    assert settings["overrides"]["augment"] is True and settings["overrides"]["seed"] == 0


def test_metrics_are_on_the_real_test_subjects_and_match_the_predictions(grid):
    splits = read_splits(grid / "repeat-0" / "splits.tsv")
    test = set(splits.loc[splits["split"] == "test", "subject"])
    runs = _read(grid / "runs.tsv")
    for _, run in runs[
        runs["extra"].isin(["", "real", "translation", "conditional"]) & (runs["classes"] != "")
    ].iterrows():
        folder = grid / "repeat-0" / f"{run['arm']}_X{run['real_fraction']:g}_Y{run['synthetic_fraction']:g}"
        predictions = _read(folder / "eval" / "predictions.tsv")
        assert set(predictions["subject"]) == test, folder.name
        expected = balanced_accuracy_score(
            predictions["label"], predictions[["prob_CN", "prob_AD"]].to_numpy().argmax(1)
        )
        assert run["balanced_accuracy"] == pytest.approx(expected), folder.name
    baselines = runs.set_index("arm")
    assert baselines.loc["class_prior", "balanced_accuracy"] == 0.5 and baselines.loc["class_prior", "auc"] == 0.5
    assert baselines.loc["volume_logistic", "balanced_accuracy"] >= 0.75  # x3 effect: volumes separate the classes


def test_summary_pairs_every_arm_with_none_and_quality_is_reported(grid):
    summary = _read(grid / "summary.tsv").set_index("arm")
    runs = _read(grid / "runs.tsv").set_index("arm")
    assert summary.loc["none", "balanced_accuracy_diff"] == 0.0
    for arm in ("oversampling", "synthetic_only", "volume_logistic"):
        difference = runs.loc[arm, "auc"] - runs.loc["none", "auc"]
        assert summary.loc[arm, "auc_diff"] == pytest.approx(difference)
        assert summary.loc[arm, "auc_diff_low"] <= summary.loc[arm, "auc_diff_high"]
        assert summary.loc[arm, "compared_with"] == "none_X1_Y0"
    quality = _read(grid / "quality.tsv")
    assert set(zip(quality["generator"], quality["diagnosis"])) == {
        ("translation", "CN"),
        ("translation", "AD"),
        ("conditional", "CN"),
        ("conditional", "AD"),
    }
    assert {"fid", "mmd", "memorized_fraction", "nearest_ssim_mean"} <= set(quality.columns)
    report = json.loads((grid / "grid.json").read_text())
    assert len(report["summary"]) == len(summary) and report["seconds"]["total"] > 0


def test_a_rerun_resumes_without_training(grid, ad_pair, tmp_path):
    marker = grid / "repeat-0" / "conditional_X1_Y0.5" / "train_settings.json"
    model = grid / "repeat-0" / "conditional_X1_Y0.5" / "models" / "model.pt"
    before = (marker.stat().st_mtime_ns, model.stat().st_mtime_ns)
    quality = _read(grid / "quality.tsv")
    config = tmp_path / "grid.yaml"
    encoder = grid / "repeat-0" / "none_X1_Y0" / "models" / "model.pt"  # a local weights file for FID / MMD
    config.write_text(
        yaml.safe_dump({**TINY, "dataset_dir": str(ad_pair / "preprocessed"), "quality_encoder": str(encoder)})
    )
    # as after a resumed re-run of the preprocessing: the table's run columns change, the images do not
    table_path = ad_pair / "preprocessed" / "preprocessed.tsv"
    original = table_path.read_bytes()
    table = pd.read_csv(table_path, sep="\t", dtype=str, keep_default_na=False)
    table.assign(resumed="True", seconds="0.0").to_csv(table_path, sep="\t", index=False)
    try:
        assert main(["augment-grid", "--config", str(config), "--out", str(grid)]) == 0
    finally:
        table_path.write_bytes(original)
    assert (marker.stat().st_mtime_ns, model.stat().st_mtime_ns) == before
    again = _read(grid / "quality.tsv")  # the same encoder as the default (the none arm's classifier)
    np.testing.assert_allclose(again["fid"], quality["fid"], rtol=1e-6)
    config.write_text(
        yaml.safe_dump(
            {**TINY, "dataset_dir": str(ad_pair / "preprocessed"), "quality_encoder": str(tmp_path / "missing.pt")}
        )
    )
    assert main(["augment-grid", "--config", str(config), "--out", str(grid)]) == 2  # named error, exit code 2


def test_config_errors_name_the_key():
    base = {**TINY, "dataset_dir": "x"}
    assert [
        r.name
        for r in expand_runs(
            GridConfig.from_dict({**base, "real_fractions": [1.0, 0.5], "synthetic_fractions": [0.5, 1.0]})
        )
    ] == [
        "none_X1_Y0",
        "none_X0.5_Y0",
        "classical_X1_Y0",
        "classical_X0.5_Y0",
        *[
            f"{arm}_X{x:g}_Y{y:g}"
            for arm in ("oversampling", "translation_AD", "conditional")
            for x in (1.0, 0.5)
            for y in (0.5, 1.0)
        ],
        "synthetic_only_X0_Y0.5",
        "synthetic_only_X0_Y1",
    ]
    with pytest.raises(ConfigError, match="needs an arm named 'none'"):
        GridConfig.from_dict({**base, "arms": {"classical": {"augment": True}}})
    with pytest.raises(ConfigError, match=r"arms.x.extra: expected one of \['real', 'translation', 'conditional'\]"):
        GridConfig.from_dict({**base, "arms": {**ARMS, "x": {"extra": "gan"}}})
    with pytest.raises(ConfigError, match="real: false .synthetic-only. needs extra"):
        GridConfig.from_dict({**base, "arms": {**ARMS, "x": {"real": False}}})
    with pytest.raises(ConfigError, match=r"arms.x.classes: \['MCI'\] not classes of task cn_ad"):
        GridConfig.from_dict({**base, "arms": {**ARMS, "x": {"extra": "real", "classes": ["MCI"]}}})
    with pytest.raises(ConfigError, match=r"real_fractions: expected positive fractions <= 1, got \[1.5\]"):
        GridConfig.from_dict({**base, "real_fractions": [1.5]})
    with pytest.raises(ConfigError, match=r"augment_grid: unknown key\(s\) \['epochs'\]"):
        GridConfig.from_dict({**base, "epochs": 3})
