"""`mriharmony evaluate site-effects`: the dark / bright phantom's scanner difference survives every
adjustment; per-site IQM medians are the preprocessing table's."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.preprocess.batch import read_preprocessed


def test_site_effects_of_a_contrast_pair(contrast_pair, tmp_path, capsys):
    out = tmp_path / "effects"
    assert (
        main(
            [
                "evaluate",
                "site-effects",
                "--raw",
                str(contrast_pair / "preprocessed"),
                "--out",
                str(out),
                "--resamples",
                "100",
            ]
        )
        == 0
    )
    assert "linear site probe" in capsys.readouterr().out
    report = json.loads((out / "site_effects.json").read_text())
    probes = pd.DataFrame(report["probes"]).set_index(["sites", "probe", "adjustment"])
    assert set(probes.index) == {
        ("bright+dark", p, a) for p in ("linear", "features") for a in ("none", "residualized", "traveling")
    }
    assert (probes["balanced_accuracy"] >= 0.9).all() and (probes["chance"] == 0.5).all()
    raw = read_preprocessed(contrast_pair / "preprocessed")
    traveling = probes.loc[("bright+dark", "linear", "traveling"), "n_subjects"]
    assert traveling == (raw.groupby("subject")["site"].nunique() == 2).sum() < raw["subject"].nunique()
    iqms = pd.read_csv(out / "site_iqms.tsv", sep="\t").set_index("site")
    assert iqms.loc["dark", "snr_wm"] == pytest.approx(raw[raw["site"] == "dark"]["snr_wm"].median())
    assert iqms.loc["dark", "images"] == (raw["site"] == "dark").sum()


def test_site_effects_refuse_one_site(contrast_pair, tmp_path):
    from pipeline.atomic import write_table
    from pipeline.evaluate.site_effects import measure_site_effects

    table = read_preprocessed(contrast_pair / "preprocessed", only_ok=False)
    write_table(tmp_path / "one" / "preprocessed.tsv", table[table["site"] == "dark"])
    with pytest.raises(ValueError, match=r"at least two sites, got \['dark'\]"):
        measure_site_effects(tmp_path / "one", tmp_path / "out")
