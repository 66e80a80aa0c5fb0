"""The mriharmony command line: help for every command, the demo smoke test, clear errors."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.cli import main
from pipeline.cohort import check_no_leakage
from pipeline.table_paths import read_table
from tests.conftest import TINY_DEMO, mriharmony_exe

COMMANDS = [
    "demo",
    "report",
    "phantom",
    "preprocess",
    "harmonize",
    "slices",
    "benchmark",
    "evaluate",
    "augment-grid",
    "cohort",
    "split",
]


def _exe() -> list[str]:
    return mriharmony_exe()


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


def test_demo_smoke(tiny_demo):
    """README command 1, at tiny scale: generates, validates, splits, preprocesses, trains a CycleGAN
    for one epoch (and a second harmonizer seed), harmonizes both ways, evaluates with baselines, runs the
    brain-age benchmark (pooled; held-out and cross-site skipped with their reason at this size), the
    downstream bundles and the augmentation grid, writes the report, says where."""
    out, result = tiny_demo
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
    preprocessed = read_table(out / "preprocessed" / "preprocessed.tsv")
    assert summary["preprocessed_ok"] == 12 and (preprocessed["status"] == "ok").all()
    assert "preprocessed: 12 of 12 images" in stdout
    # harmonization: ukb (source) <-> oasis; every oasis image (3 + the traveling subject's) goes "to source",
    # every ukb image "to target" (the benchmark's third condition)
    assert (out / "cyclegan" / "ukb-oasis" / "models" / "model.pt").exists() and "CycleGAN ukb <-> oasis" in stdout
    harmonized = read_table(out / "harmonized" / "harmonized.tsv", keep_default_na=False)
    assert sorted(harmonized.loc[harmonized["harmonized"], "site"]) == ["oasis"] * 4
    to_target = read_table(out / "harmonized_to_target" / "harmonized.tsv", keep_default_na=False)
    assert sorted(to_target.loc[to_target["harmonized"], "site"]) == ["ukb"] * 4
    fidelity = pd.read_csv(out / "harmonized" / "traveling_fidelity.tsv", sep="\t")
    assert list(fidelity["subject"]) == ["trav01"] and 0 < fidelity.loc[0, "identity_mae"] < 0.2
    # harmonizer seeds: the demo's CycleGAN is seed 0, a second one is trained on the same split (benchmark/harmonizers)
    second = out / "benchmark" / "harmonizers" / "seed1"
    settings = json.loads((second / "train_settings.json").read_text())["settings"]
    assert settings["overrides"]["seed"] == 1 and settings["overrides"]["splits_file"] == str(out / "splits.tsv")
    assert (second / "to_source" / "harmonized.tsv").exists() and (second / "to_target" / "harmonized.tsv").exists()
    # evaluation (all subjects at this size; the demo's default is the test split), both harmonizer seeds beside
    # every baseline
    evaluation = json.loads((out / "evaluation" / "evaluation.json").read_text())
    assert evaluation["n_images"] == (cohort["site"].isin(["ukb", "oasis"])).sum() == 8 and evaluation["split"] == "all"
    assert evaluation["conditions"] == ["identity", "cyclegan_seed0", "cyclegan_seed1", "histogram", "zscore", "combat"]
    assert "site probe, balanced accuracy" in stdout
    # the brain-age benchmark: pooled ran with both harmonizer seeds; at this size the held-out protocol (only
    # controls no CycleGAN saw) and the cross-site one have too few controls and say so
    bench = json.loads((out / "benchmark" / "pooled" / "summary.json").read_text())
    conditions = [row["condition"] for row in bench["summary"]]
    assert conditions == ["raw", "to_source", "to_target", "features_raw", "features_combat"]
    assert bench["harmonizer_seeds"] == [0, 1] and [row["runs"] for row in bench["summary"]] == [2, 4, 4, 2, 2]
    assert all(row["underpowered"] for row in bench["summary"])
    assert (
        "brain-age benchmark (held_out): skipped (seed 0: 3 controls left after excluding 3 that a CycleGAN saw"
        in stdout
    )
    assert "brain-age benchmark (cross_site): skipped (seed 0: 2 training controls at oasis" in stdout
    assert not (out / "benchmark" / "held_out").exists()
    # downstream bundles: trained on the train split, scored on the test split beside their baselines
    report = json.loads((out / "brain_age" / "eval" / "predictions.json").read_text())
    test_controls = cohort.merge(splits, on="subject").query("split == 'test' and diagnosis == 'CN'")
    assert report["cnn"]["metrics"]["n"] == len(test_controls) and "train_mean" in report["baselines"]
    assert "brain age (controls, test split)" in stdout and "volume_linear" in stdout
    # downstream.brain_age.seeds=2: a second CNN on the same split, both scored on the same test controls
    seeds = json.loads((out / "brain_age" / "seeds.json").read_text())
    second_report = json.loads((out / "brain_age" / "seeds" / "seed1" / "eval" / "predictions.json").read_text())
    mae = next(r for r in seeds["summary"] if r["metric"] == "mae")
    assert seeds["seeds"] == [0, 1] and mae["per_seed"] == [
        report["cnn"]["metrics"]["mae"],
        second_report["cnn"]["metrics"]["mae"],
    ]
    assert mae["mean"] == pytest.approx(np.mean(mae["per_seed"])) and mae["per_seed"][0] != mae["per_seed"][1]
    assert second_report["cnn"]["metrics"]["n"] == report["cnn"]["metrics"]["n"] and "over 2 seeds: cnn mae" in stdout
    # the AD stages ran (TINY_DEMO's split puts the only AD subject in train), never silently skipped
    ad = cohort.merge(splits, on="subject").query("diagnosis in ['CN', 'AD']")
    assert ad.loc[ad["split"] == "train", "diagnosis"].nunique() == 2 and (ad["split"] == "test").any()
    assert "skipped (training classes" not in stdout
    metrics = json.loads((out / "ad_classification" / "eval" / "metrics.json").read_text())
    assert metrics["metrics"]["n"] == (ad["split"] == "test").sum() and "volume_logistic" in metrics["baselines"]
    assert (out / "ad_classification" / "eval" / "gradcam").is_dir()
    grid = pd.read_csv(out / "augment_grid" / "summary.tsv", sep="\t")
    assert {"none", "oversampling", "translation_AD", "conditional_AD", "class_prior"} <= set(grid["arm"])
    assert "augmentation grid (1 repeat(s)" in stdout
    assert json.loads((out / "augment_grid" / "grid.json").read_text())["class_weights"].startswith(
        "inverse class frequency of the real training rows"
    )
    grid_splits = pd.read_csv(out / "augment_grid" / "repeat-0" / "splits.tsv", sep="\t")
    assert (
        grid_splits.sort_values("subject")
        .reset_index(drop=True)
        .equals(splits.sort_values("subject").reset_index(drop=True))
    )  # repeat 0 is the demo's own split
    # the report: where it is, the summary table, every section, the per-stage wall time
    assert f"report: {out / 'report' / 'report.html'}" in stdout and "brain-age raw MAE, pooled" in stdout
    assert "corrected" not in stdout[stdout.index("report: ") :]  # the summary: raw errors only
    assert stdout.count("Underpowered at this size") == 1  # one statement, not one line per table
    assert "parsing config_file" not in result.stderr  # MONAI's config warning: silenced for our own bundles
    page = json.loads((out / "report" / "report.json").read_text())
    # every section but the many-to-one one, which this configuration has no section for (it says what it missed)
    assert all(section["present"] for name, section in page["sections"].items() if name != "many-to-one")
    assert not page["sections"]["many-to-one"]["present"] and page["sections"]["many-to-one"]["missing"]
    seed_table = page["sections"]["brain-age"]["tables"]["bundle-seeds"]
    assert seed_table["caption"] == "brain_age bundle over 2 training seeds (test split)"
    seed_table = seed_table["records"]
    assert [row["metric"] for row in seed_table] == ["mae", "r"] and seed_table[0]["mean"] == pytest.approx(mae["mean"])
    stages = [row["stage"] for row in page["sections"]["provenance"]["tables"]["wall-time"]["records"]]
    assert {"preprocess", "cyclegan_train", "harmonizer_seeds", "evaluation", "benchmark_pooled"} <= set(stages)
    assert yaml.safe_load((out / "config.yaml").read_text())["harmonization"]["epochs"] == 1  # the run's own config


def test_demo_rerun_resumes(tiny_demo):
    """A re-run reuses the phantom, the preprocessed images, the CycleGAN, the harmonized images, the
    evaluation and every trained model (benchmark included)."""
    out, _ = tiny_demo
    model_mtime = (out / "cyclegan" / "ukb-oasis" / "models" / "model.pt").stat().st_mtime_ns
    second_mtime = (out / "benchmark" / "harmonizers" / "seed1" / "models" / "model.pt").stat().st_mtime_ns
    bench_mtime = (out / "benchmark" / "pooled" / "raw" / "seed0" / "models" / "model.pt").stat().st_mtime_ns
    grid_model = out / "augment_grid" / "repeat-0" / "none_X1_Y0" / "models" / "model.pt"
    grid_mtime = grid_model.stat().st_mtime_ns
    again = subprocess.run(
        _exe() + ["demo", "--out", str(out), "--quiet", *TINY_DEMO], capture_output=True, text=True, timeout=900
    )
    log = (out / "logs" / "demo.log").read_text()
    assert again.returncode == 0, again.stderr
    assert "(reused" in log and "12 ok (12 resumed)" in log and "harmonize: 4 images (4 resumed)" in log
    assert (out / "cyclegan" / "ukb-oasis" / "models" / "model.pt").stat().st_mtime_ns == model_mtime
    assert (out / "benchmark" / "harmonizers" / "seed1" / "models" / "model.pt").stat().st_mtime_ns == second_mtime
    assert (out / "benchmark" / "pooled" / "raw" / "seed0" / "models" / "model.pt").stat().st_mtime_ns == bench_mtime
    assert grid_model.stat().st_mtime_ns == grid_mtime  # the preprocessing's resumed flags do not retrain the grid
    assert "brain age (controls, test split), reused" in again.stdout and "(reused in" in again.stdout


def test_full_scale_config_is_valid():
    """`mriharmony demo --scale full` reads configs/demo_full.yaml, checked like the demo's (no work done here)."""
    from pipeline.config import load_config
    from pipeline.demo import SCALES, check_demo_config

    parts = check_demo_config(load_config(SCALES["full"]))
    assert parts.phantom.subjects_per_site == 100 and parts.augmentation.repeats == 5
    assert parts.benchmark.seeds == 5 and parts.harmonization.spatial_size == [64, 64, 64]


#: What makes a protocol (the same in the study and the full configuration); everything else is size.
PROTOCOL_KEYS = [
    "phantom.sites",
    "phantom.resolution_is_realistic",
    "phantom.effects",
    "phantom.seed",
    "splits.stratify",
    "splits.seed",
    "splits.traveling",
    "harmonization.source_site",
    "harmonization.target_site",
    "evaluation",
    "benchmark.protocols",
    "benchmark.cross_validated_folds",
    "augmentation.arms",
    "many_to_one.reference_site",
    "many_to_one.held_out_sites",
]


def _protocol(config: dict) -> dict:
    out = {}
    for key in PROTOCOL_KEYS:
        if key == "phantom.resolution_is_realistic":
            out[key] = config["phantom"]["resolution"] in (1.0, 1.5, 2.0)
            continue
        value = config
        for part in key.split("."):
            value = value[part]
        out[key] = value
    return out


def test_study_config_has_the_full_protocol_at_a_cpu_size():
    """The study (configs/demo_study.yaml) is the evidence run: the full configuration's protocol, smaller; at least
    5 sites x 60 subjects + 8 traveling, test splits of 20 or more per site, 3 downstream and 2 harmonizer seeds,
    and a many-to-one harmonizer that never sees one of the sites."""
    from pipeline.config import load_config
    from pipeline.demo import SCALES, check_demo_config

    study, full = load_config(SCALES["study"]), load_config(SCALES["full"])
    assert _protocol(study) == _protocol(full)
    parts = check_demo_config(study)
    spec = parts.phantom
    assert len(spec.sites) >= 5 and spec.subjects_per_site >= 60 and spec.traveling >= 8
    assert parts.many_to_one.held_out_sites and parts.many_to_one.seeds >= 2
    assert spec.subjects_per_site * study["splits"]["fractions"][2] >= 20
    assert study["benchmark"]["seeds"] >= 3 and study["benchmark"]["harmonizer_seeds"] >= 2
    assert study["augmentation"]["repeats"] >= 3  # the grid's intervals carry the training variance
    assert set(study["evaluation"]["baselines"]) == {"identity", "histogram", "zscore", "combat"}


@pytest.mark.parametrize(
    "override, message",
    [
        ("phantom.colour=3", "unknown key 'phantom.colour'"),
        ("phantom.sites=[adni,mars]", r"phantom.sites: unknown site(s) ['mars']"),
        ("phantom.resolution=20", "phantom.resolution: expected a voxel size between 0.5 and 8 mm"),
        ("splits=3", "splits: expected a mapping with keys ['fractions', 'seed', 'stratify', 'traveling'], got 3"),
        ("evaluation.probes_extra=1", "unknown key 'evaluation.probes_extra'"),
        ("benchmark.bundle.colour=red", "unknown key 'benchmark.bundle.colour'"),
        (
            "benchmark.protocols=[pooled,table4]",
            "benchmark.protocols: expected some of ['pooled', 'held_out', 'cross_site'], got ['table4']",
        ),
        ("benchmark.harmonizer_seeds=0", "benchmark.harmonizer_seeds: expected at least 1, got 0"),
        ("harmonization.target_site=mars", "harmonization.target_site: 'mars' is not a phantom site"),
    ],
)
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
    held = tmp_path / "held.tsv"
    assert main(["split", str(table), "--out", str(held), "--fractions", "0.7", "0.3", "--traveling", "test"]) == 0
    cohort = pd.read_csv(table, sep="\t", keep_default_na=False)
    traveling = set(cohort.groupby("subject")["site"].nunique().loc[lambda n: n > 1].index.astype(str))
    held_splits = pd.read_csv(held, sep="\t", dtype={"subject": str}).set_index("subject")["split"]
    assert traveling and (held_splits[sorted(traveling)] == "test").all()

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
