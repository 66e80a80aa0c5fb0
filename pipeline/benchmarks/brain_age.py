"""The brain-age benchmark of 004 (Tables 2 and 3): does harmonization make pooled brain age better?

    mriharmony benchmark brain-age --raw DERIV --harmonized HARM_TO_SOURCE [--harmonized-to-target HARM_TO_TARGET] \\
        --source-site A --target-site B --seeds 3 --out BENCH [--held-out]

Protocol (004, section 4.2): pool the controls of the source and target sites, split them 70:30 by
subject (stratified by site, per seed), train one brain-age model per condition on the *same* split
- ``none`` (raw images), ``to_source`` (target-site images harmonized to the source site), and
``to_target`` if given (source-site images harmonized to the target) - and report the test MAE and
MSE per condition with a bootstrap 95% interval and the mean and SD over seeds. A model that predicts
the training mean age is reported beside as the floor every model must beat, a linear regression on
ventricle and hippocampal volume (the phantom's true volumes, when found) as the simple baseline, and the MAE of the
brain-age gap after the usual linear bias correction (fitted on each model's training predictions
only) beside, never instead of, the uncorrected MAE.

``--held-out`` (Table 3) evaluates only on subjects the CycleGAN never trained on: the test set is
the controls outside the CycleGAN's ``train`` split (``--cyclegan-splits``, default the
``splits.tsv`` in or beside RAW) and the brain-age models train on the controls inside it.

Each model is the brain_age bundle run through MONAI (``pipeline.bundles.run_bundle``), so the
benchmark trains exactly what users train. Outputs in BENCH: ``results.tsv`` (condition x seed),
``summary.tsv`` and ``summary.json`` (per condition), ``predictions.tsv`` and
``scatter_<condition>.png`` (predicted vs true age).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.atomic import atomic_path, write_json, write_table
from pipeline.bundles import run_bundle, train_bundle_once
from pipeline.cohort import read_splits, split_subjects, write_splits
from pipeline.engines.site_pairs import find_splits_file
from pipeline.evaluate.regression import BiasCorrection, bootstrap_interval, regression_metrics
from pipeline.evaluate.volume_baseline import attach_volumes, find_phantom_volumes, read_volume_table, volume_regressor
from pipeline.harmonize import file_sha256
from pipeline.preprocess.batch import read_preprocessed

__all__ = ["run_brain_age_benchmark", "benchmark_splits", "format_benchmark_table"]

log = logging.getLogger("mriharmony.benchmark")


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b))))


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((np.asarray(a) - np.asarray(b)) ** 2))


def benchmark_splits(raw: str | Path, source_site: str, target_site: str, seed: int, *, held_out: bool = False,
                     cyclegan_splits: str | Path | None = None) -> pd.DataFrame:
    """Subject -> train/test for one seed over the pooled controls of the two sites."""
    table = read_preprocessed(raw)
    table = table[table["site"].isin([source_site, target_site]) & (table["diagnosis"] == "CN")]
    if table.empty:
        raise ValueError(f"{raw}: no controls (diagnosis CN) at sites {source_site} and {target_site}")
    if not held_out:
        return split_subjects(table, (0.7, 0.3), seed=seed, stratify=("site", "age"))
    gan = read_splits(find_splits_file(raw, cyclegan_splits))
    seen = set(gan.loc[gan["split"] == "train", "subject"])
    subjects = sorted(table["subject"].unique())
    return pd.DataFrame({"subject": subjects, "split": ["train" if s in seen else "test" for s in subjects]})


def run_brain_age_benchmark(raw: str | Path, harmonized_to_source: str | Path, out: str | Path, *,
                            source_site: str, target_site: str, harmonized_to_target: str | Path | None = None,
                            seeds: int = 3, held_out: bool = False, cyclegan_splits: str | Path | None = None,
                            bundle_overrides: dict[str, Any] | None = None, n_resamples: int = 1000) -> pd.DataFrame:
    """Run the benchmark (see the module docstring); returns the per-condition summary."""
    out = Path(out)
    conditions = {"none": Path(raw), "to_source": Path(harmonized_to_source)}
    if harmonized_to_target is not None:
        conditions["to_target"] = Path(harmonized_to_target)
    results, predictions = [], []
    truth = find_phantom_volumes(read_preprocessed(raw))  # the phantom's true volumes, for the volume baseline
    volumes = read_volume_table(truth) if truth is not None else None
    for seed in range(seeds):
        splits_path = out / f"splits_seed{seed}.tsv"
        splits = benchmark_splits(raw, source_site, target_site, seed, held_out=held_out, cyclegan_splits=cyclegan_splits)
        if (splits["split"] == "test").sum() < 2 or (splits["split"] == "train").sum() < 2:
            raise ValueError(f"seed {seed}: too few controls for a train/test split ({splits['split'].value_counts().to_dict()})")
        write_splits(splits, splits_path)
        for condition, folder in conditions.items():
            run_root = out / condition / f"seed{seed}"
            overrides = {"bundle_root": str(run_root), "dataset_dir": str(folder), "splits_file": str(splits_path),
                         "sites": [source_site, target_site], "seed": seed, **(bundle_overrides or {})}
            log.info("brain-age benchmark: %s, seed %d", condition, seed)
            # a re-run reuses a finished model trained with the same settings on the same split
            train_bundle_once("brain_age", run_root, overrides, inputs={"splits": file_sha256(splits_path)})
            inference = {k: v for k, v in overrides.items() if k in ("bundle_root", "dataset_dir", "splits_file", "sites")
                         or k.startswith(("net_kwargs", "spatial_size"))}
            run_bundle("brain_age", "inference", output_file=str(run_root / "predictions.tsv"), split="all", **inference)
            every = pd.read_csv(run_root / "predictions.tsv", sep="\t", dtype={"subject": str}, keep_default_na=False)
            train = every[every["split"] == "train"]
            correction = BiasCorrection.fit(train["age"], train["predicted_age"])  # fitted on training subjects only
            train_ages = train["age"].to_numpy(float)
            pred = every[every["split"] == "test"].assign(condition=condition, seed=seed,
                                                         mean_predictor=float(np.mean(train_ages)))
            pred["corrected_gap"] = correction.corrected_gap(pred["age"], pred["predicted_age"])
            predictions.append(pred)
            metrics = regression_metrics(pred["age"], pred["predicted_age"])
            kw = {"n_resamples": n_resamples, "seed": seed, "groups": pred["subject"].to_numpy()}  # over subjects
            low, high = bootstrap_interval(pred["age"], pred["predicted_age"], _mae, **kw)
            mse_low, mse_high = bootstrap_interval(pred["age"], pred["predicted_age"], _mse, **kw)
            results.append({"condition": condition, "seed": seed, **metrics, "mae_ci_low": low, "mae_ci_high": high,
                            "mse_ci_low": mse_low, "mse_ci_high": mse_high,
                            "corrected_mae": float(np.mean(np.abs(pred["corrected_gap"]))),
                            "bias_slope": correction.slope, "bias_intercept": correction.intercept,
                            "mean_predictor_mae": _mae(pred["age"], np.full(len(pred), np.mean(train_ages))),
                            "volume_linear_mae": _volume_mae(train, pred, volumes)})
    results_table = pd.DataFrame(results)
    all_predictions = pd.concat(predictions, ignore_index=True)
    summary = _summarise(results_table)
    write_table(out / "results.tsv", results_table)
    write_table(out / "predictions.tsv", all_predictions)
    write_table(out / "summary.tsv", summary)
    write_json(out / "summary.json", {"protocol": "004 Table 3 (held-out)" if held_out else "004 Table 2",
                                      "source_site": source_site, "target_site": target_site, "seeds": seeds,
                                      "conditions": {k: str(v) for k, v in conditions.items()},
                                      "summary": summary.to_dict(orient="records")})
    for condition in conditions:
        _scatter(all_predictions[all_predictions["condition"] == condition], out / f"scatter_{condition}.png", condition)
    return summary


def format_benchmark_table(summary: pd.DataFrame) -> str:
    """The per-condition summary as a text table (004 Table 2 / 3 layout plus the baselines)."""
    lines = [f"  {'condition':<10} {'MAE mean':>9} {'SD':>6} {'MSE mean':>9} {'corrected MAE':>14}  "
             f"{'mean-predictor MAE':>18}  {'volume-linear MAE':>17}  n test"]
    for _, row in summary.iterrows():
        lines.append(f"  {row['condition']:<10} {row['mae_mean']:9.2f} {row['mae_sd']:6.2f} {row['mse_mean']:9.1f} "
                     f"{row['corrected_mae_mean']:14.2f}  {row['mean_predictor_mae']:18.2f}  "
                     f"{row['volume_linear_mae']:17.2f}  {row['n_test']}")
    return "\n".join(lines)


def _volume_mae(train: pd.DataFrame, test: pd.DataFrame, volumes: pd.DataFrame | None) -> float:
    """Test MAE of a linear regression on log ventricle and hippocampal volume fitted on the training
    controls (NaN when the cohort has no volume table)."""
    if volumes is None or len(train) < 3:
        return float("nan")
    fit, score = (attach_volumes(t.assign(label=t["age"]), volumes) for t in (train, test))
    return _mae(score["age"], volume_regressor(fit, score))


def _summarise(results: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for condition, part in results.groupby("condition", sort=False):
        rows.append({"condition": condition, "seeds": len(part), "mae_mean": part["mae"].mean(),
                     "mae_sd": part["mae"].std(ddof=1) if len(part) > 1 else float("nan"),
                     "mse_mean": part["mse"].mean(), "mse_sd": part["mse"].std(ddof=1) if len(part) > 1 else float("nan"),
                     "mae_ci_low_mean": part["mae_ci_low"].mean(), "mae_ci_high_mean": part["mae_ci_high"].mean(),
                     "r_mean": part["r"].mean(), "corrected_mae_mean": part["corrected_mae"].mean(),
                     "mean_predictor_mae": part["mean_predictor_mae"].mean(),
                     "volume_linear_mae": part["volume_linear_mae"].mean(),
                     "n_test": int(part["n"].iloc[0])})
    return pd.DataFrame(rows)


def _scatter(pred: pd.DataFrame, path: Path, condition: str) -> None:
    from pipeline.report.figures import scatter_figure

    png = scatter_figure(pred, f"{condition}: MAE {_mae(pred['age'], pred['predicted_age']):.1f} y")
    with atomic_path(path) as tmp:
        tmp.write_bytes(png)
