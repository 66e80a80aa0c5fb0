"""The brain-age benchmark: does harmonization make brain age better, pooled and across sites?

    mriharmony benchmark brain-age --raw DERIV --source-site A --target-site B --protocol PROTOCOL \\
        (--harmonized TO_SOURCE [--harmonized-to-target TO_TARGET] | --harmonizer-seeds N) --seeds 3 --out BENCH

Protocols (each run on the controls of the two sites):

- ``pooled`` (Komandur et al. 2023, Table 2): the controls pooled, split 70:30 by subject per seed (stratified
  by site and age); one model per condition on the same split: ``raw``, ``to_source`` (target site harmonized
  to the source), ``to_target`` (source harmonized to the target) when given; beside them a ridge
  regression on regional mean T1 (``features_raw``, the simple baseline) and the same after ComBat fitted
  on the training controls (``features_combat``).
- ``held_out`` (their Table 3): the same, on the controls the CycleGAN never saw only. "Never saw" is read
  from each checkpoint's ``info`` (``train_subjects`` and ``val_subjects``: traveling subjects that chose the
  checkpoint count as seen), never assumed; every harmonizer's subjects are left out.
- ``cross_site``: what users do most - train on one site, apply elsewhere. The model trains on the raw
  training controls of one site only and is applied to the *other* site's test controls: ``raw``,
  ``cyclegan`` (test images harmonized to the training site), ``histogram`` (test images histogram-matched to
  the training site's training images). Beside them a ridge regression on regional mean T1
  (``features_raw``) and the same after ComBat (``features_combat``: site parameters estimated on both
  sites' training controls with age protected, applied without any subject's age, see
  :meth:`~pipeline.evaluate.combat.ComBat.transform_without_covariates`). Both directions. The raw model is
  also scored on its own site's test controls (route ``A -> A``); ``penalty`` is each condition's MAE minus
  that within-site MAE (the out-of-site penalty of Bashyam et al. 2022), so the penalty a method removes is
  raw's penalty minus its own (= its paired difference to raw).

Every condition of a seed is scored on the same test subjects. ``harmonizer_seeds`` CycleGANs (each
trained on the same training subjects, :mod:`pipeline.experiments.harmonizer_seeds`) multiply the harmonized
conditions' runs. Per run: raw MAE, MSE, r, R^2 and corr(gap, age). Per condition: mean and SD over runs
(brain-age seeds x harmonizer seeds), the SD over harmonizer seeds, a 95% interval *of the mean over runs*
(two-level bootstrap: runs, then test subjects), and the paired difference to ``raw`` (same seed, same
subjects, same resamples) with its two-level interval, and the paired difference to the training-mean
predictor (``vs_mean``: a model beats the mean when its whole interval is below 0). Baselines: the
training mean age (the floor) and a
linear regression on the phantom's true ventricle and hippocampal volumes. No bias-corrected error is
computed: that correction uses the test subjects' true ages and makes a constant predictor look perfect.

Outputs in BENCH: ``results.tsv`` (one row per run), ``summary.tsv`` / ``summary.json`` (per condition),
``predictions.tsv``, ``splits_seed<k>.tsv`` and ``scatter_<train>_<test>_<condition>.png``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import nibabel as nib
import numpy as np
import pandas as pd

from pipeline.atomic import atomic_path, save_nifti, write_table
from pipeline.bundles import run_bundle, train_bundle_once
from pipeline.cohort import split_subjects, write_splits
from pipeline.evaluate.combat import ComBat
from pipeline.evaluate.intensity_baselines import fit_intensity_baseline
from pipeline.evaluate.paired_difference import two_level_interval
from pipeline.evaluate.regional_features import REGIONS, regional_means
from pipeline.evaluate.volume_baseline import attach_volumes, find_phantom_volumes, read_volume_table, volume_regressor
from pipeline.experiments.harmonizer_seeds import Harmonizer, seen_subjects
from pipeline.metrics.regression import regression_metrics
from pipeline.metrics.resampling import ClusterBootstrap
from pipeline.preprocess.batch import read_preprocessed
from pipeline.run import file_sha256
from pipeline.run.layout import BENCHMARK_PROTOCOLS
from pipeline.run.records import BenchmarkSummary

__all__ = ["PROTOCOLS", "run_brain_age_benchmark", "benchmark_splits", "format_benchmark_table", "UNDERPOWERED_N"]

PROTOCOLS = tuple(BENCHMARK_PROTOCOLS)  # the folder names of the run layout
#: fewer test subjects than this, or fewer than 3 runs, and a condition's verdict says "underpowered"
UNDERPOWERED_N = 20
FEATURES = [f"{r}_mean" for r in REGIONS]
log = logging.getLogger("mriharmony.benchmark")


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(a, float) - np.asarray(b, float))))


def controls(raw: str | Path, source_site: str, target_site: str) -> pd.DataFrame:
    """The controls (diagnosis CN) of the two sites, one row per image."""
    table = read_preprocessed(raw)
    table = table[table["site"].isin([source_site, target_site]) & (table["diagnosis"] == "CN")]
    if table.empty:
        raise ValueError(f"{raw}: no controls (diagnosis CN) at sites {source_site} and {target_site}")
    return table.reset_index(drop=True)


def benchmark_splits(table: pd.DataFrame, seed: int, *, exclude: set[str] = frozenset()) -> pd.DataFrame:
    """Subject -> train/test, 70:30 per seed, stratified by site and age, over the controls not in ``exclude``
    (those get the split ``excluded``: neither trained nor tested on)."""
    left_out = table["subject"].astype(str).isin(exclude)
    kept = table[~left_out]
    if kept["subject"].nunique() < 4:
        raise ValueError(
            f"seed {seed}: {kept['subject'].nunique()} controls left after excluding "
            f"{table.loc[left_out, 'subject'].nunique()} that a CycleGAN saw; need at least 4 for a 70:30 split"
        )
    splits = split_subjects(kept, (0.7, 0.3), seed=seed, stratify=("site", "age"))
    excluded = pd.DataFrame({"subject": sorted(set(table.loc[left_out, "subject"])), "split": "excluded"})
    return pd.concat([splits, excluded], ignore_index=True) if len(excluded) else splits


@dataclass(frozen=True)
class _Context:
    raw: Path
    out: Path
    source_site: str
    target_site: str
    overrides: dict[str, Any]
    volumes: pd.DataFrame | None


def run_brain_age_benchmark(
    raw: str | Path,
    out: str | Path,
    harmonizers: Sequence[Harmonizer],
    *,
    source_site: str,
    target_site: str,
    protocol: str = "pooled",
    seeds: int = 3,
    bundle_overrides: dict[str, Any] | None = None,
    n_resamples: int = 1000,
) -> pd.DataFrame:
    """Run one protocol of the benchmark (see the module docstring); returns the per-condition summary."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if not harmonizers:
        raise ValueError("the benchmark needs at least one harmonizer (a CycleGAN and its harmonized folders)")
    out = Path(out)
    table = controls(raw, source_site, target_site)
    truth = find_phantom_volumes(table)  # the phantom's true volumes, for the volume baseline
    ctx = _Context(
        Path(raw),
        out,
        source_site,
        target_site,
        dict(bundle_overrides or {}),
        read_volume_table(truth) if truth is not None else None,
    )
    exclude: set[str] = set()
    if protocol == "held_out":
        for harmonizer in harmonizers:
            exclude |= seen_subjects(harmonizer.checkpoint)
    runs: list[dict] = []
    for seed in range(seeds):
        splits = benchmark_splits(table, seed, exclude=exclude)
        splits_path = write_splits(splits, out / f"splits_seed{seed}.tsv")
        if protocol == "cross_site":
            for train_site, test_site in ((source_site, target_site), (target_site, source_site)):
                runs += _cross_site_runs(ctx, table, splits, splits_path, seed, harmonizers, train_site, test_site)
        else:
            runs += _pooled_runs(ctx, table, splits, splits_path, seed, harmonizers)
    results, predictions = _score_runs(runs, n_resamples)
    summary = _summarise(runs, results, n_resamples)
    write_table(out / "results.tsv", results)
    write_table(out / "predictions.tsv", predictions)
    write_table(out / "summary.tsv", summary)
    BenchmarkSummary.from_json(
        {
            "protocol": protocol,
            "source_site": source_site,
            "target_site": target_site,
            "seeds": seeds,
            "harmonizer_seeds": [h.seed for h in harmonizers],
            "harmonizers": [
                {"seed": h.seed, "checkpoint": str(h.checkpoint), "sha256": file_sha256(h.checkpoint)}
                for h in harmonizers
            ],
            "excluded_seen_subjects": sorted(exclude),
            "underpowered_below_n": UNDERPOWERED_N,
            "interval": "95% interval of the mean over runs: two-level bootstrap (runs, then test subjects)",
            "summary": summary.to_dict(orient="records"),
        },
        source=str(out / "summary.json"),
    ).write(out / "summary.json")
    for (train_site, test_site, condition), part in predictions.groupby(
        ["train_site", "test_site", "condition"], sort=False
    ):
        _scatter(
            part,
            out / f"scatter_{train_site}_{test_site}_{condition}.png",
            f"{condition} ({train_site} -> {test_site})",
        )
    return summary


def _train_and_predict(
    ctx: _Context,
    run_root: Path,
    dataset: Path,
    splits_path: Path,
    seed: int,
    train_sites: list[str],
    test_sites: list[str],
    test_dataset: Path | None = None,
    name: str = "predictions",
) -> pd.DataFrame:
    """Train the brain_age bundle (reused when finished with the same settings) and predict the test split."""
    overrides = {
        "dataset_dir": str(dataset),
        "splits_file": str(splits_path),
        "sites": train_sites,
        "seed": seed,
        **ctx.overrides,
    }
    inputs = {"splits": file_sha256(splits_path), "images": _fingerprint(dataset)}
    train_bundle_once("brain_age", run_root, overrides, inputs=inputs)
    inference = {
        k: v for k, v in overrides.items() if k in ("splits_file",) or k.startswith(("net_kwargs", "spatial_size"))
    }
    output = run_root / f"{name}.tsv"
    run_bundle(
        "brain_age",
        "inference",
        bundle_root=str(run_root),
        dataset_dir=str(test_dataset or dataset),
        sites=test_sites,
        split="test",
        output_file=str(output),
        volumes_file="",
        **inference,
    )
    return pd.read_csv(output, sep="\t", dtype={"subject": str, "session": str}, keep_default_na=False)


def _fingerprint(dataset: Path) -> str:
    """What made a folder's images: the generator's SHA-256 for a harmonized folder, else "" (raw images are
    rewritten only by a changed preprocessing, which the preprocessing's own resume checks)."""
    description = dataset / "dataset_description.json"
    if description.exists():
        return str(json.loads(description.read_text()).get("GeneratorSHA256", ""))
    return ""


def _run(
    ctx: _Context,
    condition: str,
    seed: int,
    harmonizer_seed: int | None,
    train_site: str,
    test_site: str,
    train_ages: np.ndarray,
    predicted: pd.DataFrame,
    train_rows: pd.DataFrame,
) -> dict:
    test = predicted[["subject", "session", "site", "age", "predicted_age"]].sort_values(["subject", "session"])
    return {
        "condition": condition,
        "seed": seed,
        "harmonizer_seed": harmonizer_seed,
        "train_site": train_site,
        "test_site": test_site,
        "test": test.reset_index(drop=True),
        "train_mean_age": float(np.mean(train_ages)),
        "volume_linear_mae": _volume_mae(train_rows, test, ctx.volumes),
    }


def _pooled_runs(
    ctx: _Context,
    table: pd.DataFrame,
    splits: pd.DataFrame,
    splits_path: Path,
    seed: int,
    harmonizers: Sequence[Harmonizer],
) -> list[dict]:
    sites = [ctx.source_site, ctx.target_site]
    pooled = "+".join(sites)
    train_rows = table.merge(splits, on="subject")
    train_rows = train_rows[train_rows["split"] == "train"]
    ages = train_rows["age"].to_numpy(float)
    runs = [
        _run(
            ctx,
            "raw",
            seed,
            None,
            pooled,
            pooled,
            ages,
            _train_and_predict(ctx, ctx.out / "raw" / f"seed{seed}", ctx.raw, splits_path, seed, sites, sites),
            train_rows,
        )
    ]
    for harmonizer in harmonizers:
        for condition, folder in (("to_source", harmonizer.to_source), ("to_target", harmonizer.to_target)):
            if folder is None:
                continue
            root = ctx.out / condition / f"harmonizer{harmonizer.seed}" / f"seed{seed}"
            runs.append(
                _run(
                    ctx,
                    condition,
                    seed,
                    harmonizer.seed,
                    pooled,
                    pooled,
                    ages,
                    _train_and_predict(ctx, root, folder, splits_path, seed, sites, sites),
                    train_rows,
                )
            )
    rows = table.merge(splits, on="subject")
    test_rows = rows[rows["split"] == "test"]
    for condition, predicted in _feature_predictions(train_rows, test_rows, test_rows.iloc[:0]).items():
        runs.append(_run(ctx, condition, seed, None, pooled, pooled, ages, predicted, train_rows))
    return runs


def _cross_site_runs(
    ctx: _Context,
    table: pd.DataFrame,
    splits: pd.DataFrame,
    splits_path: Path,
    seed: int,
    harmonizers: Sequence[Harmonizer],
    train_site: str,
    test_site: str,
) -> list[dict]:
    """Train on ``train_site``'s training controls, test on ``test_site``'s test controls (see the module docstring)."""
    rows = table.merge(splits, on="subject")
    train = rows[(rows["site"] == train_site) & (rows["split"] == "train")]
    test = rows[(rows["site"] == test_site) & (rows["split"] == "test")]
    if len(train) < 3 or test.empty:
        raise ValueError(
            f"seed {seed}: {len(train)} training controls at {train_site} and {len(test)} test controls "
            f"at {test_site}; need at least 3 and 1"
        )
    ages = train["age"].to_numpy(float)
    root = ctx.out / f"{train_site}_to_{test_site}"
    model_root = root / "raw" / f"seed{seed}"  # one model per seed: trained on raw images of the training site

    def predict(dataset: Path, name: str) -> pd.DataFrame:
        return _train_and_predict(
            ctx, model_root, ctx.raw, splits_path, seed, [train_site], [test_site], test_dataset=dataset, name=name
        )

    runs = [_run(ctx, "raw", seed, None, train_site, test_site, ages, predict(ctx.raw, "raw"), train)]
    # the same model on its own site's test controls: the within-site error the cross-site penalty is measured from
    within = _train_and_predict(
        ctx, model_root, ctx.raw, splits_path, seed, [train_site], [train_site], name="within_site"
    )
    runs.append(_run(ctx, "raw", seed, None, train_site, train_site, ages, within, train))
    for harmonizer in harmonizers:
        # the test site harmonized to the training site: "to source" when training on the source site
        folder = harmonizer.to_source if train_site == ctx.source_site else harmonizer.to_target
        if folder is not None:
            runs.append(
                _run(
                    ctx,
                    "cyclegan",
                    seed,
                    harmonizer.seed,
                    train_site,
                    test_site,
                    ages,
                    predict(folder, f"cyclegan_harmonizer{harmonizer.seed}"),
                    train,
                )
            )
    matched = _histogram_matched(train, test, root / "histogram" / f"seed{seed}")
    runs.append(_run(ctx, "histogram", seed, None, train_site, test_site, ages, predict(matched, "histogram"), train))
    test_site_train = rows[(rows["site"] == test_site) & (rows["split"] == "train")]
    for condition, predicted in _feature_predictions(train, test, test_site_train).items():
        runs.append(_run(ctx, condition, seed, None, train_site, test_site, ages, predicted, train))
    return runs


def _load(path: str) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


def _histogram_matched(train: pd.DataFrame, test: pd.DataFrame, out: Path) -> Path:
    """The test images histogram-matched to the training site's training images, as a table folder."""
    baseline = fit_intensity_baseline(
        "histogram", ((_load(r.image_cube)[0], _load(r.mask_cube)[0]) for r in train.itertuples())
    )
    records = []
    for row in test.itertuples():
        data, affine = _load(row.image_cube)
        path = out / "images" / f"sub-{row.subject}_ses-{row.session or 'none'}_desc-histogram_T1w.nii.gz"
        save_nifti(path, nib.Nifti1Image(baseline(data, _load(row.mask_cube)[0]), affine))
        records.append({**row._asdict(), "image_cube": str(path)})
    table = pd.DataFrame(records).drop(columns=["Index", "split"], errors="ignore")
    write_table(out / "preprocessed.tsv", table)
    return out


def _feature_predictions(
    train: pd.DataFrame, test: pd.DataFrame, test_site_train: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Ridge regression on regional mean T1: raw features, and after ComBat (no subject's age used to adjust).

    ComBat's site parameters are estimated on ``train`` and ``test_site_train`` (the test site's training
    controls, not used to fit the ridge); it is skipped when those rows hold fewer than two sites."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def features(rows: pd.DataFrame) -> np.ndarray:
        return pd.DataFrame([regional_means(*_load(p)) for p in rows["image_cube"]])[FEATURES].to_numpy(float)

    x_train, x_test = features(train), features(test)
    out = {}
    fitted = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 11))).fit(
        x_train, train["age"].to_numpy(float)
    )
    out["features_raw"] = test.assign(predicted_age=fitted.predict(x_test))
    both = pd.concat([train, test_site_train], ignore_index=True)
    if both["site"].nunique() >= 2 and both["site"].value_counts().min() >= 2:
        x_both = np.vstack([x_train, features(test_site_train)]) if len(test_site_train) else x_train
        combat = ComBat(continuous=["age"]).fit(x_both, both["site"], both)
        z_train = combat.transform_without_covariates(x_train, train["site"])
        z_test = combat.transform_without_covariates(x_test, test["site"])
        fitted = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 11))).fit(
            z_train, train["age"].to_numpy(float)
        )
        out["features_combat"] = test.assign(predicted_age=fitted.predict(z_test))
    return out


def _volume_mae(train: pd.DataFrame, test: pd.DataFrame, volumes: pd.DataFrame | None) -> float:
    """Test MAE of a linear regression on log ventricle and hippocampal volume fitted on the training
    controls (NaN when the cohort has no volume table)."""
    if volumes is None or len(train) < 3:
        return float("nan")
    fit, score = (attach_volumes(t.assign(label=t["age"]), volumes) for t in (train, test))
    return _mae(score["age"], volume_regressor(fit, score))


def _mae_samples(test: pd.DataFrame, n_resamples: int, seed: int, predicted: np.ndarray | None = None) -> np.ndarray:
    """Subject-bootstrap samples of the MAE of ``predicted`` (default: the ``predicted_age`` column); the
    resamples depend only on the subjects and the seed, so two predictors scored on the same subjects get
    the same resamples (paired)."""
    clusters = ClusterBootstrap(test["subject"].to_numpy())
    rng = np.random.default_rng(seed)
    predicted = test["predicted_age"].to_numpy(float) if predicted is None else np.asarray(predicted, float)
    error = np.abs(predicted - test["age"].to_numpy(float))
    return np.array([error[clusters.sample(rng)].mean() for _ in range(n_resamples)])


def _score_runs(runs: list[dict], n_resamples: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    results, predictions = [], []
    for run in runs:
        test = run["test"]
        samples = _mae_samples(test, n_resamples, run["seed"])
        run["samples"] = samples
        # the training-mean predictor on the same subjects and resamples: the paired floor
        run["mean_samples"] = _mae_samples(test, n_resamples, run["seed"], np.full(len(test), run["train_mean_age"]))
        metrics = regression_metrics(test["age"], test["predicted_age"])
        results.append(
            {k: run[k] for k in ("condition", "train_site", "test_site", "seed", "harmonizer_seed")}
            | metrics
            | {
                "mae_ci_low": float(np.percentile(samples, 2.5)),
                "mae_ci_high": float(np.percentile(samples, 97.5)),
                "n_subjects": int(test["subject"].nunique()),
                "mean_predictor_mae": _mae(test["age"], np.full(len(test), run["train_mean_age"])),
                "volume_linear_mae": run["volume_linear_mae"],
            }
        )
        predictions.append(
            test.assign(
                condition=run["condition"],
                train_site=run["train_site"],
                test_site=run["test_site"],
                seed=run["seed"],
                harmonizer_seed=run["harmonizer_seed"],
            )
        )
    return pd.DataFrame(results), pd.concat(predictions, ignore_index=True)


def _summarise(runs: list[dict], results: pd.DataFrame, n_resamples: int) -> pd.DataFrame:
    rows = []
    # the paired reference of each condition: the raw CNN, or for the feature models the raw-feature model
    reference = {
        (r["train_site"], r["test_site"], r["condition"], r["seed"]): r
        for r in runs
        if r["condition"] in ("raw", "features_raw")
    }
    keys = list(dict.fromkeys((r["train_site"], r["test_site"], r["condition"]) for r in runs))
    for train_site, test_site, condition in keys:
        group = [
            r for r in runs if (r["train_site"], r["test_site"], r["condition"]) == (train_site, test_site, condition)
        ]
        part = results[
            (results["train_site"] == train_site)
            & (results["test_site"] == test_site)
            & (results["condition"] == condition)
        ]
        low, high = two_level_interval([r["samples"] for r in group], n_resamples=n_resamples)
        baseline = "features_raw" if condition.startswith("features") else "raw"
        differences, baseline_mae = [], []
        for r in group:
            base = reference[(train_site, test_site, baseline, r["seed"])]
            if not base["test"][["subject", "session"]].equals(r["test"][["subject", "session"]]):
                raise AssertionError(f"{condition}, seed {r['seed']}: scored on other test subjects than {baseline}")
            differences.append(r["samples"] - base["samples"])  # same subjects and resamples: paired
            baseline_mae.append(_mae(base["test"]["age"], base["test"]["predicted_age"]))
        diff_low, diff_high = two_level_interval(differences, n_resamples=n_resamples)
        vs_mean_low, vs_mean_high = two_level_interval(
            [r["samples"] - r["mean_samples"] for r in group], n_resamples=n_resamples
        )
        penalty = _penalty(group, runs, train_site, test_site, n_resamples)
        per_harmonizer = (
            part.groupby("harmonizer_seed")["mae"].mean() if part["harmonizer_seed"].notna().any() else None
        )
        n_test = int(part["n_subjects"].min())
        reasons = [f"{n_test} test subjects < {UNDERPOWERED_N}"] if n_test < UNDERPOWERED_N else []
        reasons += [f"{len(part)} run(s) < 3"] if len(part) < 3 else []
        rows.append(
            {
                "condition": condition,
                "train_site": train_site,
                "test_site": test_site,
                "runs": len(part),
                "seeds": int(part["seed"].nunique()),
                "harmonizer_seeds": int(part["harmonizer_seed"].nunique()) if per_harmonizer is not None else 0,
                "mae_mean": part["mae"].mean(),
                "mae_sd": part["mae"].std(ddof=1) if len(part) > 1 else float("nan"),
                "mae_sd_harmonizer": (
                    per_harmonizer.std(ddof=1)
                    if per_harmonizer is not None and len(per_harmonizer) > 1
                    else float("nan")
                ),
                "mae_low": low,
                "mae_high": high,
                "compared_with": baseline,
                "diff_mae": part["mae"].mean() - float(np.mean(baseline_mae)),
                "diff_low": diff_low,
                "diff_high": diff_high,
                "mse_mean": part["mse"].mean(),
                "r_mean": part["r"].mean(),
                "r2_mean": part["r2"].mean(),
                "gap_age_r_mean": part["gap_age_r"].mean(),
                "mean_predictor_mae": part["mean_predictor_mae"].mean(),
                "vs_mean": part["mae"].mean() - part["mean_predictor_mae"].mean(),
                "vs_mean_low": vs_mean_low,
                "vs_mean_high": vs_mean_high,
                "volume_linear_mae": part["volume_linear_mae"].mean(),
                "n_test": n_test,
                "penalty": penalty[0],
                "penalty_low": penalty[1],
                "penalty_high": penalty[2],
                "underpowered": "; ".join(reasons),
            }
        )
    return pd.DataFrame(rows)


def _penalty(
    group: list[dict], runs: list[dict], train_site: str, test_site: str, n_resamples: int
) -> tuple[float, float, float]:
    """Cross-site penalty: the MAE on the other site's test controls minus the same raw model's MAE on its own
    site's test controls (other subjects: independent resamples, differenced per seed), with a two-level
    interval; NaN within a site and in the pooled protocols."""
    if train_site == test_site:
        return float("nan"), float("nan"), float("nan")
    within = {
        r["seed"]: r
        for r in runs
        if (r["train_site"], r["test_site"], r["condition"]) == (train_site, train_site, "raw")
    }
    if not within:
        return float("nan"), float("nan"), float("nan")
    # the two MAEs are of other subjects: shuffle one side's resamples so that the draws are independent
    differences = [
        r["samples"] - np.random.default_rng(r["seed"] + 1).permutation(within[r["seed"]]["samples"]) for r in group
    ]
    estimate = float(
        np.mean(
            [
                _mae(r["test"]["age"], r["test"]["predicted_age"])
                - _mae(within[r["seed"]]["test"]["age"], within[r["seed"]]["test"]["predicted_age"])
                for r in group
            ]
        )
    )
    low, high = two_level_interval(differences, n_resamples=n_resamples)
    return estimate, low, high


def format_benchmark_table(summary: pd.DataFrame) -> str:
    """The per-condition summary as a text table: raw MAE with the interval of its mean over runs, the
    paired difference to raw, R^2, corr(gap, age) and the baselines."""
    lines = [
        f"  {'train -> test':<20} {'condition':<16} {'runs':>4} {'MAE [95% CI of mean]':<22} {'SD':>5} "
        f"{'vs raw* [95% CI]':<22} {'vs mean [95% CI]':<22} {'R^2':>6} {'r(gap,age)':>10} {'mean-pred':>9} "
        f"{'volumes':>8}  n test"
    ]
    for row in summary.itertuples():
        route = f"{row.train_site} -> {row.test_site}" if row.train_site != row.test_site else row.train_site
        diff = (
            ""
            if row.condition == row.compared_with
            else f"{row.diff_mae:+.2f} [{row.diff_low:+.2f}, {row.diff_high:+.2f}]"
        )
        vs_mean = f"{row.vs_mean:+.2f} [{row.vs_mean_low:+.2f}, {row.vs_mean_high:+.2f}]"
        lines.append(
            f"  {route:<20} {row.condition:<16} {row.runs:>4} {row.mae_mean:5.2f} [{row.mae_low:.2f}, "
            f"{row.mae_high:.2f}]{'':<4} {row.mae_sd:5.2f} {diff:<22} {vs_mean:<22} {row.r2_mean:6.2f} "
            f"{row.gap_age_r_mean:10.2f} "
            f"{row.mean_predictor_mae:9.2f} {row.volume_linear_mae:8.2f}  {row.n_test}"
            + (f"  underpowered: {row.underpowered}" if row.underpowered else "")
        )
    lines.append(
        "  * paired difference to the raw CNN (features_combat: to features_raw), same seeds and test subjects"
    )
    return "\n".join(lines)


def _scatter(pred: pd.DataFrame, path: Path, title: str) -> None:
    from pipeline.figures import scatter_figure

    png = scatter_figure(pred, f"{title}: MAE {_mae(pred['age'], pred['predicted_age']):.1f} y")
    with atomic_path(path) as tmp:
        tmp.write_bytes(png)
