"""Site probe: near-perfect on phantom sites that differ in contrast, exactly chance on two copies of the
same site (identical images cannot be told apart), subject-level folds, clear refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate.site_probe import confound_design, site_probe, traveling_rows
from pipeline.preprocess.batch import read_preprocessed


@pytest.fixture(scope="module")
def raw(contrast_pair) -> pd.DataFrame:
    return read_preprocessed(contrast_pair / "preprocessed")


@pytest.mark.parametrize("probe", ["linear", "cnn"])
def test_finds_the_site_of_raw_phantom_images(raw, probe):
    result = site_probe(raw, probe=probe, n_resamples=200)
    assert result["balanced_accuracy"] >= 0.9 and result["interval_95"][0] > 0.75
    assert result["chance"] == 0.5 and result["n_images"] == len(raw) and result["folds"] == 5
    assert result["n_subjects"] == raw["subject"].nunique()  # traveling subjects count once


@pytest.mark.parametrize("probe", ["linear", "cnn"])
def test_two_copies_of_the_same_site_are_exactly_chance(raw, probe):
    one = raw[raw["site"] == "dark"]
    copies = pd.concat([one.assign(site="copy_a"), one.assign(site="copy_b")], ignore_index=True)
    result = site_probe(copies, probe=probe, n_resamples=200)
    # a subject's two identical copies share a fold and get the same prediction: one right, one wrong
    assert result["balanced_accuracy"] == pytest.approx(0.5)


def test_refusals(raw):
    with pytest.raises(ValueError, match=r"at least two sites, got \['dark'\]"):
        site_probe(raw[raw["site"] == "dark"])
    two = raw[raw["subject"].isin(raw.groupby("site")["subject"].first())]
    with pytest.raises(ValueError, match="at least 2 subjects per site, got 1"):
        site_probe(two)
    with pytest.raises(ValueError, match="probe must be one of"):
        site_probe(raw, probe="svm")


def _confounded_table(
    scanner_offset: float, age_gap: float, n: int = 40, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray]:
    """Two sites whose subjects differ in age by ``age_gap`` years; the features carry age, and a site offset."""
    rng = np.random.default_rng(seed)
    site = np.repeat(["a", "b"], n)
    age = np.where(site == "a", 65.0, 65.0 + age_gap) + rng.normal(0, 4, 2 * n)
    x = (age[:, None] / 10.0) * np.linspace(0.5, 1.5, 8)[None] + rng.normal(0, 0.3, (2 * n, 8))
    x[site == "b"] += scanner_offset
    table = pd.DataFrame(
        {
            "subject": [f"s{i}" for i in range(2 * n)],
            "site": site,
            "age": age,
            "sex": rng.choice(["F", "M"], 2 * n),
            "diagnosis": "CN",
        }
    )
    return table, x.astype(np.float32)


def test_residualizing_for_age_removes_a_site_signal_that_is_only_age():
    table, x = _confounded_table(scanner_offset=0.0, age_gap=15.0)
    raw = site_probe(table, volumes=x, n_resamples=100)
    residualized = site_probe(table, volumes=x, covariates=confound_design(table), n_resamples=100)
    assert raw["balanced_accuracy"] > 0.85  # age alone tells these sites apart
    assert residualized["balanced_accuracy"] < 0.70
    # a real scanner offset survives the residualization (ages overlapping, as a matched design would have)
    table, x = _confounded_table(scanner_offset=1.0, age_gap=3.0)
    assert site_probe(table, volumes=x, covariates=confound_design(table), n_resamples=100)["balanced_accuracy"] > 0.9


def test_confound_design_and_traveling_rows():
    table = pd.DataFrame(
        {
            "subject": ["t1", "t1", "u1", "u2"],
            "site": ["a", "b", "a", "b"],
            "age": [70.0, 70.0, None, 60.0],
            "sex": ["F", "F", "M", "M"],
            "diagnosis": ["CN", "CN", "AD", "CN"],
        }
    )
    design = confound_design(table)
    assert design.shape == (4, 3)  # age, sex, one indicator (CN; AD sorts first)
    assert design[2, 0] == pytest.approx((70 + 70 + 60) / 3)  # a missing age takes the mean
    assert design[:, 1].tolist() == [1, 1, 0, 0] and design[:, 2].tolist() == [1, 1, 0, 1]
    assert confound_design(table[table["diagnosis"] == "CN"]).shape == (3, 2)  # a constant column is dropped
    assert traveling_rows(table).tolist() == [True, True, False, False]


def test_repeated_cross_validation_carries_the_fold_split_variance():
    """A weak site signal: each repeat (another fold split) scores differently, the estimate is their mean, and
    the two-level interval covers the spread of the repeats, which one fold split's subject bootstrap misses."""
    table, x = _confounded_table(scanner_offset=0.25, age_gap=0.0, n=20)
    one = site_probe(table, volumes=x, n_resamples=400, repeats=1)
    several = site_probe(table, volumes=x, n_resamples=400, repeats=8)
    accuracies = several["repeat_balanced_accuracy"]
    assert several["repeats"] == 8 and len(accuracies) == 8
    assert np.ptp(accuracies) > 0.02  # fold splits matter at this size
    assert several["balanced_accuracy"] == pytest.approx(np.mean(accuracies))
    assert one["balanced_accuracy"] == pytest.approx(accuracies[0])  # repeat 0 is the single run
    low, high = several["interval_95"]
    assert low <= min(accuracies) and max(accuracies) <= high
    # paired: a condition against itself differs by exactly 0 on every draw (same repeats, same resamples)
    again = site_probe(table, volumes=x, n_resamples=400, repeats=8)
    np.testing.assert_array_equal(np.asarray(again["samples"]) - np.asarray(several["samples"]), 0.0)
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        site_probe(table, volumes=x, repeats=0)
