"""The 004 brain-age benchmark: same split for every condition, an identity harmonizer changes nothing,
held-out mode tests only subjects outside the CycleGAN's train split, and the outputs are complete."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LinearRegression

from pipeline.cli import main
from pipeline.harmonize import harmonize_cohort
from pipeline.nets import HarmonizationGenerator3D
from pipeline.preprocess.batch import read_preprocessed

NARROW = ["--set", "epochs=1", "--set", "batch_size=4", "--set", "spatial_size=[32,32,32]",
          "--set", "net_kwargs#channels=[4,8,8,16,16]", "--set", "net_kwargs#hidden=16"]


@pytest.fixture(scope="module")
def identity_harmonized(contrast_pair, tmp_path_factory):
    """bright harmonized 'to source' (dark) by an untrained generator, which is exactly the identity."""
    kw = {"channels": 4, "n_residual": 1, "output_activation": "residual"}
    ckpt = tmp_path_factory.mktemp("identity") / "model.pt"
    torch.save({"g_xy": HarmonizationGenerator3D(**kw).state_dict(), "g_yx": HarmonizationGenerator3D(**kw).state_dict(),
                "info": {"source_site": "dark", "target_site": "bright", "net_kwargs": kw, "spatial_size": [64] * 3}}, ckpt)
    out = ckpt.parent / "harm"
    harmonize_cohort(read_preprocessed(contrast_pair / "preprocessed"), ckpt, out, direction="to_source", progress=False)
    return out


def test_identity_harmonization_changes_nothing(contrast_pair, identity_harmonized, tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["benchmark", "brain-age", "--raw", str(contrast_pair / "preprocessed"), "--harmonized",
                 str(identity_harmonized), "--source-site", "dark", "--target-site", "bright", "--seeds", "2",
                 "--out", str(out), *NARROW])
    assert code == 0 and "004 Table 2" in capsys.readouterr().out
    results = pd.read_csv(out / "results.tsv", sep="\t")
    assert sorted(results["condition"].unique()) == ["none", "to_source"] and len(results) == 4
    for seed in (0, 1):
        none, harm = (results[(results["seed"] == seed) & (results["condition"] == c)].iloc[0] for c in ("none", "to_source"))
        assert harm["mae"] == pytest.approx(none["mae"], rel=1e-4)  # identical images, same split, same seed
        assert none["mae_ci_low"] <= none["mae"] <= none["mae_ci_high"]
    splits = [pd.read_csv(out / f"splits_seed{s}.tsv", sep="\t", dtype={"subject": str}) for s in (0, 1)]
    assert not splits[0].equals(splits[1])  # a new split per seed
    test_share = (splits[0]["split"] == "test").mean()
    assert 0.25 <= test_share <= 0.35
    pred = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"subject": str})
    seed0 = pred[(pred["seed"] == 0) & (pred["condition"] == "none")]
    assert set(seed0["subject"]) == set(splits[0].loc[splits[0]["split"] == "test", "subject"])
    assert np.isfinite(seed0["corrected_gap"]).all() and np.isfinite(results["corrected_mae"]).all()
    # the volume baseline: the same number for every condition of a seed, as fitted by hand here
    volume = results.loc[results["seed"] == 0, "volume_linear_mae"].to_numpy()
    assert volume[0] == pytest.approx(volume[1])
    truth = pd.read_csv(contrast_pair / "bids" / "derivatives" / "phantom" / "truth.tsv", sep="\t",
                        dtype={"subject": str, "session": str}, keep_default_na=False)
    every = pd.read_csv(out / "none" / "seed0" / "predictions.tsv", sep="\t", dtype={"subject": str},
                        keep_default_na=False).merge(truth[["subject", "session", "ventricles_ml", "hippocampus_ml"]],
                                                     on=["subject", "session"])
    fit = {name: part for name, part in every.groupby("split")}
    model = LinearRegression().fit(np.log(fit["train"][["ventricles_ml", "hippocampus_ml"]]), fit["train"]["age"])
    by_hand = np.abs(model.predict(np.log(fit["test"][["ventricles_ml", "hippocampus_ml"]])) - fit["test"]["age"]).mean()
    assert volume[0] == pytest.approx(by_hand, rel=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert {row["condition"] for row in summary["summary"]} == {"none", "to_source"}
    assert (out / "scatter_none.png").stat().st_size > 1000 and (out / "scatter_to_source.png").exists()


def test_held_out_mode_tests_only_unseen_subjects(contrast_pair, identity_harmonized, tmp_path):
    out = tmp_path / "held"
    assert main(["benchmark", "brain-age", "--raw", str(contrast_pair / "preprocessed"), "--harmonized",
                 str(identity_harmonized), "--source-site", "dark", "--target-site", "bright", "--seeds", "1",
                 "--held-out", "--out", str(out), *NARROW]) == 0
    gan = pd.read_csv(contrast_pair / "splits.tsv", sep="\t", dtype={"subject": str})
    seen = set(gan.loc[gan["split"] == "train", "subject"])
    pred = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"subject": str})
    assert len(pred) > 0 and not (set(pred["subject"]) & seen)
    assert np.isfinite(pred["predicted_age"]).all()
