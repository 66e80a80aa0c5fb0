"""Classification metrics (scikit-learn) with bootstrap 95% intervals over subjects.

The seeds report accuracy, precision, recall and F1; we add balanced accuracy (the sites' class
balances differ), ROC AUC (one-vs-rest, macro, for more than two classes) and the confusion matrix.
Precision, recall and F1 are macro averages over classes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn import metrics as skm

from pipeline.metrics.resampling import ClusterBootstrap

__all__ = ["classification_metrics", "classification_intervals"]


def _auc(y_true: np.ndarray, scores: np.ndarray, n_classes: int) -> float:
    if len(np.unique(y_true)) < 2:
        return float("nan")
    if n_classes == 2:
        return float(skm.roc_auc_score(y_true, scores[:, 1]))
    present = np.unique(y_true)
    if len(present) < n_classes:
        return float("nan")
    return float(skm.roc_auc_score(y_true, scores, multi_class="ovr", average="macro"))


def classification_metrics(y_true: Sequence[int], scores: np.ndarray) -> dict:
    """Metrics of class-probability ``scores`` (N, C) against integer labels ``y_true``."""
    y_true = np.asarray(y_true, int)
    scores = np.asarray(scores, float)
    n_classes = scores.shape[1]
    y_pred = scores.argmax(axis=1)
    labels = list(range(n_classes))
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "precision": float(skm.precision_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "f1": float(skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "auc": _auc(y_true, scores, n_classes),
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "n": int(len(y_true)),
    }


def classification_intervals(
    y_true: Sequence[int],
    scores: np.ndarray,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups: Sequence | None = None,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals (resampling subjects) of the scalar metrics.

    ``groups``: the subject of each row; a resample then draws whole subjects, so several images of
    one subject (traveling subjects) count once. Without it each row is a subject.

    One resample feeds all metrics at once (written out here rather than with scipy.stats.bootstrap,
    which would recompute every metric separately, six times slower).
    """
    y_true = np.asarray(y_true, int)
    scores = np.asarray(scores, float)
    names = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auc")
    if len(y_true) < 3 or n_resamples < 1:  # n_resamples 0: no intervals wanted
        return {name: (float("nan"), float("nan")) for name in names}
    rng = np.random.default_rng(seed)
    samples = {name: [] for name in names}
    clusters = ClusterBootstrap(groups) if groups is not None else None
    for _ in range(n_resamples):
        idx = clusters.sample(rng) if clusters else rng.integers(0, len(y_true), len(y_true))
        values = classification_metrics(y_true[idx], scores[idx])
        for name in names:
            samples[name].append(values[name])
    tail = 100 * (1 - level) / 2
    return {
        name: (float(np.nanpercentile(v, tail)), float(np.nanpercentile(v, 100 - tail))) for name, v in samples.items()
    }
