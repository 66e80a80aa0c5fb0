"""`mriharmony evaluate harmonization` on the dark / bright phantom: the raw sites are found by the probe,
the baselines change what they should, the harmonized images are the ones read, every table is complete."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.cli import main
from pipeline.evaluate.fidelity import image_fidelity
from pipeline.harmonize import harmonize_cohort, read_harmonized, save_harmonizer
from pipeline.nets import HarmonizationGenerator3D
from pipeline.preprocess.batch import read_preprocessed
from pipeline.table_paths import read_table


@pytest.fixture(scope="module")
def evaluation(contrast_pair, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("evaluation")
    kw = {"channels": 4, "n_residual": 1}
    torch.manual_seed(0)
    g_yx = HarmonizationGenerator3D(**kw)
    with torch.no_grad():  # a generator that visibly changes images (a fresh one starts as the identity)
        for p in g_yx.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ckpt = save_harmonizer(
        folder / "models",
        HarmonizationGenerator3D(**kw),
        g_yx,
        {"source_site": "dark", "target_site": "bright", "net_kwargs": kw},
    )
    harmonize_cohort(
        read_preprocessed(contrast_pair / "preprocessed"),
        ckpt,
        folder / "harm",
        direction="to_source",
        workers=0,
        progress=False,
    )
    code = main(
        [
            "evaluate",
            "harmonization",
            "--raw",
            str(contrast_pair / "preprocessed"),
            "--harmonized",
            str(folder / "harm"),
            "--out",
            str(folder / "eval"),
            "--split",
            "all",
            "--probes",
            "linear",
            "--resamples",
            "100",
        ]
    )
    assert code == 0
    return folder


def _read(path: Path) -> pd.DataFrame:
    return read_table(path, dtype={"subject": str}, keep_default_na=False)


def test_probe_finds_raw_sites_and_combat_removes_them_from_features(evaluation):
    probe = _read(evaluation / "eval" / "site_probe.tsv").set_index(["condition", "probe", "adjustment"])
    adjustments = ("none", "residualized", "traveling")
    assert set(probe.index) == {
        (c, p, a)
        for c in ("identity", "cyclegan", "histogram", "zscore")
        for p in ("linear", "features")
        for a in adjustments
    } | {("combat", "features", a) for a in adjustments}
    for adjustment in adjustments:  # the dark / bright contrast is a scanner effect: no adjustment hides it
        assert probe.loc[("identity", "linear", adjustment), "balanced_accuracy"] >= 0.9
        assert probe.loc[("identity", "features", adjustment), "balanced_accuracy"] >= 0.9
    assert probe.loc[("combat", "features", "none"), "balanced_accuracy"] < 0.7
    # paired to the identity on the same subjects and resamples: ComBat's drop is real, identity's own is 0
    assert probe.loc[("combat", "features", "none"), "difference_high"] < 0
    assert (
        (probe.xs("identity", level="condition")[["difference_to_identity", "difference_low", "difference_high"]] == 0)
        .all()
        .all()
    )
    traveling = probe.xs("traveling", level="adjustment")
    assert (traveling["n_subjects"] < probe.xs("none", level="adjustment").loc[traveling.index, "n_subjects"]).all()
    assert (probe["chance"] == 0.5).all()


def test_biology_leak_pairs_every_condition_to_identity(evaluation):
    leak = _read(evaluation / "eval" / "biology_leak.tsv").set_index(["condition", "input", "task"])
    identity = leak.xs("identity", level="condition")
    assert (identity["difference_to_identity"] == 0).all()
    assert {"age", "diagnosis"} >= set(identity.index.get_level_values("task")) and len(identity) >= 2
    ages = leak.xs("age", level="task")
    assert (ages["metric"] == "mae").all() and (ages["floor"] > 0).all()


def test_traveling_fidelity_reads_the_harmonized_images(evaluation, contrast_pair):
    travel = _read(evaluation / "eval" / "traveling.tsv")
    means = travel.groupby("condition")["mae"].mean()
    assert means["histogram"] < 0.7 * means["identity"]  # matching the dark site's histogram helps
    assert means["oracle"] <= means["histogram"] * 1.05  # the per-pair oracle matches each subject's own image
    intervals = {
        (r["condition"], r["metric"]): r
        for r in json.loads((evaluation / "eval" / "evaluation.json").read_text())["traveling_intervals"]
    }
    assert intervals[("identity", "mae")]["difference_to_identity"] == 0
    histogram = intervals[("histogram", "mae")]
    assert (
        histogram["mean"] == pytest.approx(means["histogram"])
        and histogram["low"] <= histogram["mean"] <= histogram["high"]
    )
    assert histogram["difference_high"] < 0 and histogram["n_subjects"] == travel["subject"].nunique()
    harmonized = read_harmonized(evaluation / "harm")
    raw = read_preprocessed(contrast_pair / "preprocessed")
    subject = travel["subject"].iloc[0]
    made = harmonized[(harmonized["subject"] == subject) & (harmonized["site"] == "bright")]["image_cube"].iloc[0]
    real = raw[(raw["subject"] == subject) & (raw["site"] == "dark")]["image_cube"].iloc[0]
    load = lambda p: torch.from_numpy(np.asarray(nib.load(p).dataobj, np.float32))[None, None]  # noqa: E731
    masks = [
        raw[(raw["subject"] == subject) & (raw["site"] == site)]["mask_cube"].iloc[0] for site in ("bright", "dark")
    ]
    expected = image_fidelity(load(made), load(real), (load(masks[0]) > 0) | (load(masks[1]) > 0))["mae"]
    row = travel[(travel["condition"] == "cyclegan") & (travel["subject"] == subject)].iloc[0]
    assert row["mae"] == pytest.approx(expected, rel=1e-5)
    assert row["mae"] != pytest.approx(
        travel[(travel["condition"] == "identity") & (travel["subject"] == subject)]["mae"].iloc[0]
    )


def test_tsne_biology_and_report(evaluation, contrast_pair):
    raw = read_preprocessed(contrast_pair / "preprocessed")
    tsne = _read(evaluation / "eval" / "tsne.tsv")
    for condition, part in tsne.groupby("condition"):
        assert sorted(zip(part["subject"], part["site"])) == sorted(zip(raw["subject"], raw["site"])), condition
    assert (evaluation / "eval" / "tsne.png").read_bytes()[:4] == b"\x89PNG"
    effects = pd.read_csv(evaluation / "eval" / "biological.tsv", sep="\t").set_index(
        ["condition", "measure", "effect"]
    )
    assert effects.loc[("identity", "ventricles_mean", "age"), "high"] < 0  # older: darker ventricle region
    assert (
        effects.loc[("histogram", "ventricles_mean", "site"), "estimate"]
        < 0.5 * effects.loc[("identity", "ventricles_mean", "site"), "estimate"]
    )
    report = json.loads((evaluation / "eval" / "evaluation.json").read_text())
    assert report["target_site"] == "bright" and report["reference_site"] == "dark" and report["split"] == "all"
    assert report["n_images"] == len(raw)


def test_bad_input_is_named(contrast_pair, tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset_description.json does not exist"):
        from pipeline.experiments.harmonization_evaluation import evaluate_harmonization

        evaluate_harmonization(contrast_pair / "preprocessed", tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match=r"unknown baseline\(s\) \['ants'\]"):
        evaluate_harmonization(contrast_pair / "preprocessed", tmp_path, tmp_path / "out", baselines=["ants"])


def test_baselines_and_combat_are_fitted_on_training_rows_only(evaluation, contrast_pair, tmp_path):
    """Poison every non-training image of the reference site (x 0.3): the histogram, z-score and ComBat fits
    use training rows only, so the target site's harmonized features do not move."""
    from pipeline.atomic import write_table
    from pipeline.experiments.harmonization_evaluation import evaluate_harmonization

    table = read_preprocessed(contrast_pair / "preprocessed", only_ok=False)
    splits = pd.read_csv(contrast_pair / "splits.tsv", sep="\t", dtype={"subject": str}).set_index("subject")["split"]
    poison = (table["site"] == "dark") & (table["subject"].map(splits) != "train")
    assert poison.sum() >= 3
    for i in table.index[poison]:
        image = nib.load(table.loc[i, "image_cube"])
        path = tmp_path / "poisoned" / f"{i}.nii.gz"
        path.parent.mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj) * 0.3, image.affine), path)
        table.loc[i, "image_cube"] = str(path)
    write_table(tmp_path / "raw" / "preprocessed.tsv", table)
    evaluate_harmonization(
        tmp_path / "raw",
        evaluation / "harm",
        tmp_path / "eval",
        split="all",
        splits_file=contrast_pair / "splits.tsv",
        probes=["linear"],
        n_resamples=20,
        baselines=["identity", "histogram", "zscore", "combat"],
    )
    keys = ["condition", "subject", "session", "site"]
    clean = _read(evaluation / "eval" / "features.tsv").set_index(keys).sort_index()
    dirty = _read(tmp_path / "eval" / "features.tsv").set_index(keys).sort_index()
    features = [c for c in clean.columns if c.endswith("_mean")]
    for condition in ("histogram", "zscore", "combat"):
        a, b = (
            t.xs(condition, level="condition").xs("bright", level="site", drop_level=False)[features]
            for t in (clean, dirty)
        )
        np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-6, err_msg=condition)
    poisoned = dirty.xs("identity", level="condition").xs("dark", level="site", drop_level=False)[features]
    assert not np.allclose(
        poisoned.to_numpy(),
        clean.xs("identity", level="condition").xs("dark", level="site", drop_level=False)[features].to_numpy(),
    )  # the poison is real


def test_no_test_covariate_reaches_a_biology_score(ad_pair, tmp_path, monkeypatch):
    """Poison the evaluated rows' ages and diagnoses wherever ComBat could read them: every biology check
    (pooled effects, the CN-vs-AD and age probes, the within-site effects) must stay where it was, because
    ComBat adjusts evaluated rows without their covariates. On the code that passed them to
    ``ComBat.transform`` this test fails: the poisoned covariates moved the ComBat condition's scores."""
    from pipeline.evaluate.combat import ComBat
    from pipeline.experiments.harmonization_evaluation import evaluate_harmonization

    kw = {"channels": 4, "n_residual": 1}
    ckpt = save_harmonizer(
        tmp_path / "models",
        HarmonizationGenerator3D(**kw),
        HarmonizationGenerator3D(**kw),
        {"source_site": "clinicb", "target_site": "clinica", "net_kwargs": kw},
    )
    harmonize_cohort(
        read_preprocessed(ad_pair / "preprocessed"), ckpt, tmp_path / "harm", direction="to_source", workers=0
    )

    def evaluate(out: Path) -> dict:
        return evaluate_harmonization(
            ad_pair / "preprocessed",
            tmp_path / "harm",
            out,
            split="all",
            probes=["linear"],
            n_resamples=50,
            baselines=["identity", "combat"],
        )

    clean = evaluate(tmp_path / "clean")
    fitted_on = []
    original_fit, original_transform = ComBat.fit, ComBat.transform

    def recording_fit(self, features, sites, table):
        fitted_on.append(set(table["subject"]))
        return original_fit(self, features, sites, table)

    def poisoned_transform(self, features, sites, table):
        rng = np.random.default_rng(0)
        table = table.assign(
            age=rng.uniform(20, 100, len(table)), diagnosis=rng.permutation(table["diagnosis"].to_numpy())
        )
        return original_transform(self, features, sites, table)

    monkeypatch.setattr(ComBat, "fit", recording_fit)
    monkeypatch.setattr(ComBat, "transform", poisoned_transform)
    dirty = evaluate(tmp_path / "dirty")
    assert fitted_on, "ComBat was not run"
    splits = pd.read_csv(ad_pair / "splits.tsv", sep="\t", dtype={"subject": str}).set_index("subject")["split"]
    assert all(splits[s] == "train" for s in fitted_on[0])  # fitted on training subjects only
    for key in ("biological", "biology_leak", "within_site_biology"):
        a = pd.DataFrame(clean[key]).query("condition == 'combat'").reset_index(drop=True)
        b = pd.DataFrame(dirty[key]).query("condition == 'combat'").reset_index(drop=True)
        assert len(a), key
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, obj=key)
