"""ComBat: fitting and applying on the same rows reproduces neuroCombat; fitted on training rows it removes
a site's shift and scale from new rows while keeping their age effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate.combat import ComBat

RNG = np.random.default_rng(1)


def _data(n: int = 120, p: int = 12) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    table = pd.DataFrame({"age": RNG.uniform(55, 90, n), "sex": RNG.choice(["F", "M"], n)})
    sites = RNG.choice(["s1", "s2", "s3"], n)
    shift = {"s1": 0.0, "s2": 0.8, "s3": -0.5}
    scale = {"s1": 1.0, "s2": 1.6, "s3": 0.7}
    noise = RNG.normal(0, 1, (n, p)) * np.array([scale[s] for s in sites])[:, None]
    features = 2.0 - 0.05 * table["age"].to_numpy()[:, None] + np.array([shift[s] for s in sites])[:, None] + noise
    return features, sites, table


def test_matches_neurocombat_on_the_same_rows():
    from neuroCombat import neuroCombat

    features, sites, table = _data()
    ours = ComBat(continuous=["age"], categorical=["sex"]).fit(features, sites, table).transform(features, sites, table)
    covars = table.assign(batch=sites)
    theirs = neuroCombat(
        dat=features.T, covars=covars, batch_col="batch", continuous_cols=["age"], categorical_cols=["sex"]
    )["data"].T
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_fitted_on_training_rows_it_harmonizes_new_rows_and_keeps_age():
    features, sites, table = _data(600, 8)
    train = np.arange(600) < 400
    combat = ComBat(continuous=["age"]).fit(features[train], sites[train], table[train])
    test = ~train
    out = combat.transform(features[test], sites[test], table[test])
    residual = out - (2.0 - 0.05 * table.loc[test, "age"].to_numpy()[:, None])
    means = {s: residual[sites[test] == s].mean() for s in ("s1", "s2", "s3")}
    sds = {s: residual[sites[test] == s].std() for s in ("s1", "s2", "s3")}
    assert max(means.values()) - min(means.values()) < 0.15  # the 1.3 spread of site shifts is gone
    assert max(sds.values()) / min(sds.values()) < 1.25  # and the 1.6 / 0.7 scales
    slope = np.polyfit(table.loc[test, "age"], out.mean(axis=1), 1)[0]
    assert slope == pytest.approx(-0.05, abs=0.01)


def test_unknown_sites_and_levels_are_refused():
    features, sites, table = _data()
    combat = ComBat(continuous=["age"], categorical=["sex"]).fit(features, sites, table)
    with pytest.raises(ValueError, match=r"site\(s\) \['s9'\] were not in the training rows"):
        combat.transform(features[:2], np.array(["s9", "s1"]), table.iloc[:2])
    with pytest.raises(ValueError, match=r"sex value\(s\) \['X'\] were not in the training rows"):
        combat.transform(features[:1], sites[:1], table.iloc[:1].assign(sex="X"))
