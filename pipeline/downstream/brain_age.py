"""Brain-age prediction with a trained BrainAgeCNN3D: the items and the writer handler of the brain_age
bundle's inference config (its evaluator runs the network; this module says what to predict and what to
write).

Writes one row per control of the requested split: predicted age and gap (predicted - true). A JSON
beside the table holds the raw MAE, MSE, r, R^2 and corr(gap, age) with bootstrap intervals over
subjects, and two baselines on the same subjects fitted on the training split: predicting the training
mean age, and a linear regression on ventricle and hippocampal volumes (when a volume table is given or
found).

For gap analyses only, the table also gets ``predicted_age_corrected`` and ``gap_corrected``
(:class:`~pipeline.metrics.regression.AgeBiasCorrection`, fitted on the ``val`` split's predictions and
applied without the scored subjects' true ages) when the split table has at least 3 validation controls
and the fitted slope is usable; the JSON's ``gap_analysis`` says which and why. No accuracy is ever
computed from the corrected columns.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from pipeline.atomic import write_table
from pipeline.bundles import load_bundle_weights
from pipeline.data.task_tables import task_table
from pipeline.evaluate.volume_baseline import (
    VOLUME_COLUMNS,
    attach_volumes,
    find_phantom_volumes,
    read_volume_table,
    volume_regressor,
)
from pipeline.metrics.regression import AgeBiasCorrection, bootstrap_interval, regression_metrics
from pipeline.run.records import BrainAgePredictions

__all__ = ["load_brain_age_model", "prediction_items", "BrainAgeWriter", "brain_age_report", "format_brain_age_table"]

log = logging.getLogger("mriharmony.brain_age")


def load_brain_age_model(network: torch.nn.Module, ckpt_path: str | Path) -> torch.nn.Module:
    """Load weights (and the target mean/scale buffers) saved by the bundle's CheckpointSaver."""
    return load_bundle_weights(network, ckpt_path, "brain_age")


def prediction_items(
    dataset_dir: str | Path,
    *,
    split: str | None = "test",
    splits_file: str | Path | None = None,
    sites: list[str] | None = None,
) -> list[dict]:
    """The inference config's dataset: one item per control to predict (``split``, all if None or ``"all"``)
    plus the validation controls, whose predictions fit the gap correction.

    Each item: ``image`` (path), ``subject``, ``session``, ``site``, ``age``, ``split`` and ``scored`` (in
    ``split``, so in the table and its metrics).
    """
    full = task_table(dataset_dir, "brain_age", splits_file=splits_file, sites=sites)
    wanted = full["split"] == split if split not in (None, "all") else pd.Series(True, index=full.index)
    if not wanted.any():
        raise ValueError(f"{dataset_dir}: no controls of split {split!r}")
    rows = full[wanted | (full["split"] == "val")]
    return [
        {
            "image": r["image"],
            "subject": r["subject"],
            "session": r["session"],
            "site": r["site"],
            "age": float(r["age"]),
            "split": r["split"],
            "scored": bool(wanted[i]),
        }
        for i, r in rows.iterrows()
    ]


class BrainAgeWriter:
    """Ignite handler of the inference config: collect every item's predicted age, then write the table and
    ``<output_file>.json`` (metrics, baselines fitted on the training controls, the gap analysis; see the
    module docstring).

    Args:
        output_file: the predictions table (TSV).
        dataset_dir, splits_file, sites: where the training controls of the baselines come from.
        split: the split that was predicted (recorded in the JSON).
        volumes_file: a TSV of regional volumes for the volume baseline; ``"auto"`` finds the phantom's
            truth table; None (or an empty string) skips that baseline.
        n_resamples: subject-level bootstrap resamples for the intervals.
    """

    def __init__(
        self,
        output_file: str | Path,
        dataset_dir: str | Path,
        *,
        split: str | None = "test",
        splits_file: str | Path | None = None,
        sites: list[str] | None = None,
        volumes_file: str | Path | None = "auto",
        volume_columns: Sequence[str] = VOLUME_COLUMNS,
        n_resamples: int = 1000,
    ):
        self.output_file, self.dataset_dir, self.split = Path(output_file), dataset_dir, split
        self.splits_file, self.sites = splits_file, sites
        self.volumes_file, self.volume_columns, self.n_resamples = volumes_file, volume_columns, n_resamples
        self.rows: list[dict] = []

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, lambda _: self.rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def collect(self, engine) -> None:
        """One row per item of the (decollated) batch: its metadata and predicted age."""
        for item, output in zip(engine.state.batch, engine.state.output):
            row = {k: item[k] for k in ("subject", "session", "site", "split")}
            row.update(age=float(item["age"]), scored=bool(item["scored"]), predicted_age=float(output["pred"].item()))
            self.rows.append(row)

    def write(self, engine=None) -> pd.DataFrame:
        table = pd.DataFrame(self.rows)
        table["gap"] = table["predicted_age"] - table["age"]
        gap_analysis = _gap_correction(table[table["split"] == "val"])
        columns = ["subject", "session", "site", "age", "split", "predicted_age", "gap"]
        if gap_analysis["applied"]:
            correction = AgeBiasCorrection(gap_analysis["slope"], gap_analysis["intercept"], gap_analysis["n"])
            table["predicted_age_corrected"] = correction.corrected_prediction(table["predicted_age"])
            table["gap_corrected"] = table["predicted_age_corrected"] - table["age"]
            columns += ["predicted_age_corrected", "gap_corrected"]
        result = table[table["scored"]][columns].reset_index(drop=True)
        write_table(self.output_file, result)
        full = task_table(self.dataset_dir, "brain_age", splits_file=self.splits_file, sites=self.sites)
        report = brain_age_report(
            result,
            full[full["split"] == "train"],
            volumes_file=self.volumes_file,
            columns=self.volume_columns,
            n_resamples=self.n_resamples,
        )
        if gap_analysis["applied"]:
            gap_analysis["gap_age_r_corrected"] = regression_metrics(result["age"], result["predicted_age_corrected"])[
                "gap_age_r"
            ]
        report["gap_analysis"] = gap_analysis
        report["split"] = self.split
        BrainAgePredictions.from_json(report).write(self.output_file.with_suffix(".json"))
        log.info("brain age on %d controls of split %s:\n%s", len(result), self.split, format_brain_age_table(report))
        return result


def _gap_correction(val: pd.DataFrame, min_slope: float = 0.2) -> dict:
    """The gap-analysis correction fitted on the validation controls' predictions, or why there is none."""
    record: dict = {
        "method": "Cole et al. 2018: (predicted - b) / a, a and b fitted on the val split",
        "fitted_on": "val",
        "n": int(len(val)),
        "applied": False,
        "use": "gap analyses only, never accuracy",
    }
    if len(val) < 3 or val["age"].nunique() < 2:
        return {**record, "reason": f"{len(val)} validation controls; need at least 3 of different ages"}
    correction = AgeBiasCorrection.fit(val["age"], val["predicted_age"])
    record.update(slope=correction.slope, intercept=correction.intercept)
    if not correction.usable(min_slope):
        return {
            **record,
            "reason": f"slope {correction.slope:.3f} < {min_slope}: the model carries too little age signal to invert",
        }
    return {**record, "applied": True, "reason": ""}


def brain_age_report(
    result: pd.DataFrame,
    train: pd.DataFrame,
    *,
    volumes_file: str | Path | None = "auto",
    columns: Sequence[str] = VOLUME_COLUMNS,
    n_resamples: int = 1000,
) -> dict:
    """Metrics with bootstrap 95% intervals of the CNN and its baselines on the rows of ``result``."""
    age = result["age"].to_numpy(float)
    subjects = result["subject"].to_numpy()

    def entry(predicted: np.ndarray) -> dict:
        mae = lambda a, b: float(np.mean(np.abs(b - a)))  # noqa: E731
        mse = lambda a, b: float(np.mean((b - a) ** 2))  # noqa: E731
        kw = {"n_resamples": n_resamples, "groups": subjects}  # a bootstrap over subjects, not images
        return {
            "metrics": {**regression_metrics(age, predicted), "n_subjects": int(len(set(subjects)))},
            "intervals_95": {
                "mae": bootstrap_interval(age, predicted, mae, **kw),
                "mse": bootstrap_interval(age, predicted, mse, **kw),
            },
        }

    report: dict = {"cnn": entry(result["predicted_age"].to_numpy(float)), "baselines": {}}
    if len(train):
        report["baselines"]["train_mean"] = entry(np.full(len(result), float(train["age"].mean())))
        path = find_phantom_volumes(train) if volumes_file == "auto" else (volumes_file or None)
        if path is not None and len(train) >= 3:
            volumes = read_volume_table(path, columns)
            keyed = result.assign(label=result["age"])
            predicted = volume_regressor(
                attach_volumes(train, volumes, columns), attach_volumes(keyed, volumes, columns), columns=columns
            )
            report["baselines"]["volume_linear"] = {
                "volumes_file": str(path),
                "columns": list(columns),
                **entry(predicted),
            }
    return report


def format_brain_age_table(report: dict) -> str:
    """The CNN and its baselines as a text table (raw MAE with its interval, R^2, r, corr(gap, age))."""
    rows = [("cnn", report["cnn"]), *report.get("baselines", {}).items()]
    lines = [f"  {'method':<16} {'MAE years [95% CI]':<24} {'R^2':>6} {'r':>6} {'r(gap,age)':>10}  images/subjects"]
    for name, entry in rows:
        m, (low, high) = entry["metrics"], entry["intervals_95"]["mae"]
        lines.append(
            f"  {name:<16} {m['mae']:>5.2f} [{low:.2f}, {high:.2f}]{'':<7} {m['r2']:>6.2f} {m['r']:>6.3f} "
            f"{m['gap_age_r']:>10.2f}  {m['n']}/{m.get('n_subjects', m['n'])}"
        )
    return "\n".join(lines)
