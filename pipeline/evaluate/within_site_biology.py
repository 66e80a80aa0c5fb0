"""Is the biology kept inside each site? AD effects, age slopes and a CN-vs-AD probe, per site, before and after.

Across sites, diagnosis and age are confounded with the scanner (AD only at some sites, sites of different
ages), so a pooled "biology kept?" check measures the site as much as the biology. Inside one site the
scanner is constant, so every check here is per site, on the site's own subjects (traveling subjects, all
controls rescanned at every site, are left out so that each site's sample is its own cohort):

- ``AD``: the standardized difference of a regional measure between the site's AD and CN subjects
  (Cohen's d with the pooled standard deviation);
- ``age``: the slope of the standardized measure on age among the site's controls, in standard deviations
  per decade;
- ``diagnosis probe``: a CN-vs-AD logistic probe on the regional measures of the site
  (:func:`pipeline.evaluate.biology_leak.biology_probes`), balanced accuracy.

Every estimate has a subject-bootstrap 95% interval (AD and CN subjects resampled separately), and every
condition is paired to the identity on the same resamples, which gives the difference and its interval.
A condition **keeps** an effect when its interval overlaps the identity's; when the identity's own interval
includes zero (chance for the probe) the effect is at its **floor**: a method that erased it would still
overlap, so "kept" cannot fail there and the table says so.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from pipeline.evaluate.biology_leak import biology_probes, paired_to_reference
from pipeline.metrics.resampling import ClusterBootstrap

__all__ = ["within_site_biology", "WITHIN_SITE_COLUMNS", "AD_MEASURES", "MIN_PER_CLASS", "MIN_CONTROLS"]

#: the regional measures whose AD effect is reported (atrophy: hippocampus shrinks, ventricles grow)
AD_MEASURES = ("hippocampus_mean", "ventricles_mean")
#: fewer AD (or CN) subjects than this at a site and its AD effect is not estimated
MIN_PER_CLASS = 3
#: fewer controls than this at a site and its age slope is not estimated
MIN_CONTROLS = 5

WITHIN_SITE_COLUMNS = [
    "condition",
    "site",
    "effect",
    "measure",
    "unit",
    "estimate",
    "low",
    "high",
    "n_subjects",
    "difference_to_identity",
    "difference_low",
    "difference_high",
    "floor",
    "kept",
]


def _cohens_d(values: np.ndarray, is_ad: np.ndarray) -> float:
    ad, cn = values[is_ad], values[~is_ad]
    if len(ad) < 2 or len(cn) < 2:
        return float("nan")
    pooled = np.sqrt(((len(ad) - 1) * ad.var(ddof=1) + (len(cn) - 1) * cn.var(ddof=1)) / (len(ad) + len(cn) - 2))
    return float((ad.mean() - cn.mean()) / pooled) if pooled > 0 else float("nan")


def _age_slope(values: np.ndarray, age: np.ndarray) -> float:
    """Slope of the standardized measure per decade of age (least squares)."""
    sd = values.std(ddof=1)
    if len(values) < 3 or sd <= 0 or age.std() <= 0:
        return float("nan")
    return float(np.polyfit(age / 10.0, (values - values.mean()) / sd, 1)[0])


def _draws(groups: np.ndarray, strata: np.ndarray, n_resamples: int, seed: int) -> list[np.ndarray]:
    """Row indices of ``n_resamples`` subject resamples, each stratum (e.g. CN, AD) resampled on its own, so
    both classes stay present; the same draws for the same rows and seed (paired across conditions)."""
    rng = np.random.default_rng(seed)
    parts = [(np.flatnonzero(strata == s), ClusterBootstrap(groups[strata == s])) for s in sorted(set(strata))]
    return [np.concatenate([rows[clusters.sample(rng)] for rows, clusters in parts]) for _ in range(n_resamples)]


def _interval(values: np.ndarray) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def _effect_rows(
    data: pd.DataFrame,
    site: str,
    effect: str,
    measure: str,
    statistic,
    strata: np.ndarray,
    conditions: Sequence[str],
    n_resamples: int,
    seed: int,
) -> list[dict]:
    """One row per condition of one site's effect on one measure, paired to the identity on the same draws."""
    groups = data["subject"].astype(str).to_numpy()
    draws = _draws(groups, strata, n_resamples, seed)
    estimates, samples = {}, {}
    for condition in conditions:
        values = data[f"{condition}:{measure}"].to_numpy(float)
        estimates[condition] = statistic(values, np.arange(len(values)))
        samples[condition] = np.array([statistic(values, d) for d in draws])
    rows = []
    raw_low, raw_high = _interval(samples["identity"])
    floor = bool(np.isnan(raw_low) or raw_low <= 0 <= raw_high)
    for condition in conditions:
        low, high = _interval(samples[condition])
        difference_low, difference_high = _interval(samples[condition] - samples["identity"])
        rows.append(
            {
                "condition": condition,
                "site": site,
                "effect": effect,
                "measure": measure,
                "unit": "Cohen's d (AD - CN)" if effect == "AD" else "SD per decade",
                "estimate": estimates[condition],
                "low": low,
                "high": high,
                "n_subjects": int(len(set(groups))),
                "difference_to_identity": estimates[condition] - estimates["identity"],
                "difference_low": difference_low,
                "difference_high": difference_high,
                "floor": floor,
                "kept": bool(low <= raw_high and raw_low <= high),
            }
        )
    return rows


def within_site_biology(
    features: dict[str, pd.DataFrame],
    table: pd.DataFrame,
    measures: Sequence[str],
    *,
    exclude: np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per site, the AD effect and age slope of each measure, and the CN-vs-AD probe, for every condition.

    Args:
        features: condition -> regional measures (rows of ``table``, columns ``measures``); must hold
            ``identity`` (the raw images), to which every condition is paired.
        table: the rows' ``subject``, ``site``, ``age`` and ``diagnosis``.
        measures: the measures whose age slope is reported; the AD effect is reported for those of
            :data:`AD_MEASURES` among them.
        exclude: rows to leave out (e.g. the traveling subjects).

    Returns:
        One row per condition, site, effect and measure (:data:`WITHIN_SITE_COLUMNS`); empty when no site
        has enough subjects for any check.
    """
    if "identity" not in features:
        raise ValueError("within_site_biology needs the identity condition (the raw images) to pair to")
    keep = np.ones(len(table), bool) if exclude is None else ~np.asarray(exclude, bool)
    conditions = list(features)
    data = table.loc[keep, ["subject", "site", "age", "diagnosis"]].reset_index(drop=True)
    data["diagnosis"] = data["diagnosis"].astype(str)
    data["age"] = pd.to_numeric(data["age"], errors="coerce")
    for condition, frame in features.items():
        for measure in measures:
            data[f"{condition}:{measure}"] = frame.loc[keep, measure].to_numpy(float)
    rows: list[dict] = []
    for site, part in data.groupby("site", sort=True):
        part = part.reset_index(drop=True)
        cn_ad = part[part["diagnosis"].isin(["CN", "AD"])].reset_index(drop=True)
        is_ad = (cn_ad["diagnosis"] == "AD").to_numpy()
        controls = part[(part["diagnosis"] == "CN") & part["age"].notna()].reset_index(drop=True)
        age = controls["age"].to_numpy(float)
        checks = []  # (rows, effect, measures, statistic, strata)
        if min(is_ad.sum(), (~is_ad).sum()) >= MIN_PER_CLASS:
            ad_measures = [m for m in measures if m in AD_MEASURES]
            checks.append((cn_ad, "AD", ad_measures, lambda v, d: _cohens_d(v[d], is_ad[d]), is_ad))
            rows += _probe_rows(cn_ad, str(site), features, measures, conditions, n_resamples, seed)
        if len(controls) >= MIN_CONTROLS:
            no_strata = np.zeros(len(controls), int)
            checks.append((controls, "age", list(measures), lambda v, d: _age_slope(v[d], age[d]), no_strata))
        for frame, effect, effect_measures, statistic, strata in checks:
            for measure in effect_measures:
                rows += _effect_rows(
                    frame, str(site), effect, measure, statistic, strata, conditions, n_resamples, seed
                )
    return pd.DataFrame(rows, columns=WITHIN_SITE_COLUMNS)


def _probe_rows(
    cn_ad: pd.DataFrame,
    site: str,
    features: dict[str, pd.DataFrame],
    measures: Sequence[str],
    conditions: Sequence[str],
    n_resamples: int,
    seed: int,
) -> list[dict]:
    """The CN-vs-AD probe on one site's regional measures, per condition, paired to the identity's."""
    probes = {}
    for condition in conditions:
        x = cn_ad[[f"{condition}:{m}" for m in measures]].to_numpy(np.float32)
        found = biology_probes(cn_ad, x, seed=seed).get("diagnosis")
        if found is None:
            return []
        probes[condition] = found
    identity = probes["identity"].summary(n_resamples, seed)
    floor = bool(identity["low"] <= 0.5)
    rows = []
    for condition, probe in probes.items():
        summary = probe.summary(n_resamples, seed)
        difference = paired_to_reference(probe, probes["identity"], n_resamples=n_resamples, seed=seed)
        rows.append(
            {
                "condition": condition,
                "site": site,
                "effect": "diagnosis probe",
                "measure": "regional means",
                "unit": "balanced accuracy (chance 0.5)",
                "estimate": summary["estimate"],
                "low": summary["low"],
                "high": summary["high"],
                "n_subjects": summary["n_subjects"],
                "difference_to_identity": difference[0],
                "difference_low": difference[1],
                "difference_high": difference[2],
                "floor": floor,
                "kept": bool(summary["low"] <= identity["high"] and identity["low"] <= summary["high"]),
            }
        )
    return rows
