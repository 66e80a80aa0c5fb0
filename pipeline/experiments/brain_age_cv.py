"""Cross-validated brain age over every control of a cohort: enough test subjects to tell a model from the mean.

    mriharmony benchmark brain-age-cv --raw DERIV --folds 5 --out CV [--set KEY=VALUE ...]

A small cohort's test split holds too few controls for a brain-age error to mean anything (the demo's: 16).
Here every control of every site is predicted once, by models that never saw that subject: ``folds``
subject-level folds (stratified by site and age; all images of a subject, traveling subjects included, in
one fold); per fold the ``brain_age`` bundle is trained on the other folds (no val split: the bundle's
validation only monitors) and, on the same folds, a ridge regression on regional mean T1 (``features_raw``),
a linear regression on the image's tissue fractions (``tissue_linear``: the parenchymal and grey-matter
fractions inside the brain mask, see :mod:`pipeline.evaluate.tissue_fractions`) and the training folds'
mean age (the floor). Per model: raw MAE with a subject-bootstrap interval, and the
paired difference to the mean predictor (same subjects, same resamples; a model beats the mean when the
whole interval is below 0). The sites are pooled and differ in age, so a model can partly predict age from
site: beating the mean says the images carry age information, not that all of it is biology.

Outputs in CV: ``folds.tsv``, ``fold<k>/`` (the bundle runs and their splits), ``predictions.tsv`` (one row
per image and model) and ``summary.tsv`` / ``summary.json`` (one row per model, in the brain-age benchmark's
columns, so the report reads them the same way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.atomic import write_table
from pipeline.bundles import run_bundle, train_bundle_once
from pipeline.cohort import kfold_subjects, write_splits
from pipeline.evaluate.tissue_fractions import TISSUE_FEATURES, tissue_fractions
from pipeline.experiments.brain_age_benchmark import UNDERPOWERED_N, _feature_predictions, _load, _mae_samples
from pipeline.metrics.regression import regression_metrics
from pipeline.preprocess.batch import read_preprocessed
from pipeline.run import file_sha256
from pipeline.run.records import CrossValidatedSummary

__all__ = ["run_brain_age_cv"]

MODELS = ("cnn", "features_raw", "tissue_linear", "train_mean")


def run_brain_age_cv(
    raw: str | Path,
    out: str | Path,
    *,
    folds: int = 5,
    seed: int = 0,
    bundle_overrides: dict[str, Any] | None = None,
    n_resamples: int = 1000,
) -> pd.DataFrame:
    """Predict every control once by ``folds``-fold cross-validation (see the module docstring); returns the
    per-model summary."""
    raw, out = Path(raw), Path(out)
    table = read_preprocessed(raw)
    table = table[(table["diagnosis"] == "CN") & np.isfinite(pd.to_numeric(table["age"], errors="coerce"))].reset_index(
        drop=True
    )
    if table["subject"].nunique() < 2 * folds:
        raise ValueError(
            f"{table['subject'].nunique()} control subjects; {folds}-fold cross-validation needs at least {2 * folds}"
        )
    assignment = kfold_subjects(table, folds, seed=seed, stratify=("site", "age"))
    write_table(out / "folds.tsv", assignment)
    fold_of = assignment.set_index("subject")["fold"]
    tissue = _tissue_table(table)
    predictions = []
    for fold in range(folds):
        splits = pd.DataFrame(
            {"subject": fold_of.index, "split": np.where(fold_of.to_numpy() == fold, "test", "train")}
        )
        root = out / f"fold{fold}"
        splits_path = write_splits(splits, root / "splits.tsv")
        rows = table.assign(
            split=table["subject"].map(fold_of).eq(fold).map({True: "test", False: "train"})
        )  # keeps the index
        train, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
        cnn = _bundle_predictions(raw, root, splits_path, seed, dict(bundle_overrides or {}))
        features = _feature_predictions(train, test, test.iloc[:0])["features_raw"]
        fractions = _tissue_predictions(train, test, tissue)
        mean = test.assign(predicted_age=float(train["age"].mean()))
        for model, predicted in (
            ("cnn", cnn),
            ("features_raw", features),
            ("tissue_linear", fractions),
            ("train_mean", mean),
        ):
            part = predicted[["subject", "session", "site", "age", "predicted_age"]].assign(model=model, fold=fold)
            predictions.append(part.sort_values(["subject", "session"]))
    predictions = pd.concat(predictions, ignore_index=True)
    summary = _summarise(predictions, n_resamples, seed)
    write_table(out / "predictions.tsv", predictions)
    write_table(out / "summary.tsv", summary)
    CrossValidatedSummary.from_json(
        {
            "protocol": "cross_validated",
            "folds": folds,
            "seed": seed,
            "sites": sorted(table["site"].unique()),
            "underpowered_below_n": UNDERPOWERED_N,
            "interval": "95% subject-bootstrap interval over every control's cross-validated prediction",
            "summary": summary.to_dict(orient="records"),
        },
        source=str(out / "summary.json"),
    ).write(out / "summary.json")
    return summary


def _bundle_predictions(raw: Path, root: Path, splits_path: Path, seed: int, overrides: dict[str, Any]) -> pd.DataFrame:
    """Train the brain_age bundle on the fold's training controls (reused when unchanged), predict its test fold."""
    settings = {"dataset_dir": str(raw), "splits_file": str(splits_path), "seed": seed, **overrides}
    train_bundle_once("brain_age", root, settings, inputs={"splits": file_sha256(splits_path)})
    inference = {
        k: v for k, v in settings.items() if k == "splits_file" or k.startswith(("net_kwargs", "spatial_size"))
    }
    output = root / "predictions.tsv"
    run_bundle(
        "brain_age",
        "inference",
        bundle_root=str(root),
        dataset_dir=str(raw),
        split="test",
        output_file=str(output),
        volumes_file="",
        **inference,
    )
    return pd.read_csv(output, sep="\t", dtype={"subject": str, "session": str}, keep_default_na=False)


def _tissue_table(table: pd.DataFrame) -> pd.DataFrame:
    """The tissue fractions of every image (rows of ``table``, same index), computed once for all folds."""
    return pd.DataFrame(
        [tissue_fractions(_load(r.image_cube)[0], _load(r.mask_cube)[0]) for r in table.itertuples()], index=table.index
    )


def _tissue_predictions(train: pd.DataFrame, test: pd.DataFrame, tissue: pd.DataFrame) -> pd.DataFrame:
    """Least-squares age on the tissue fractions, fitted on the training folds' controls."""
    from sklearn.linear_model import LinearRegression

    columns = list(TISSUE_FEATURES)
    fitted = LinearRegression().fit(tissue.loc[train.index, columns].to_numpy(), train["age"].to_numpy(float))
    return test.assign(predicted_age=fitted.predict(tissue.loc[test.index, columns].to_numpy()))


def _summarise(predictions: pd.DataFrame, n_resamples: int, seed: int) -> pd.DataFrame:
    """One row per model: MAE with its interval and the paired difference to the mean predictor."""
    by_model = {
        m: p.sort_values(["subject", "session"]).reset_index(drop=True) for m, p in predictions.groupby("model")
    }
    mean = by_model["train_mean"]
    mean_samples = _mae_samples(mean, n_resamples, seed)
    mean_mae = float(np.abs(mean["predicted_age"] - mean["age"]).mean())
    rows = []
    for model in MODELS:
        part = by_model[model]
        if not part[["subject", "session"]].equals(mean[["subject", "session"]]):
            raise AssertionError(f"{model}: scored on other images than the mean predictor")
        samples = _mae_samples(part, n_resamples, seed)  # same subjects and seed: the same resamples (paired)
        metrics = regression_metrics(part["age"], part["predicted_age"])
        n = int(part["subject"].nunique())
        difference = samples - mean_samples
        rows.append(
            {
                "condition": model,
                "train_site": "all",
                "test_site": "all",
                "runs": 1,
                "seeds": 1,
                "mae_mean": metrics["mae"],
                "mae_low": float(np.percentile(samples, 2.5)),
                "mae_high": float(np.percentile(samples, 97.5)),
                "mae_sd": float("nan"),
                "compared_with": model,
                "diff_mae": 0.0,
                "diff_low": 0.0,
                "diff_high": 0.0,
                "r_mean": metrics["r"],
                "r2_mean": metrics["r2"],
                "gap_age_r_mean": metrics["gap_age_r"],
                "volume_linear_mae": float("nan"),
                "mean_predictor_mae": mean_mae,
                "vs_mean": metrics["mae"] - mean_mae,
                "vs_mean_low": float(np.percentile(difference, 2.5)),
                "vs_mean_high": float(np.percentile(difference, 97.5)),
                "n_test": n,
                "underpowered": f"{n} test subjects < {UNDERPOWERED_N}" if n < UNDERPOWERED_N else "",
            }
        )
    return pd.DataFrame(rows)
