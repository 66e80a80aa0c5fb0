"""Brain-age metrics: MAE, MSE, Pearson r, R^2 and corr(gap, age), with bootstrap 95% intervals, and
an age-bias correction for gap analyses only.

The primary numbers are always the raw ones. Brain-age models regress to the mean, so the gap
(predicted - true age) correlates negatively with age; ``gap_age_r`` reports that. The common
correction ``gap - (a * age + b)`` (Smith et al. 2019) needs the scored subject's true age: it turns a
model that predicts a constant into a near-perfect one (de Lange et al. 2022, "Mind the gap"; Butler
et al. 2021), so it is not offered here. :class:`AgeBiasCorrection` is the correction of Cole et al.
2018 / de Lange and Cole 2020: fit ``predicted = a * age + b`` on a *validation* split, then
``(predicted - b) / a`` uses no true age of the scored subject. It is a tool for gap analyses
(group differences in the brain-age gap), never an accuracy: no "corrected MAE" is computed anywhere.
A slope below ``min_slope`` means the model carries no usable age signal and the correction is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipeline.metrics.resampling import ClusterBootstrap

__all__ = ["regression_metrics", "AgeBiasCorrection", "bootstrap_interval"]


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, MSE, Pearson r, R^2 (1 - SSE / SST about the scored subjects' mean), mean gap and corr(gap, age).

    R^2 is 0 for a predictor of the scored subjects' mean age and negative for anything worse.
    """
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    error = y_pred - y_true
    r = float(stats.pearsonr(y_true, y_pred)[0]) if len(y_true) > 2 and np.std(y_pred) > 0 else float("nan")
    sst = float(np.sum((y_true - y_true.mean()) ** 2))
    r2 = 1.0 - float(np.sum(error**2)) / sst if len(y_true) > 1 and sst > 0 else float("nan")
    gap_age = (
        float(stats.pearsonr(y_true, error)[0])
        if len(y_true) > 2 and np.std(error) > 0 and np.std(y_true) > 0
        else float("nan")
    )
    return {
        "mae": float(np.mean(np.abs(error))),
        "mse": float(np.mean(error**2)),
        "r": r,
        "r2": r2,
        "mean_gap": float(np.mean(error)),
        "gap_age_r": gap_age,
        "n": int(len(y_true)),
    }


@dataclass(frozen=True)
class AgeBiasCorrection:
    """``predicted = slope * age + intercept`` fitted on validation predictions; inverted without true ages.

    Example:
        >>> c = AgeBiasCorrection.fit([50, 60, 70, 80], [60, 65, 70, 75])
        >>> round(c.slope, 2), c.corrected_prediction([65, 70]).round(1).tolist()
        (0.5, [60.0, 70.0])
    """

    slope: float
    intercept: float
    n: int = 0

    @classmethod
    def fit(cls, age: np.ndarray, predicted: np.ndarray) -> "AgeBiasCorrection":
        age, predicted = np.asarray(age, float), np.asarray(predicted, float)
        if len(age) < 3 or np.std(age) == 0:
            raise ValueError(
                f"AgeBiasCorrection: need at least 3 validation subjects of different ages, got {len(age)}"
            )
        fit = stats.linregress(age, predicted)
        return cls(float(fit.slope), float(fit.intercept), int(len(age)))

    def usable(self, min_slope: float = 0.2) -> bool:
        """False when the slope is too flat to invert (a model with little age signal)."""
        return self.slope >= min_slope

    def corrected_prediction(self, predicted: np.ndarray) -> np.ndarray:
        """``(predicted - intercept) / slope``: needs no true age of the scored subjects."""
        return (np.asarray(predicted, float) - self.intercept) / self.slope


def bootstrap_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    metric,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups=None,
) -> tuple[float, float]:
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
    result = stats.bootstrap(
        (y_true, y_pred),
        lambda a, b: metric(a, b),
        paired=True,
        vectorized=False,
        n_resamples=n_resamples,
        confidence_level=level,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
