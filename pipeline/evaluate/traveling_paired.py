"""Is a site difference left in the traveling subjects? A within-subject paired test on regional measures.

A traveling subject has one scan at the evaluated site and one at the reference site: the same anatomy, so
any difference between the two is the scanner (plus rescan noise). A site probe trained on a handful of such
subjects against hundreds of voxels has little power; the paired test asks directly whether the mean
within-subject difference of each regional measure is zero:

- per measure: the mean paired difference (evaluated site minus reference site) in units of the identity's
  reference-site standard deviation of that measure (the same unit for every condition), its t interval and
  the paired t-test's p-value (a one-sample t-test of the differences);
- over all measures: Hotelling's one-sample T^2 test of the difference vectors (when there are more subjects
  than measures), whose p-value says whether any site difference is left.

A harmonizer should bring the differences to zero; the identity shows how large they were.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["traveling_paired_test", "hotelling_p", "PAIRED_COLUMNS"]

PAIRED_COLUMNS = ["condition", "measure", "difference", "low", "high", "p_value", "n_subjects", "unit"]


def _pairs(table: pd.DataFrame, target: str, reference: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Row indices of each traveling subject's target and reference scan (first of each), and the subjects."""
    targets, references, subjects = [], [], []
    for subject, part in table.groupby("subject", sort=True):
        sites = part["site"].astype(str)
        if {target, reference} <= set(sites):
            targets.append(part.index[sites == target][0])
            references.append(part.index[sites == reference][0])
            subjects.append(str(subject))
    return np.asarray(targets, int), np.asarray(references, int), subjects


def hotelling_p(differences: np.ndarray) -> float:
    """p-value of Hotelling's one-sample T^2 test that the mean of the rows of ``differences`` (n, p) is zero."""
    n, p = differences.shape
    if n <= p:
        return float("nan")
    mean = differences.mean(axis=0)
    covariance = np.cov(differences, rowvar=False).reshape(p, p)
    t2 = n * mean @ np.linalg.pinv(covariance) @ mean
    f = (n - p) / (p * (n - 1)) * t2
    return float(stats.f.sf(f, p, n - p))


def traveling_paired_test(
    features: dict[str, pd.DataFrame], table: pd.DataFrame, measures: Sequence[str], *, target: str, reference: str
) -> pd.DataFrame:
    """Per condition, the paired site difference of each measure and Hotelling's test over all of them.

    Args:
        features: condition -> measures (rows of ``table``); ``identity`` gives the unit (its reference-site SD).
        table: the rows' ``subject`` and ``site``.

    Returns:
        :data:`PAIRED_COLUMNS` rows, measure ``all`` for the Hotelling test (its ``difference`` is the mean
        absolute standardized difference); empty with fewer than 3 traveling subjects.
    """
    table = table.reset_index(drop=True)
    targets, references, subjects = _pairs(table, target, reference)
    if len(subjects) < 3:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    at_reference = (table["site"].astype(str) == reference).to_numpy()
    scale = features["identity"].loc[at_reference, list(measures)].std(ddof=1).replace(0, np.nan)
    rows = []
    for condition, frame in features.items():
        values = frame[list(measures)].to_numpy(float)
        differences = (values[targets] - values[references]) / scale.to_numpy(float)
        for k, measure in enumerate(measures):
            d = differences[:, k]
            half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
            rows.append(
                {
                    "condition": condition,
                    "measure": measure,
                    "difference": float(d.mean()),
                    "low": float(d.mean() - half),
                    "high": float(d.mean() + half),
                    "p_value": float(stats.ttest_1samp(d, 0.0).pvalue),
                    "n_subjects": len(d),
                    "unit": "reference-site SD",
                }
            )
        rows.append(
            {
                "condition": condition,
                "measure": "all",
                "difference": float(np.abs(differences.mean(axis=0)).mean()),
                "low": float("nan"),
                "high": float("nan"),
                "p_value": hotelling_p(differences),
                "n_subjects": len(subjects),
                "unit": "Hotelling T^2 (difference: mean |standardized difference|)",
            }
        )
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)
