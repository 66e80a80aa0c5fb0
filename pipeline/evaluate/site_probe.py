"""Site probe: how well can the acquisition site still be predicted from the images?

Before harmonization a probe should find the site easily; after a good harmonization it should be near
chance (1 / number of sites). Two probes, both fitted on training folds only with subject-level
cross-validation (scikit-learn ``StratifiedGroupKFold``: all images of a subject, e.g. a traveling
subject's scans at several sites, stay in one fold):

- ``linear``: class-balanced logistic regression on standardized 8^3 downsampled volumes (area average);
- ``cnn``: MONAI's small ``Classifier`` (two strided 3D convolution blocks) on 16^3 volumes.

The score is the balanced accuracy of the out-of-fold predictions, averaged over ``repeats`` cross-validations
with different fold splits (and, for the CNN, different initialisations), with a two-level 95% interval: each
bootstrap draw picks one repeat, then resamples subjects. So the interval carries what varies between runs
(which subjects share a fold, the training seed), not only which test subjects were drawn; one run at the
ceiling no longer collapses it to a point.

The phantom's sites, like real cohorts, differ in age, sex and diagnosis, so a probe can find the site
from the biology alone. Two deconfounded variants separate the scanner from the biology:

- ``covariates`` (:func:`confound_design`: age, sex, diagnosis): every feature is residualized on them
  by least squares fitted on the training fold only, then probed;
- :func:`traveling_rows`: only the subjects scanned at every site of the table (the same anatomy at each
  site), so nothing but the scanner tells the sites apart; a perfect harmonizer brings this to chance.
"""

from __future__ import annotations

from typing import Any, Sequence

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.evaluate.paired_difference import bootstrap_metric_samples, weighted_classification_metrics

__all__ = ["downsampled_volumes", "site_probe", "probe_row", "confound_design", "traveling_rows", "PROBES", "CONFOUNDS"]

PROBES = ("linear", "cnn")
CONFOUNDS = ("age", "sex", "diagnosis")


def confound_design(table: pd.DataFrame, columns: Sequence[str] = CONFOUNDS) -> np.ndarray:
    """Numeric confound matrix (N, k) of ``table``: age (missing -> the mean), sex (1 = F) and one
    indicator per diagnosis but the first (sorted); a column absent from the table or constant is left out."""
    parts = []
    if "age" in columns and "age" in table:
        age = pd.to_numeric(table["age"], errors="coerce")
        parts.append(age.fillna(age.mean()).fillna(0.0).to_numpy(float)[:, None])
    if "sex" in columns and "sex" in table:
        parts.append((table["sex"].astype(str).str.upper() == "F").to_numpy(float)[:, None])
    if "diagnosis" in columns and "diagnosis" in table:
        levels = sorted(set(table["diagnosis"].astype(str)))
        parts += [(table["diagnosis"].astype(str) == level).to_numpy(float)[:, None] for level in levels[1:]]
    design = np.hstack(parts) if parts else np.zeros((len(table), 0))
    keep = design.std(axis=0) > 0 if len(design) else np.zeros(design.shape[1], bool)
    return design[:, keep]


def traveling_rows(table: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the rows whose subject has an image at every site of ``table``."""
    n_sites = table["site"].nunique()
    per_subject = table.groupby("subject")["site"].nunique()
    return table["subject"].map(per_subject).to_numpy() == n_sites


def _residualize(
    train_x: np.ndarray, test_x: np.ndarray, train_z: np.ndarray, test_z: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Remove from every feature its least-squares fit on the confounds (intercept included), fitted on
    the training rows only."""
    shape = train_x.shape[1:]
    a = np.hstack([np.ones((len(train_z), 1)), train_z])
    b = np.hstack([np.ones((len(test_z), 1)), test_z])
    flat_train, flat_test = train_x.reshape(len(train_x), -1), test_x.reshape(len(test_x), -1)
    beta, *_ = np.linalg.lstsq(a, flat_train, rcond=None)
    return (
        (flat_train - a @ beta).reshape(-1, *shape).astype(np.float32),
        (flat_test - b @ beta).reshape(-1, *shape).astype(np.float32),
    )


def downsampled_volumes(paths: Sequence[str], size: int = 8) -> np.ndarray:
    """Volumes area-averaged to ``size``^3, shape (N, size, size, size)."""
    out = np.empty((len(paths), size, size, size), dtype=np.float32)
    for i, path in enumerate(paths):
        data = torch.from_numpy(np.asarray(nib.load(str(path)).dataobj, dtype=np.float32))[None, None]
        out[i] = torch.nn.functional.adaptive_avg_pool3d(data, size)[0, 0].numpy()
    return out


def _linear_fold(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, n_classes: int, seed: int) -> np.ndarray:
    model = make_pipeline(
        StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000, C=0.1, random_state=seed)
    )
    model.fit(train_x.reshape(len(train_x), -1), train_y)
    probabilities = np.zeros((len(test_x), n_classes))
    probabilities[:, model.classes_] = model.predict_proba(test_x.reshape(len(test_x), -1))
    return probabilities


def _cnn_fold(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, n_classes: int, seed: int, epochs: int = 60
) -> np.ndarray:
    from monai.networks.nets import Classifier

    torch.manual_seed(seed)
    size = train_x.shape[1]
    net = Classifier(in_shape=(1, size, size, size), classes=n_classes, channels=(8, 16), strides=(2, 2))
    mean, std = train_x.mean(), train_x.std() + 1e-6
    x = torch.from_numpy((train_x - mean) / std)[:, None]
    y = torch.from_numpy(train_y).long()
    weights = torch.tensor(
        len(y) / (n_classes * np.maximum(np.bincount(train_y, minlength=n_classes), 1)), dtype=torch.float32
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    loss = torch.nn.CrossEntropyLoss(weight=weights)
    net.train()
    for _ in range(epochs):  # full batch: a few dozen small volumes
        optimizer.zero_grad()
        loss(net(x), y).backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        return torch.softmax(net(torch.from_numpy((test_x - mean) / std)[:, None]), dim=1).numpy()


def site_probe(
    table: pd.DataFrame,
    *,
    probe: str = "linear",
    image_key: str = "image_cube",
    folds: int = 5,
    seed: int = 0,
    n_resamples: int = 1000,
    volumes: np.ndarray | None = None,
    covariates: np.ndarray | None = None,
    repeats: int = 3,
) -> dict:
    """Cross-validated site prediction on the images of ``table`` (columns ``site``, ``subject``, ``image_key``).

    Args:
        probe: ``linear`` (8^3) or ``cnn`` (16^3).
        folds: subject-level folds (fewer when a site has fewer subjects).
        volumes: precomputed downsampled volumes (N, s, s, s) in the table's order, else loaded.
        covariates: confounds (N, k), e.g. :func:`confound_design`; every feature is residualized on
            them inside each fold, fitted on the training fold only.
        repeats: cross-validations with different fold splits (seeds ``seed``, ``seed + 1``, ...).

    Returns:
        ``balanced_accuracy`` (the mean over repeats), ``interval_95``, ``chance``, ``n_images``, ``n_subjects``,
        ``folds``, ``repeats``, ``repeat_balanced_accuracy`` (one per repeat), ``sites``, ``predictions`` (the
        first repeat's out-of-fold probabilities per row, a list) and ``samples`` (the balanced accuracy of a
        drawn repeat on each subject resample: the same repeat draws and resamples for the same rows and seed, so
        two conditions' samples subtract into a paired two-level bootstrap).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")
    sites = sorted(set(table["site"]))
    if len(sites) < 2:
        raise ValueError(f"the site probe needs at least two sites, got {sites}")
    y = table["site"].map({s: i for i, s in enumerate(sites)}).to_numpy()
    groups = table["subject"].astype(str).to_numpy()
    per_site = table.groupby("site")["subject"].nunique().min()
    n_folds = int(min(folds, per_site))
    if n_folds < 2:
        raise ValueError(f"the site probe needs at least 2 subjects per site, got {per_site}")
    size = 8 if probe == "linear" else 16
    x = volumes if volumes is not None else downsampled_volumes(list(table[image_key]), size)
    per_repeat, accuracies, sample_rows = [], [], []
    for repeat in range(repeats):
        probabilities = np.zeros((len(table), len(sites)))
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed + repeat)
        for fold, (train, test) in enumerate(splitter.split(x, y, groups)):
            fit = _linear_fold if probe == "linear" else _cnn_fold
            train_x, test_x = x[train], x[test]
            if covariates is not None and covariates.shape[1]:
                train_x, test_x = _residualize(train_x, test_x, covariates[train], covariates[test])
            probabilities[test] = fit(train_x, y[train], test_x, len(sites), seed + 1000 * repeat + fold)
        per_repeat.append(probabilities)
        accuracies.append(weighted_classification_metrics(y, probabilities)["balanced_accuracy"])
        sample_rows.append(
            bootstrap_metric_samples(y, probabilities, groups, n_resamples=n_resamples, seed=seed)["balanced_accuracy"]
        )
    drawn = np.random.default_rng([seed, repeats]).integers(0, repeats, n_resamples)
    samples = np.stack(sample_rows)[drawn, np.arange(n_resamples)]
    accuracy = float(np.mean(accuracies))
    interval = [float(np.nanpercentile(samples, 2.5)), float(np.nanpercentile(samples, 97.5))]
    return {
        "probe": probe,
        "balanced_accuracy": accuracy,
        "interval_95": interval,
        "chance": 1.0 / len(sites),
        "sites": sites,
        "n_images": int(len(table)),
        "n_subjects": int(len(set(groups))),
        "folds": n_folds,
        "repeats": repeats,
        "repeat_balanced_accuracy": [float(a) for a in accuracies],
        "predictions": per_repeat[0].tolist(),
        "samples": samples,
    }


def probe_row(result: dict, **labels: Any) -> dict:
    """One table row of a :func:`site_probe` result: ``labels`` (what was probed, e.g. ``sites``, ``probe``,
    ``adjustment``), then its balanced accuracy with the 95% interval as ``low`` / ``high``, chance and counts."""
    return {
        **labels,
        "balanced_accuracy": result["balanced_accuracy"],
        "low": result["interval_95"][0],
        "high": result["interval_95"][1],
        "chance": result["chance"],
        "n_images": result["n_images"],
        "n_subjects": result["n_subjects"],
    }
