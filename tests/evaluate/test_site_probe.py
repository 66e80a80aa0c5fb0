"""Site probe: near-perfect on phantom sites that differ in contrast, exactly chance on two copies of the
same site (identical images cannot be told apart), subject-level folds, clear refusals."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.evaluate.site_probe import site_probe
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
