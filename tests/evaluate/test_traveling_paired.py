"""The traveling subjects' paired test finds a site offset that a harmonizer then removes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate.traveling_paired import hotelling_p, traveling_paired_test

MEASURES = ["a", "b"]


def _pairs(n: int = 8, offset: float = 0.5, seed: int = 0) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """``n`` subjects at sites ``x`` and ``ref``: anatomy varies 1.0 between subjects, rescan noise 0.1, and
    site ``x`` reads ``offset`` higher on measure ``a`` only; plus one subject scanned at ``ref`` alone."""
    rng = np.random.default_rng(seed)
    anatomy = rng.normal(0, 1.0, (n, 2))
    rows, values = [], []
    for i in range(n):
        for site in ("x", "ref"):
            rows.append({"subject": f"s{i}", "site": site})
            values.append(anatomy[i] + rng.normal(0, 0.1, 2) + (np.array([offset, 0.0]) if site == "x" else 0))
    rows.append({"subject": "alone", "site": "ref"})
    values.append(np.array([50.0, 50.0]))
    identity = pd.DataFrame(values, columns=MEASURES)
    harmonized = identity.copy()
    harmonized.loc[[r["site"] == "x" for r in rows], "a"] -= offset
    return pd.DataFrame(rows), {"identity": identity, "harmonized": harmonized}


def test_the_offset_is_found_in_identity_and_gone_after_harmonizing():
    table, features = _pairs()
    result = traveling_paired_test(features, table, MEASURES, target="x", reference="ref").set_index(
        ["condition", "measure"]
    )
    raw = result.loc[("identity", "a")]
    assert raw["p_value"] < 1e-4 and raw["low"] > 0 and raw["n_subjects"] == 8  # the lone subject is no pair
    assert result.loc[("identity", "b"), "p_value"] > 0.01  # no offset there
    assert result.loc[("identity", "all"), "p_value"] < 1e-3
    assert result.loc[("harmonized", "a"), "low"] < 0 < result.loc[("harmonized", "a"), "high"]
    assert result.loc[("harmonized", "all"), "p_value"] > 0.01


def test_fewer_than_three_pairs_give_no_rows():
    table, features = _pairs(n=2)
    assert traveling_paired_test(features, table, MEASURES, target="x", reference="ref").empty


def test_hotelling_matches_the_t_test_in_one_dimension():
    from scipy import stats

    d = np.random.default_rng(3).normal(0.4, 1.0, (12, 1))
    assert hotelling_p(d) == pytest.approx(stats.ttest_1samp(d[:, 0], 0.0).pvalue, rel=1e-9)
