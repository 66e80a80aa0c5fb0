"""The demo's many-to-one section on a tiny five-site phantom: one harmonizer for every site but the held-out one,
every site evaluated beside the baselines (ComBat on the seen sites only, the pairwise CycleGAN on its own site),
the cross-site brain age against the held-out site, the summary record and its report section."""

from __future__ import annotations

import json

import pytest

from pipeline.cli import main
from pipeline.config import ConfigError
from pipeline.demo_config import ManyToOneSection
from pipeline.experiments.harmonization_evaluation import COMBAT_UNSEEN
from pipeline.run import ManyToOneSummary, RunLayout

SITES = ("adni", "aibl", "oasis", "ukb", "hospital")
CONFIG = {
    "phantom": {"sites": list(SITES), "subjects_per_site": 5, "traveling": 3, "resolution": 4.0, "seed": 0},
    "splits": {"fractions": [0.6, 0.2, 0.2], "stratify": ["site"], "seed": 0, "traveling": "test"},
    "preprocess": {"skullstrip": {"precision": "bf16"}},
    "harmonization": {
        "source_site": "ukb",
        "target_site": "oasis",
        "epochs": 1,
        "batch_size": 2,
        "spatial_size": [64, 64, 64],
        "net_kwargs": {"channels": 4, "n_residual": 1},
        "disc_kwargs": {"channels": 4},
    },
    "evaluation": {"split": "test", "probes": ["linear"], "resamples": 20},
    "many_to_one": {
        "reference_site": "ukb",
        "held_out_sites": ["hospital"],
        "seeds": 1,
        "epochs": 1,
        "batch_size": 2,
        "net_kwargs": {"channels": [4, 8, 8]},
        "disc_kwargs": {"channels": [4, 8, 8]},
        "brain_age_seeds": 1,
        "brain_age": {
            "epochs": 1,
            "batch_size": 2,
            "spatial_size": [16, 16, 16],
            "net_kwargs": {"channels": [4, 4, 4, 4, 4], "hidden": 8},
        },
    },
}


def test_the_section_is_checked_before_work():
    with pytest.raises(ConfigError, match="many_to_one.held_out_sites: expected one or more phantom sites other"):
        ManyToOneSection.from_dict({"reference_site": "ukb", "held_out_sites": ["ukb"]}, SITES)
    with pytest.raises(ConfigError, match="many_to_one.reference_site: 'mars' is not a phantom site"):
        ManyToOneSection.from_dict({"reference_site": "mars", "held_out_sites": ["adni"]}, SITES)
    with pytest.raises(ConfigError, match="leaves no site to train on"):
        ManyToOneSection.from_dict({"reference_site": "ukb", "held_out_sites": ["adni"]}, ("adni", "ukb"))
    section = ManyToOneSection.from_dict(CONFIG["many_to_one"], SITES)
    assert section.bundle_overrides() == {
        "epochs": 1,
        "batch_size": 2,
        "net_kwargs#channels": [4, 8, 8],
        "disc_kwargs#channels": [4, 8, 8],
    }


# a whole demo run with the many-to-one section (a few minutes): in the slow set, which CI runs too
@pytest.mark.slow
def test_the_many_to_one_section_of_a_demo_run(tmp_path):
    from pipeline.atomic import write_yaml

    write_yaml(tmp_path / "config.yaml", CONFIG)
    out = tmp_path / "run"
    assert main(["demo", "--config", str(tmp_path / "config.yaml"), "--out", str(out), "--quiet"]) == 0
    run = RunLayout(out)
    summary = ManyToOneSummary.read(run.many_to_one_summary)
    assert (summary.reference_site, summary.held_out_sites) == ("ukb", ["hospital"])
    assert summary.source_sites == ["adni", "aibl", "oasis"]
    assert list(summary.sites) == ["hospital", "adni", "aibl", "oasis"]
    hospital, oasis = summary.sites["hospital"], summary.sites["oasis"]
    assert hospital["held_out"] and hospital["unseen"] and not oasis["held_out"] and not oasis["unseen"]
    # ComBat on seen sites only; the pairwise CycleGAN (ukb <-> oasis) beside the many-to-one on oasis alone
    assert hospital["conditions"] == ["identity", "many_to_one", "histogram", "zscore"]
    assert oasis["conditions"] == ["identity", "many_to_one", "cyclegan", "histogram", "zscore", "combat"]
    assert hospital["not_applicable"] == {"combat": COMBAT_UNSEEN, "features_combat": COMBAT_UNSEEN}
    assert hospital["n_traveling"] == 3 and {r["condition"] for r in hospital["traveling_mae"]} >= {"many_to_one"}
    assert {r["test_site"] for r in hospital["brain_age_cross_site"]} == {"hospital", "ukb"}
    assert not any("combat" in r["condition"] for r in hospital["brain_age_cross_site"])
    assert {r["condition"] for r in hospital["brain_age_cross_site"]} >= {"raw", "many_to_one", "histogram"}
    # the harmonizer never saw hospital, nor any traveling subject
    info = json.loads((run.many_to_one_harmonizer(0) / "models" / "run_info.json").read_text())
    assert info["unseen_sites"] == ["hospital"] and not any(s.startswith("trav") for s in info["train_subjects"])
    # the report has the section, with the held-out site flagged
    report = json.loads(run.report_json.read_text())["sections"]["many-to-one"]
    assert report["present"]
    rows = report["tables"]["traveling-mae"]["records"]
    assert {(r["site"], r["status"]) for r in rows} >= {("hospital", "held out"), ("oasis", "seen")}
    assert any("hospital: combat not applicable" in n for n in report["notes"])
    assert any("underpowered for fidelity: 3 traveling subjects" in n for n in report["notes"])
