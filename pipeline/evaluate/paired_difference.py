"""Paired differences between two classifiers scored on the same test subjects, over repeated experiments.

An experiment grid repeats each arm R times (a new subject split and new generators per repeat); inside a
repeat every arm is scored on the same test subjects. The difference "arm minus baseline arm" then has two
sources of noise: the repeat (split, training seed) and the finite test set. The interval here is a
two-level bootstrap: resample repeats with replacement, and within each drawn repeat resample its test
subjects (the same subjects for both arms: paired); the statistic is the mean difference over repeats.
With R = 1 it reduces to the paired subject bootstrap of that single repeat.

Metrics take weights (a bootstrap resample is a vector of subject multiplicities), so resampling never
re-indexes the predictions; they are computed with numpy and tested against scikit-learn's
``sample_weight`` results (scikit-learn's per-call validation made a 1000-resample bootstrap take minutes).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from pipeline.metrics.resampling import ClusterBootstrap

__all__ = ["GRID_METRICS", "weighted_classification_metrics", "bootstrap_metric_samples", "two_level_interval"]

#: The grid's metrics; cross-entropy is lower-better, the others higher-better.
GRID_METRICS = ("balanced_accuracy", "auc", "f1", "cross_entropy")


def _binary_auc(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    """Weighted Mann-Whitney AUC (ties count half): the area under the weighted ROC curve."""
    wp, wn = weights[positive], weights[~positive]
    if wp.sum() <= 0 or wn.sum() <= 0:
        return float("nan")
    sp, sn = scores[positive][:, None], scores[~positive][None, :]
    pairs = (sp > sn) + 0.5 * (sp == sn)
    return float(wp @ pairs @ wn / (wp.sum() * wn.sum()))


def weighted_classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, float]:
    """Balanced accuracy, AUC (one-vs-rest macro for 3 classes), macro F1 and cross-entropy (nats).

    Weights are row multiplicities (a bootstrap resample). Written with numpy because scikit-learn's
    per-call input validation costs 5-60 ms, which a 1000-resample bootstrap of every arm cannot afford;
    tests check every value against scikit-learn's ``sample_weight`` results.
    """
    y = np.asarray(y_true, int)
    p = np.asarray(probabilities, float)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, float)
    n_classes = p.shape[1]
    predicted = p.argmax(axis=1)
    recalls, f1s, aucs = [], [], []
    for c in range(n_classes):
        true_c, pred_c = y == c, predicted == c
        tp, fp, fn = w[true_c & pred_c].sum(), w[~true_c & pred_c].sum(), w[true_c & ~pred_c].sum()
        if w[true_c].sum() > 0:
            recalls.append(tp / w[true_c].sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) > 0 else 0.0)
        aucs.append(_binary_auc(true_c, p[:, c], w))
    clipped = np.clip(p, 1e-7, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    cross_entropy = float((w * -np.log(clipped[np.arange(len(y)), y])).sum() / w.sum())
    auc = aucs[1] if n_classes == 2 else (float(np.mean(aucs)) if not np.isnan(aucs).any() else float("nan"))
    return {
        "balanced_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
        "auc": auc,
        "f1": float(np.mean(f1s)),
        "cross_entropy": cross_entropy,
    }


def bootstrap_metric_samples(
    y_true: np.ndarray, probabilities: np.ndarray, groups: Sequence, *, n_resamples: int = 1000, seed: int = 0
) -> dict[str, np.ndarray]:
    """The metrics on ``n_resamples`` subject-level resamples (metric -> array of length n_resamples).

    The resamples depend only on ``groups`` and ``seed``: two arms scored on the same subjects with the
    same seed see the same resamples, so their sample-wise difference is the paired bootstrap.
    """
    clusters = ClusterBootstrap(groups)
    rng = np.random.default_rng(seed)
    n = len(np.asarray(y_true))
    samples = {name: np.empty(n_resamples) for name in GRID_METRICS}
    for b in range(n_resamples):
        weights = np.bincount(clusters.sample(rng), minlength=n).astype(float)
        for name, value in weighted_classification_metrics(y_true, probabilities, weights).items():
            samples[name][b] = value
    return samples


def two_level_interval(
    per_repeat: Sequence[np.ndarray], *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean over repeats, resampling repeats and then each repeat's inner samples.

    Args:
        per_repeat: one array of inner bootstrap values (e.g. paired differences) per repeat.
    """
    inner = [np.asarray(v, float) for v in per_repeat]
    if not inner or any(len(v) == 0 for v in inner):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    r = len(inner)
    values = np.empty(n_resamples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw of only undefined values (e.g. AUC) is nan
        for b in range(n_resamples):
            drawn = rng.integers(0, r, r)
            values[b] = np.nanmean([inner[k][rng.integers(0, len(inner[k]))] for k in drawn])
    tail = 100 * (1 - level) / 2
    if np.isnan(values).all():
        return float("nan"), float("nan")
    return float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))
