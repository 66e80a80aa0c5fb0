"""Biology-leak probes: they find diagnosis and age where the features carry them, fall to their floors
where they do not (an "over-harmonized" copy with the biology erased), and pair on the same subjects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate.biology_leak import biology_probes, paired_to_reference


def _cohort(n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    diagnosis = rng.choice(["CN", "AD"], n, p=[0.6, 0.4])
    age = rng.uniform(55, 85, n)
    signal = -0.08 * (age - 70) - 2.5 * (diagnosis == "AD")  # atrophy with age and with AD
    x = signal[:, None] * np.linspace(0.5, 1.5, 6)[None] + rng.normal(0, 0.5, (n, 6))
    table = pd.DataFrame({"subject": [f"s{i}" for i in range(n)], "site": "a", "age": age, "diagnosis": diagnosis})
    return table, x


def test_probes_find_biology_and_fall_to_their_floors_without_it():
    table, x = _cohort()
    kept = {k: v.summary(n_resamples=200) for k, v in biology_probes(table, x).items()}
    assert kept["diagnosis"]["estimate"] > 0.8 and kept["diagnosis"]["low"] > 0.6
    assert kept["age"]["estimate"] < 0.75 * kept["age"]["mean_predictor_mae"] and kept["age"]["r"] > 0.6
    erased = {
        k: v.summary(n_resamples=200)
        for k, v in biology_probes(table, np.random.default_rng(1).normal(0, 1, x.shape)).items()
    }
    assert erased["diagnosis"]["estimate"] < 0.7
    assert erased["age"]["estimate"] > 0.9 * erased["age"]["mean_predictor_mae"]


def test_paired_difference_to_identity_flags_erased_biology():
    table, x = _cohort()
    raw = biology_probes(table, x)
    erased = biology_probes(table, np.random.default_rng(1).normal(0, 1, x.shape))
    difference, low, high = paired_to_reference(erased["diagnosis"], raw["diagnosis"], n_resamples=300)
    assert difference < 0 and high < 0  # balanced accuracy dropped, interval excludes 0
    difference, low, high = paired_to_reference(erased["age"], raw["age"], n_resamples=300)
    assert difference > 0 and low > 0  # the age error grew
    same, low, high = paired_to_reference(raw["age"], raw["age"], n_resamples=50)
    assert same == 0 and low == 0 and high == 0


def test_too_few_rows_leave_a_probe_out():
    table, x = _cohort(n=60)
    only_cn = table["diagnosis"] == "CN"
    assert set(biology_probes(table[only_cn].reset_index(drop=True), x[only_cn.to_numpy()])) == {"age"}
    with pytest.raises(ValueError, match="same rows"):
        probes = biology_probes(table, x)
        other = biology_probes(table.iloc[::-1].reset_index(drop=True), x[::-1])
        paired_to_reference(probes["age"], other["age"])
