"""Brain-age metrics: MAE, MSE, Pearson r, the brain-age gap and its linear bias correction, with
bootstrap 95% intervals.

Bias correction (Smith et al. 2019; Beheshti et al. 2019): brain-age models regress to the mean, so
the gap (predicted - true age) correlates negatively with age. Fit ``gap = a * age + b`` on the
*training* predictions only, then report ``gap - (a * age + b)`` on the test subjects. The corrected
MAE is reported beside, never instead of, the uncorrected MAE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipeline.evaluate.resampling import ClusterBootstrap

__all__ = ["regression_metrics", "BiasCorrection", "bootstrap_interval"]


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, MSE, Pearson r and the mean gap (predicted - true)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    error = y_pred - y_true
    r = float(stats.pearsonr(y_true, y_pred)[0]) if len(y_true) > 2 and np.std(y_pred) > 0 else float("nan")
    return {"mae": float(np.mean(np.abs(error))), "mse": float(np.mean(error ** 2)), "r": r,
            "mean_gap": float(np.mean(error)), "n": int(len(y_true))}


@dataclass(frozen=True)
class BiasCorrection:
    """Linear age-bias correction of the brain-age gap, fitted on training predictions."""

    slope: float
    intercept: float

    @classmethod
    def fit(cls, age: np.ndarray, predicted: np.ndarray) -> "BiasCorrection":
        gap = np.asarray(predicted, float) - np.asarray(age, float)
        fit = stats.linregress(np.asarray(age, float), gap)
        return cls(float(fit.slope), float(fit.intercept))

    def corrected_gap(self, age: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        age = np.asarray(age, float)
        return np.asarray(predicted, float) - age - (self.slope * age + self.intercept)

    def corrected_prediction(self, age: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        return np.asarray(age, float) + self.corrected_gap(age, predicted)


def bootstrap_interval(y_true: np.ndarray, y_pred: np.ndarray, metric, *, n_resamples: int = 1000,
                       seed: int = 0, level: float = 0.95, groups=None) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(y_true, y_pred)`` over subjects (scipy.stats.bootstrap, paired).

    ``groups``: the subject of each row; a resample then draws whole subjects (a cluster bootstrap,
    written out here since scipy has none), so several images of one subject count once.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) < 3:
        return float("nan"), float("nan")
    if groups is not None:
        rng = np.random.default_rng(seed)
        clusters = ClusterBootstrap(groups)
        values = [metric(y_true[idx], y_pred[idx]) for idx in (clusters.sample(rng) for _ in range(n_resamples))]
        tail = 100 * (1 - level) / 2
        return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))
    result = stats.bootstrap((y_true, y_pred), lambda a, b: metric(a, b), paired=True, vectorized=False,
                             n_resamples=n_resamples, confidence_level=level, method="percentile",
                             random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
