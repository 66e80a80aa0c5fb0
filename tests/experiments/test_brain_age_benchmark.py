"""The brain-age benchmark: the same split for every condition, an identity harmonizer changes nothing, no
bias-corrected error anywhere, held-out tests only subjects no CycleGAN saw (read from the checkpoint),
cross-site trains on one site and tests on the other, and its baselines never see a test row or a test age."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from pipeline.cli import main
from pipeline.experiments.brain_age_benchmark import (
    _feature_predictions,
    _histogram_matched,
    _score_runs,
    _summarise,
    controls,
    run_brain_age_benchmark,
)
from pipeline.experiments.harmonizer_seeds import harmonizer_from_folders, seen_subjects
from pipeline.harmonize import harmonize_cohort, read_harmonizer_info, save_harmonizer
from pipeline.nets import HarmonizationGenerator3D
from pipeline.preprocess.batch import read_preprocessed
from pipeline.table_paths import read_table

NARROW = {
    "epochs": 1,
    "batch_size": 4,
    "spatial_size": [32, 32, 32],
    "net_kwargs#channels": [4, 8, 8, 16, 16],
    "net_kwargs#hidden": 16,
}
NARROW_CLI = [arg for key, value in NARROW.items() for arg in ("--set", f"{key}={json.dumps(value)}")]


def _seen(contrast_pair) -> tuple[list[str], list[str]]:
    """What a CycleGAN on this split would record: train-split subjects scanned at one site, and the
    traveling subjects of train / val that chose its checkpoint."""
    table = read_preprocessed(contrast_pair / "preprocessed")
    splits = pd.read_csv(contrast_pair / "splits.tsv", sep="\t", dtype={"subject": str})
    sites = table.groupby("subject")["site"].nunique()
    split = splits.set_index("subject")["split"]
    train = sorted(s for s in sites.index if sites[s] == 1 and split[s] == "train")
    val = sorted(s for s in sites.index if sites[s] > 1 and split[s] != "test")
    return train, val


@pytest.fixture(scope="module")
def identity(contrast_pair, tmp_path_factory):
    """An untrained generator (exactly the identity), harmonizing both ways; its checkpoint records the
    subjects a CycleGAN on this split would have seen."""
    kw = {"channels": 4, "n_residual": 1, "output_activation": "residual"}
    folder = tmp_path_factory.mktemp("identity")
    train, val = _seen(contrast_pair)
    info = {
        "source_site": "dark",
        "target_site": "bright",
        "net_kwargs": kw,
        "spatial_size": [64] * 3,
        "train_subjects": train,
        "val_subjects": val,
    }
    save_harmonizer(folder, HarmonizationGenerator3D(**kw), HarmonizationGenerator3D(**kw), info)
    table = read_preprocessed(contrast_pair / "preprocessed")
    for direction in ("to_source", "to_target"):
        harmonize_cohort(table, folder / "model.pt", folder / direction, direction=direction, progress=False)
    return harmonizer_from_folders(folder / "to_source", folder / "to_target")


def test_pooled_identity_harmonization_changes_nothing_and_no_corrected_error(
    contrast_pair, identity, tmp_path, capsys
):
    out = tmp_path / "bench"
    code = main(
        [
            "benchmark",
            "brain-age",
            "--raw",
            str(contrast_pair / "preprocessed"),
            "--harmonized",
            str(identity.to_source),
            "--source-site",
            "dark",
            "--target-site",
            "bright",
            "--seeds",
            "2",
            "--protocol",
            "pooled",
            "--out",
            str(out),
            *NARROW_CLI,
        ]
    )
    assert code == 0 and "protocol pooled" in capsys.readouterr().out
    results = read_table(out / "results.tsv")
    # the CNN conditions, and beside them the ridge on regional mean T1 (raw and after ComBat)
    assert sorted(results["condition"].unique()) == ["features_combat", "features_raw", "raw", "to_source"]
    assert len(results) == 8
    for seed in (0, 1):
        raw, harm = (
            results[(results["seed"] == seed) & (results["condition"] == c)].iloc[0] for c in ("raw", "to_source")
        )
        assert harm["mae"] == pytest.approx(raw["mae"], rel=1e-4)  # identical images, same split, same seed
    summary = read_table(out / "summary.tsv").set_index("condition")
    assert abs(summary.loc["to_source", "diff_low"]) < 0.02 and abs(summary.loc["to_source", "diff_high"]) < 0.02
    assert (summary["mae_low"] <= summary["mae_mean"]).all() and (summary["mae_mean"] <= summary["mae_high"]).all()
    assert {"r2_mean", "gap_age_r_mean", "mean_predictor_mae", "volume_linear_mae"} <= set(summary.columns)
    assert np.allclose(summary["vs_mean"], summary["mae_mean"] - summary["mean_predictor_mae"])
    assert (summary["vs_mean_low"] <= summary["vs_mean_high"]).all()
    # no bias-corrected error in any output: it uses the test ages and flatters a constant predictor
    predictions = read_table(out / "predictions.tsv")
    for table in (results, summary.reset_index(), predictions):
        assert not [c for c in table.columns if "corrected" in c], list(table.columns)
    splits = [pd.read_csv(out / f"splits_seed{s}.tsv", sep="\t", dtype={"subject": str}) for s in (0, 1)]
    assert not splits[0].equals(splits[1])  # a new split per seed
    assert 0.25 <= (splits[0]["split"] == "test").mean() <= 0.35
    seed0 = predictions[(predictions["seed"] == 0) & (predictions["condition"] == "raw")]
    assert set(seed0["subject"].astype(str)) == set(splits[0].loc[splits[0]["split"] == "test", "subject"])
    # the volume baseline, fitted by hand on the same training controls
    truth = pd.read_csv(
        contrast_pair / "bids" / "derivatives" / "phantom" / "truth.tsv",
        sep="\t",
        dtype={"subject": str, "session": str},
        keep_default_na=False,
    )
    rows = controls(contrast_pair / "preprocessed", "dark", "bright").merge(splits[0], on="subject")
    rows = rows.merge(truth[["subject", "session", "ventricles_ml", "hippocampus_ml"]], on=["subject", "session"])
    fit, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
    model = LinearRegression().fit(np.log(fit[["ventricles_ml", "hippocampus_ml"]]), fit["age"])
    by_hand = np.abs(model.predict(np.log(test[["ventricles_ml", "hippocampus_ml"]])) - test["age"]).mean()
    volume = results.loc[results["seed"] == 0, "volume_linear_mae"].to_numpy()
    assert volume[0] == pytest.approx(by_hand, rel=1e-6) and volume[1] == pytest.approx(volume[0])
    assert (out / "scatter_dark+bright_dark+bright_raw.png").stat().st_size > 1000


def test_held_out_trains_and_tests_only_on_subjects_the_cyclegan_never_saw(contrast_pair, identity, tmp_path):
    """Komandur et al. Table 3: controls outside the checkpoint's train_subjects and val_subjects, 70:30 per
    seed; traveling subjects that chose the checkpoint count as seen."""
    out = tmp_path / "held"
    run_brain_age_benchmark(
        contrast_pair / "preprocessed",
        out,
        [identity],
        source_site="dark",
        target_site="bright",
        protocol="held_out",
        seeds=1,
        bundle_overrides=NARROW,
        n_resamples=50,
    )
    seen = seen_subjects(identity.checkpoint)
    train, val = _seen(contrast_pair)
    assert seen == set(train) | set(val) and val  # the traveling subjects of train / val are in it
    splits = pd.read_csv(out / "splits_seed0.tsv", sep="\t", dtype={"subject": str})
    used = splits[splits["split"].isin(["train", "test"])]
    assert not set(used["subject"]) & seen  # neither trained nor tested on a seen subject
    assert set(splits.loc[splits["split"] == "excluded", "subject"]) <= seen
    assert 0.2 <= (used["split"] == "test").mean() <= 0.4
    predictions = read_table(out / "predictions.tsv")
    assert set(predictions["subject"].astype(str)) == set(splits.loc[splits["split"] == "test", "subject"])
    assert json.loads((out / "summary.json").read_text())["excluded_seen_subjects"] == sorted(seen)
    # a checkpoint that does not record its validation subjects cannot be checked: refused
    info = read_harmonizer_info(identity.checkpoint)
    del info["val_subjects"]
    kw = info["net_kwargs"]
    old = save_harmonizer(tmp_path / "old", HarmonizationGenerator3D(**kw), HarmonizationGenerator3D(**kw), info)
    with pytest.raises(ValueError, match=r"no \['val_subjects'\]"):
        seen_subjects(old)


def test_cross_site_trains_on_one_site_and_tests_the_other(contrast_pair, identity, tmp_path):
    out = tmp_path / "cross"
    summary = run_brain_age_benchmark(
        contrast_pair / "preprocessed",
        out,
        [identity],
        source_site="dark",
        target_site="bright",
        protocol="cross_site",
        seeds=1,
        bundle_overrides=NARROW,
        n_resamples=50,
    )
    conditions = {"raw", "cyclegan", "histogram", "features_raw", "features_combat"}
    for train_site, test_site in (("dark", "bright"), ("bright", "dark")):
        part = summary[(summary["train_site"] == train_site) & (summary["test_site"] == test_site)]
        assert set(part["condition"]) == conditions
        settings = json.loads(
            (out / f"{train_site}_to_{test_site}" / "raw" / "seed0" / "train_settings.json").read_text()
        )["settings"]
        assert settings["overrides"]["sites"] == [train_site]  # trained on the training site only
        # the same raw model on its own site's test controls; the penalty is measured from it
        within = summary[(summary["train_site"] == train_site) & (summary["test_site"] == train_site)]
        assert list(within["condition"]) == ["raw"] and within["penalty"].isna().all()
        expected = part["mae_mean"] - within["mae_mean"].iloc[0]
        np.testing.assert_allclose(part["penalty"], expected, rtol=1e-9)
        assert np.isfinite(part[["penalty_low", "penalty_high"]].to_numpy()).all()
        assert (part["penalty_low"] < part["penalty_high"]).all()
    predictions = read_table(out / "predictions.tsv")
    splits = pd.read_csv(out / "splits_seed0.tsv", sep="\t", dtype={"subject": str})
    for (train_site, test_site, condition), part in predictions.groupby(["train_site", "test_site", "condition"]):
        assert set(part["site"]) == {test_site}, condition
        tested = set(part["subject"].astype(str))
        assert tested <= set(splits.loc[splits["split"] == "test", "subject"]), condition
    across = predictions[predictions["train_site"] != predictions["test_site"]]
    raw = across[across["condition"] == "raw"].sort_values(["train_site", "subject"])
    same = across[across["condition"] == "cyclegan"].sort_values(["train_site", "subject"])
    np.testing.assert_allclose(same["predicted_age"], raw["predicted_age"], rtol=1e-5)  # identity harmonizer


def test_cross_site_baselines_never_see_a_test_row_or_a_test_age(contrast_pair, tmp_path):
    """Poison the test rows (their ages, one image): the ComBat and histogram fits do not move, so every other
    test subject's prediction stays the same."""
    table = controls(contrast_pair / "preprocessed", "dark", "bright")
    splits = pd.read_csv(contrast_pair / "splits.tsv", sep="\t", dtype={"subject": str})
    rows = table.merge(splits.assign(split=splits["split"].replace({"val": "train"})), on="subject")
    train = rows[(rows["site"] == "dark") & (rows["split"] == "train")]
    test = rows[(rows["site"] == "bright") & (rows["split"] == "test")].reset_index(drop=True)
    other_train = rows[(rows["site"] == "bright") & (rows["split"] == "train")]
    clean = _feature_predictions(train, test, other_train)
    poisoned_test = test.assign(age=0.0)
    image = nib.load(test.loc[0, "image_cube"])
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj) * 0.3, image.affine), tmp_path / "poison.nii.gz")
    poisoned_test.loc[0, "image_cube"] = str(tmp_path / "poison.nii.gz")
    poisoned = _feature_predictions(train, poisoned_test, other_train)
    for name in ("features_raw", "features_combat"):
        np.testing.assert_allclose(
            poisoned[name]["predicted_age"].iloc[1:], clean[name]["predicted_age"].iloc[1:], rtol=1e-9
        )
        assert poisoned[name]["predicted_age"].iloc[0] != pytest.approx(clean[name]["predicted_age"].iloc[0])
    # histogram matching is fitted on the training site's training images only
    a = read_table(_histogram_matched(train, test, tmp_path / "a") / "preprocessed.tsv")
    b = read_table(_histogram_matched(train, poisoned_test, tmp_path / "b") / "preprocessed.tsv")
    for k in range(1, len(test)):
        np.testing.assert_array_equal(
            np.asarray(nib.load(a["image_cube"][k]).dataobj), np.asarray(nib.load(b["image_cube"][k]).dataobj)
        )


def _runs_predicting(predicted: np.ndarray, ages: np.ndarray, train_mean: float) -> list[dict]:
    test = pd.DataFrame(
        {
            "subject": [f"s{i:02d}" for i in range(len(ages))],
            "session": "",
            "site": "a",
            "age": ages,
            "predicted_age": predicted,
        }
    )
    return [
        {
            "condition": "raw",
            "seed": seed,
            "harmonizer_seed": None,
            "train_site": "a",
            "test_site": "a",
            "test": test,
            "train_mean_age": train_mean,
            "volume_linear_mae": float("nan"),
        }
        for seed in range(3)
    ]


def test_vs_mean_is_paired_to_the_training_mean_predictor():
    """A model that predicts the training mean sits exactly on the floor (difference 0, interval [0, 0]); one
    with a real age signal beats it with an interval below 0; one that is worse than the mean is above it."""
    rng = np.random.default_rng(0)
    ages = rng.uniform(50, 90, 30)
    train_mean = 70.0
    cases = {
        "mean": np.full(30, train_mean),
        "signal": ages + rng.normal(0, 3, 30),
        "worse": train_mean - (ages - train_mean),
    }  # anti-correlated with age
    rows = {}
    for name, predicted in cases.items():
        runs = _runs_predicting(predicted, ages, train_mean)
        results, _ = _score_runs(runs, 200)
        rows[name] = _summarise(runs, results, 200).iloc[0]
    assert rows["mean"]["vs_mean"] == pytest.approx(0.0, abs=1e-9)
    assert rows["mean"]["vs_mean_low"] == pytest.approx(0.0, abs=1e-9) and rows["mean"][
        "vs_mean_high"
    ] == pytest.approx(0.0, abs=1e-9)
    assert rows["signal"]["vs_mean_high"] < 0 and rows["signal"]["vs_mean"] < -5
    assert rows["worse"]["vs_mean_low"] > 0
