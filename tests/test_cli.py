"""The mriharmony command line: help for every command, the demo smoke test, clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.cohort import check_no_leakage

COMMANDS = ["demo", "phantom", "preprocess", "harmonize", "slices", "benchmark", "evaluate", "augment-grid", "cohort",
            "split"]


def _exe() -> list[str]:
    found = shutil.which("mriharmony", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "pipeline.cli"]


def test_help_lists_every_command_with_one_line():
    lines = subprocess.run(_exe() + ["--help"], capture_output=True, text=True, check=True).stdout.splitlines()
    for command in COMMANDS:
        (i,) = [i for i, line in enumerate(lines) if line.startswith(f"    {command}")]
        words = lines[i].split()[1:] or lines[i + 1].split()  # argparse wraps long names onto the next line
        assert len(words) > 3, command


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: mriharmony {command}" in capsys.readouterr().out


def test_demo_smoke(tmp_path):
    """README command 1, at tiny scale: generates, validates, splits, preprocesses, trains a CycleGAN
    for one epoch, harmonizes, measures traveling-subject fidelity, summarises, says where."""
    out = tmp_path / "run"
    tiny = ["--set", "phantom.subjects_per_site=3", "--set", "phantom.traveling=1", "--set", "phantom.resolution=4",
            "--set", "harmonization.epochs=1", "--set", "downstream.brain_age.epochs=1",
            "--set", "downstream.ad_classification.epochs=1", "--set", "augmentation.classifier.epochs=1",
            "--set", "augmentation.generators.translation.epochs=1",
            "--set", "augmentation.generators.conditional.epochs=1", "--set", "augmentation.bootstrap=20"]
    result = subprocess.run(_exe() + ["demo", "--out", str(out), "--quiet", *tiny], capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr
    stdout = result.stdout
    for site in ("adni", "oasis", "ukb"):
        assert f"\n{site} " in stdout
    assert str(out / "cohort.tsv") in stdout and str(out / "splits.tsv") in stdout
    cohort = pd.read_csv(out / "cohort.tsv", sep="\t", keep_default_na=False)
    assert len(cohort) == 3 * 3 + 3 and cohort["subject"].nunique() == 10
    splits = pd.read_csv(out / "splits.tsv", sep="\t")
    check_no_leakage(cohort.merge(splits, on="subject"))
    summary = json.loads((out / "summary.json").read_text())
    assert sum(summary["splits"].values()) == 10
    assert summary["sites"][-1]["site"] == "all" and summary["sites"][-1]["images"] == 12
    assert (out / "logs" / "demo.log").read_text().count("phantom: 12 images") == 1
    preprocessed = pd.read_csv(out / "preprocessed" / "preprocessed.tsv", sep="\t")
    assert summary["preprocessed_ok"] == 12 and (preprocessed["status"] == "ok").all()
    assert "preprocessed: 12 of 12 images" in stdout
    # harmonization: ukb (source) <-> oasis; every oasis image (3 + the traveling subject's) goes "to source"
    assert (out / "cyclegan" / "ukb-oasis" / "models" / "model.pt").exists() and "CycleGAN ukb <-> oasis" in stdout
    harmonized = pd.read_csv(out / "harmonized" / "harmonized.tsv", sep="\t", keep_default_na=False)
    assert sorted(harmonized.loc[harmonized["harmonized"], "site"]) == ["oasis"] * 4
    fidelity = pd.read_csv(out / "harmonized" / "traveling_fidelity.tsv", sep="\t")
    assert list(fidelity["subject"]) == ["trav01"] and 0 < fidelity.loc[0, "identity_mae"] < 0.2
    # downstream bundles: trained on the train split, scored on the test split beside their baselines
    report = json.loads((out / "brain_age" / "eval" / "predictions.json").read_text())
    test_controls = cohort.merge(splits, on="subject").query("split == 'test' and diagnosis == 'CN'")
    assert report["cnn"]["metrics"]["n"] == len(test_controls) and "train_mean" in report["baselines"]
    assert "brain age (controls, test split)" in stdout and "volume_linear" in stdout
    ad = cohort.merge(splits, on="subject").query("diagnosis in ['CN', 'AD']")
    if ad.loc[ad["split"] == "train", "diagnosis"].nunique() == 2 and (ad["split"] == "test").any():
        metrics = json.loads((out / "ad_classification" / "eval" / "metrics.json").read_text())
        assert metrics["metrics"]["n"] == (ad["split"] == "test").sum() and "volume_logistic" in metrics["baselines"]
        grid = pd.read_csv(out / "augment_grid" / "summary.tsv", sep="\t")
        assert {"none", "classical", "oversampling", "translation_AD", "conditional_AD", "synthetic_only",
                "class_prior"} <= set(grid["arm"]) and "augmentation grid (1 repeat(s)" in stdout
        grid_splits = pd.read_csv(out / "augment_grid" / "repeat-0" / "splits.tsv", sep="\t")
        assert grid_splits.sort_values("subject").reset_index(drop=True).equals(
            splits.sort_values("subject").reset_index(drop=True))  # repeat 0 is the demo's own split
    else:
        assert "ad_classification: skipped (training classes" in stdout
        assert "augmentation grid: skipped (training classes" in stdout
    # a re-run reuses the phantom, the preprocessed images, the trained CycleGAN and the harmonized images
    model_mtime = (out / "cyclegan" / "ukb-oasis" / "models" / "model.pt").stat().st_mtime_ns
    again = subprocess.run(_exe() + ["demo", "--out", str(out), "--quiet", *tiny], capture_output=True, text=True,
                           timeout=900)
    log = (out / "logs" / "demo.log").read_text()
    assert again.returncode == 0, again.stderr
    assert "(reused" in log and "12 ok (12 resumed)" in log and "harmonize: 4 images (4 resumed)" in log
    assert (out / "cyclegan" / "ukb-oasis" / "models" / "model.pt").stat().st_mtime_ns == model_mtime
    assert "brain age (controls, test split), reused" in again.stdout


@pytest.mark.parametrize("override, message", [
    ("phantom.colour=3", "unknown key 'phantom.colour'"),
    ("phantom.sites=[adni,mars]", r"phantom.sites: unknown site(s) ['mars']"),
    ("phantom.resolution=20", "phantom.resolution: expected a voxel size between 0.5 and 8 mm"),
    ("splits=3", "splits: expected a mapping with keys ['fractions', 'seed', 'stratify'], got 3"),
])
def test_demo_bad_config_fails_before_work(tmp_path, capsys, override, message):
    out = tmp_path / "run"
    code = main(["demo", "--out", str(out), "--set", override])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (out / "phantom").exists()


def test_cohort_and_split_commands(small_bids, tmp_path, capsys):
    table = tmp_path / "cohort.tsv"
    assert main(["cohort", str(small_bids), "--out", str(table)]) == 0
    out = capsys.readouterr().out
    assert "adni" in out and "all" in out
    splits = tmp_path / "splits.tsv"
    assert main(["split", str(table), "--out", str(splits), "--folds", "3"]) == 0
    folds = pd.read_csv(splits, sep="\t")
    assert sorted(folds["fold"].unique()) == [0, 1, 2] and folds["subject"].is_unique

    broken = pd.read_csv(table, sep="\t", keep_default_na=False)
    broken.loc[0, "path"] = str(tmp_path / "gone.nii.gz")
    broken.loc[1, "diagnosis"] = "FTD"
    broken_path = tmp_path / "broken.tsv"
    broken.to_csv(broken_path, sep="\t", index=False)
    assert main(["cohort", str(broken_path)]) == 2
    assert "line 3, column 'diagnosis': found 'FTD'" in capsys.readouterr().err
    broken.loc[1, "diagnosis"] = "CN"
    broken.to_csv(broken_path, sep="\t", index=False)
    assert main(["cohort", str(broken_path)]) == 1  # a missing image is excluded and reported, not fatal
    assert "1 image(s) excluded" in capsys.readouterr().out
