"""Does harmonization erase biology? A diagnosis probe and an age regressor on each condition's images.

A harmonizer that removed atrophy along with the scanner would make every site probe look good. So
beside the site probes, two probes look for the biology, with the same subject-level folds for every
condition (scikit-learn ``StratifiedGroupKFold`` / ``GroupKFold``, all of a subject's images in one fold,
fitted on the training folds only):

- ``diagnosis``: class-balanced logistic regression for CN vs AD (balanced accuracy, chance 0.5);
- ``age``: ridge regression of age on the controls (MAE in years, with the training-fold mean's MAE
  beside as the floor, and Pearson r).

Both read the same inputs as the site probe (8^3 volumes, or the regional features). A condition whose
score falls below the identity's has removed biology; the paired bootstrap difference to the identity
(same subjects, same resamples) says by how much.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.evaluate.paired_difference import weighted_classification_metrics
from pipeline.metrics.resampling import ClusterBootstrap

__all__ = ["biology_probes", "BiologyProbe", "paired_to_reference"]


class BiologyProbe:
    """Out-of-fold predictions of one probe (``diagnosis`` or ``age``) and their subject-level resamples."""

    def __init__(self, task: str, y: np.ndarray, predicted: np.ndarray, groups: np.ndarray, baseline: np.ndarray):
        self.task, self.y, self.predicted, self.groups, self.baseline = task, y, predicted, groups, baseline

    def score(self, weights: np.ndarray | None = None) -> float:
        """Balanced accuracy (diagnosis) or MAE in years (age) of the rows weighted by ``weights``."""
        w = np.ones(len(self.y)) if weights is None else weights
        if self.task == "diagnosis":
            return weighted_classification_metrics(self.y, self.predicted, w)["balanced_accuracy"]
        return float((w * np.abs(self.predicted - self.y)).sum() / w.sum())

    def samples(self, n_resamples: int, seed: int) -> np.ndarray:
        """The score on ``n_resamples`` subject resamples (the same resamples for the same subjects and seed)."""
        clusters, rng = ClusterBootstrap(self.groups), np.random.default_rng(seed)
        n = len(self.y)
        return np.array(
            [self.score(np.bincount(clusters.sample(rng), minlength=n).astype(float)) for _ in range(n_resamples)]
        )

    def summary(self, n_resamples: int = 1000, seed: int = 0) -> dict:
        samples = self.samples(n_resamples, seed)
        out = {
            "task": self.task,
            "metric": "balanced_accuracy" if self.task == "diagnosis" else "mae",
            "estimate": self.score(),
            "low": float(np.nanpercentile(samples, 2.5)),
            "high": float(np.nanpercentile(samples, 97.5)),
            "n_images": int(len(self.y)),
            "n_subjects": int(len(set(self.groups))),
        }
        if self.task == "age":
            out["r"] = float(np.corrcoef(self.y, self.predicted)[0, 1]) if np.std(self.predicted) > 0 else float("nan")
            out["mean_predictor_mae"] = float(np.abs(self.baseline - self.y).mean())
        else:
            out["chance"] = 0.5
        return out


def _features(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).reshape(len(x), -1)


def biology_probes(table: pd.DataFrame, x: np.ndarray, *, folds: int = 5, seed: int = 0) -> dict[str, BiologyProbe]:
    """The ``diagnosis`` (CN vs AD rows) and ``age`` (CN rows) probes on features ``x`` (rows of ``table``).

    A probe is left out when its rows are too few: fewer than 2 subjects per class for diagnosis, fewer
    than 5 controls for age.
    """
    x = _features(x)
    out: dict[str, BiologyProbe] = {}
    diagnosis = table["diagnosis"].astype(str).to_numpy()
    groups_all = table["subject"].astype(str).to_numpy()
    rows = np.isin(diagnosis, ["CN", "AD"])
    y = (diagnosis[rows] == "AD").astype(int)
    groups = groups_all[rows]
    per_class = min(len(set(groups[y == c])) for c in (0, 1)) if len(set(y)) == 2 else 0
    if per_class >= 2:
        n_folds = int(min(folds, per_class))
        probabilities = np.zeros((len(y), 2))
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for train, test in splitter.split(x[rows], y, groups):
            model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", C=0.1, max_iter=2000))
            model.fit(x[rows][train], y[train])
            probabilities[np.ix_(test, model.classes_)] = model.predict_proba(x[rows][test])
        out["diagnosis"] = BiologyProbe("diagnosis", y, probabilities, groups, np.full((len(y), 2), 0.5))
    controls = diagnosis == "CN"
    age = pd.to_numeric(table["age"], errors="coerce").to_numpy(float)
    controls &= ~np.isnan(age)
    groups = groups_all[controls]
    if len(set(groups)) >= 5:
        n_folds = int(min(folds, len(set(groups))))
        predicted, baseline = np.zeros(controls.sum()), np.zeros(controls.sum())
        for train, test in GroupKFold(n_splits=n_folds).split(x[controls], age[controls], groups):
            model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
            model.fit(x[controls][train], age[controls][train])
            predicted[test] = model.predict(x[controls][test])
            baseline[test] = age[controls][train].mean()
        out["age"] = BiologyProbe("age", age[controls], predicted, groups, baseline)
    return out


def paired_to_reference(
    probe: BiologyProbe, reference: BiologyProbe, *, n_resamples: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Difference ``probe - reference`` (same rows) with its paired subject-bootstrap 95% interval."""
    if not np.array_equal(probe.groups, reference.groups):
        raise ValueError("paired differences need the same rows in the same order")
    difference = probe.samples(n_resamples, seed) - reference.samples(n_resamples, seed)
    return (
        probe.score() - reference.score(),
        float(np.nanpercentile(difference, 2.5)),
        float(np.nanpercentile(difference, 97.5)),
    )
