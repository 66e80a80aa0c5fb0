"""Biology within site: known AD effects and age slopes are found, an erased effect is not "kept", a rescaled
one is, and a site whose raw effect is nil is at its floor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate.within_site_biology import within_site_biology

MEASURES = ["hippocampus_mean", "ventricles_mean", "gm_mean"]


def _cohort(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Site ``clinic``: 30 CN and 30 AD, hippocampus lower by 1.5 SD in AD, gm falling 0.5 SD per decade;
    site ``quiet``: 30 CN and 4 AD with no AD effect; 3 traveling controls at both sites (all CN)."""
    rng = np.random.default_rng(seed)
    rows, values = [], []
    for site, n_cn, n_ad, d in (("clinic", 30, 30, -1.5), ("quiet", 30, 4, 0.0)):
        for k in range(n_cn + n_ad):
            ad = k >= n_cn
            age = rng.uniform(50, 90)
            rows.append({"subject": f"{site}{k}", "site": site, "age": age, "diagnosis": "AD" if ad else "CN"})
            values.append(
                {
                    "hippocampus_mean": rng.normal(d if ad else 0.0, 1.0),
                    "ventricles_mean": rng.normal(-d if ad else 0.0, 1.0),
                    "gm_mean": -0.05 * (age - 70) + rng.normal(0.0, 1.0),
                }
            )
    for k in range(3):
        for site in ("clinic", "quiet"):
            rows.append({"subject": f"t{k}", "site": site, "age": 70.0, "diagnosis": "CN"})
            values.append({m: 100.0 for m in MEASURES})  # absurd values: must not enter any estimate
    return pd.DataFrame(rows), pd.DataFrame(values)


@pytest.fixture(scope="module")
def result() -> pd.DataFrame:
    table, identity = _cohort()
    clinic = (table["site"] == "clinic").to_numpy()
    erased = identity.copy()
    erased.loc[clinic, "hippocampus_mean"] = np.random.default_rng(1).normal(0, 1, clinic.sum())
    features = {"identity": identity, "rescaled": identity * 3.0 + 7.0, "erased": erased}
    traveling = table["subject"].str.startswith("t").to_numpy()
    out = within_site_biology(features, table, MEASURES, exclude=traveling, n_resamples=300, seed=0)
    return out.set_index(["condition", "site", "effect", "measure"])


def test_the_known_ad_effect_is_found_and_rescaling_keeps_it(result):
    raw = result.loc[("identity", "clinic", "AD", "hippocampus_mean")]
    assert -2.2 < raw["estimate"] < -1.0 and raw["high"] < 0 and not raw["floor"]
    assert raw["n_subjects"] == 60  # the traveling subjects are left out
    rescaled = result.loc[("rescaled", "clinic", "AD", "hippocampus_mean")]
    assert rescaled["kept"] and rescaled["difference_to_identity"] == pytest.approx(0.0, abs=1e-9)


def test_an_erased_effect_is_not_kept_and_its_paired_difference_excludes_zero(result):
    erased = result.loc[("erased", "clinic", "AD", "hippocampus_mean")]
    assert not erased["kept"]
    assert erased["difference_low"] > 0  # the effect was negative: erasing it moves it up


def test_a_site_without_an_effect_is_at_its_floor(result):
    quiet_ad = result.loc[("identity", "quiet", "AD", "hippocampus_mean")]
    assert quiet_ad["floor"] and quiet_ad["low"] < 0 < quiet_ad["high"]
    quiet_age = result.loc[("identity", "quiet", "age", "hippocampus_mean")]
    assert quiet_age["floor"]  # no age slope in the hippocampus: "kept" cannot fail there
    slope = result.loc[("identity", "clinic", "age", "gm_mean")]
    assert slope["high"] < 0 and not slope["floor"]


def test_diagnosis_probe_per_site_with_floor(result):
    probe = result.loc[("identity", "clinic", "diagnosis probe", "regional means")]
    assert probe["estimate"] > 0.7 and not probe["floor"]
    erased = result.loc[("erased", "clinic", "diagnosis probe", "regional means")]
    assert erased["difference_to_identity"] < 0.05


def test_identity_is_required():
    table, identity = _cohort()
    with pytest.raises(ValueError, match="identity"):
        within_site_biology({"other": identity}, table, MEASURES)
