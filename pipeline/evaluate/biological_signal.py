"""Is the biology kept? Age and diagnosis effects on image-derived measures, and the site effect, per condition.

For each measure (e.g. the regional means of :mod:`pipeline.evaluate.regional_features`) three ordinary
least-squares fits (statsmodels), with site as a fixed effect so that raw and harmonized images are
compared on the same footing:

- ``age``: measure ~ age + C(site) on controls; the slope per decade with its 95% interval;
- ``AD``: measure ~ C(diagnosis: AD vs CN) + age + C(site); the AD coefficient divided by the residual
  standard deviation (a standardized effect, like Cohen's d) with its interval;
- ``site``: measure ~ C(site) + age on controls; the partial eta squared of site (the share of the
  variance the site explains beyond age), which harmonization should shrink.

A harmonizer should shrink the site effect and leave the age slope and the AD effect where they were.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["biological_effects"]


def _fit(formula: str, data: pd.DataFrame):
    import statsmodels.formula.api as smf

    return smf.ols(formula, data=data).fit()


def biological_effects(features: pd.DataFrame, columns: Sequence[str], *, condition: str) -> pd.DataFrame:
    """One row per measure x effect (``age``, ``AD``, ``site``) with estimate, interval and n."""
    import statsmodels.api as sm

    data = features.copy()
    data["age"] = pd.to_numeric(data["age"], errors="coerce") / 10.0  # per decade
    several_sites = data["site"].nunique() > 1
    site = " + C(site)" if several_sites else ""
    controls = data[data["diagnosis"] == "CN"].dropna(subset=["age"])
    cn_ad = data[data["diagnosis"].isin(["CN", "AD"])].dropna(subset=["age"])
    rows = []
    for column in columns:
        base = {"condition": condition, "measure": column}
        if len(controls) > 3:
            fit = _fit(f"Q('{column}') ~ age{site}", controls)
            low, high = fit.conf_int().loc["age"]
            rows.append(
                {
                    **base,
                    "effect": "age",
                    "estimate": float(fit.params["age"]),
                    "low": float(low),
                    "high": float(high),
                    "n": int(fit.nobs),
                    "unit": "per decade",
                }
            )
        if cn_ad["diagnosis"].nunique() == 2 and len(cn_ad) > 4:
            fit = _fit(f"Q('{column}') ~ C(diagnosis, Treatment('CN')) + age{site}", cn_ad)
            term = "C(diagnosis, Treatment('CN'))[T.AD]"
            scale = float(np.sqrt(fit.scale))
            low, high = fit.conf_int().loc[term]
            rows.append(
                {
                    **base,
                    "effect": "AD",
                    "estimate": float(fit.params[term]) / scale,
                    "low": float(low) / scale,
                    "high": float(high) / scale,
                    "n": int(fit.nobs),
                    "unit": "residual SD",
                }
            )
        if several_sites and len(controls) > 3:
            full = _fit(f"Q('{column}') ~ C(site) + age", controls)
            table = sm.stats.anova_lm(full, typ=2)
            eta = float(
                table.loc["C(site)", "sum_sq"] / (table.loc["C(site)", "sum_sq"] + table.loc["Residual", "sum_sq"])
            )
            rows.append(
                {
                    **base,
                    "effect": "site",
                    "estimate": eta,
                    "low": float("nan"),
                    "high": float("nan"),
                    "n": int(full.nobs),
                    "unit": "partial eta^2",
                }
            )
    return pd.DataFrame(rows, columns=["condition", "measure", "effect", "estimate", "low", "high", "n", "unit"])
