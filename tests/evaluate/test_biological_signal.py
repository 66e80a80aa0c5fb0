"""Biological signal: known age slopes, AD effects and site effects are recovered from synthetic measures,
and the regional measures of real phantom images carry the age effect within a site."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate.biological_signal import biological_effects
from pipeline.evaluate.regional_features import REGIONS, regional_feature_table
from pipeline.preprocess.batch import read_preprocessed

RNG = np.random.default_rng(0)


def _measures(site_shift: float) -> pd.DataFrame:
    n = 400
    data = pd.DataFrame(
        {"site": np.repeat(["a", "b"], n // 2), "age": RNG.uniform(50, 90, n), "diagnosis": RNG.choice(["CN", "AD"], n)}
    )
    noise = RNG.normal(0, 0.02, n)
    data["m"] = (
        0.5
        - 0.01 * (data["age"] - 70) / 10
        - 0.03 * (data["diagnosis"] == "AD")
        + site_shift * (data["site"] == "b")
        + noise
    )
    return data


def test_recovers_known_age_slope_ad_effect_and_site_effect():
    raw = biological_effects(_measures(0.1), ["m"], condition="raw").set_index("effect")
    assert raw.loc["age", "estimate"] == pytest.approx(-0.01, abs=0.003)  # per decade
    assert raw.loc["age", "low"] < -0.01 < raw.loc["age", "high"]
    assert raw.loc["AD", "estimate"] == pytest.approx(-0.03 / 0.02, abs=0.3)  # in residual SDs
    assert raw.loc["site", "estimate"] > 0.8  # the site explains most of the variance
    harmonized = biological_effects(_measures(0.0), ["m"], condition="harmonized").set_index("effect")
    assert harmonized.loc["site", "estimate"] < 0.05
    assert harmonized.loc["age", "estimate"] == pytest.approx(-0.01, abs=0.003)


def test_regional_measures_of_phantom_images_carry_age_within_a_site(contrast_pair):
    table = read_preprocessed(contrast_pair / "preprocessed")
    features = regional_feature_table(table)
    assert len(features) == len(table) and {f"{r}_mean" for r in REGIONS} <= set(features.columns)
    effects = biological_effects(features, ["ventricles_mean", "hippocampus_mean"], condition="raw").set_index(
        ["measure", "effect"]
    )
    # older brains: larger ventricles and smaller hippocampi, i.e. more CSF and a darker T1 there
    assert effects.loc[("ventricles_mean", "age"), "high"] < 0
    assert effects.loc[("hippocampus_mean", "age"), "high"] < 0
    assert effects.loc[("ventricles_mean", "site"), "estimate"] > 0.5  # dark vs bright contrast
