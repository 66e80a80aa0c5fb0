"""How much do the downstream CNNs learn on the phantom, beside the volume baseline and permuted labels?

    python -m pipeline.experiments.downstream_learning --task cn_ad --effect-ad 1 --subjects 40 --seeds 0 1 2 \
        --out runs/learning_cn_ad_realistic

Generates a two-site phantom (4 mm by default), preprocesses it with the true brain masks, splits it
60/20/20 by subject, then per seed trains the bundle (ad_classification or brain_age, through MONAI
exactly as users run it) on the train split, once on the true labels and once on permuted ones, and
scores the held-out subjects (val + test: never trained on). The volume baseline (logistic or linear
regression on the true ventricle and hippocampal volumes, fitted on the train split) is scored on the
same subjects. Prints a table and writes ``learning.json`` and ``learning.tsv`` (one row per run).

The numbers in the bundles' model cards come from this script. ``--profiles`` defaults to the test
profiles of the repository (tests/data): memory-clinic sites with half CN and half AD for ``cn_ad``,
controls aged 40-90 for ``brain_age``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.atomic import write_json, write_table
from pipeline.bundles import run_bundle
from pipeline.data.task_tables import task_table
from pipeline.evaluate.volume_baseline import (
    attach_volumes,
    find_phantom_volumes,
    read_volume_table,
    volume_classifier,
    volume_regressor,
)
from pipeline.metrics.classification import classification_metrics
from pipeline.metrics.regression import regression_metrics
from pipeline.phantom import Effects, PhantomSpec

__all__ = ["prepare_phantom", "run_learning_benchmark", "main"]

TEST_DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
DEFAULTS = {
    "cn_ad": {
        "profiles": TEST_DATA / "ad_sites.yaml",
        "sites": ("clinica", "clinicb"),
        "epochs": 30,
        "lr": 3e-4,
        "net": {"net_kwargs#widths": [8, 16, 32, 64]},
    },
    "brain_age": {
        "profiles": TEST_DATA / "contrast_sites.yaml",
        "sites": ("dark", "bright"),
        "epochs": 30,
        "lr": 1e-3,
        "net": {"net_kwargs#channels": [8, 16, 16, 32, 32], "net_kwargs#hidden": 32},
    },
}
log = logging.getLogger("mriharmony.benchmark")


def prepare_phantom(
    out: Path,
    spec,
    *,
    fractions: tuple[float, ...] = (0.6, 0.2, 0.2),
    workers: int | None = None,
) -> Path:
    """Generate the phantom ``spec`` into ``out/bids``, split it by subject (``out/splits.tsv``, kept if present)
    and preprocess it with its true brain masks (skull stripping is not what is measured); returns
    ``out/preprocessed``. Also the tests' shared cohorts.

    The QC gate is off here: these cohorts include test sites with deliberately extreme, non-scanner contrast
    (``tests/data/contrast_sites.yaml``: grey matter at 0.75 of white matter with gamma 0.6, at 4 mm) that fail its
    T1-contrast check, and the learning they measure is not the gate's job; any image the chain fails still
    raises. The gate is calibrated and tested on the phantom's real site profiles and on a real head."""
    from pipeline.cohort import load_cohort, split_subjects, write_splits
    from pipeline.phantom import generate_phantom
    from pipeline.preprocess.batch import run_preprocess
    from pipeline.preprocess.config import preprocess_config_from_dict

    root = generate_phantom(out / "bids", spec, progress=False).root
    cohort = load_cohort(root)
    if not (out / "splits.tsv").exists():
        write_splits(split_subjects(cohort.table, fractions, seed=0), out / "splits.tsv")
    truth = root / "derivatives" / "phantom"
    cohort.table["mask"] = [
        str(
            truth
            / f"sub-{r.subject}"
            / (f"ses-{r.session}" if r.session else "")
            / "anat"
            / (f"sub-{r.subject}" + (f"_ses-{r.session}" if r.session else "") + "_desc-brain_mask.nii.gz")
        )
        for r in cohort.table.itertuples()
    ]
    config = preprocess_config_from_dict(
        {"skullstrip": {"method": "given"}, "output": {"qc_png": False}, "qc": {"enabled": False}}
    )
    result = run_preprocess(cohort, out / "preprocessed", config, workers=workers, progress=False)
    if len(result.failures):
        raise RuntimeError(f"{out}: {len(result.failures)} phantom image(s) failed preprocessing: {result.failures}")
    return out / "preprocessed"


def _score(task: str, held: pd.DataFrame, predicted: np.ndarray) -> dict[str, float]:
    if task == "brain_age":
        m = regression_metrics(held["label"], predicted)
        return {"mae": m["mae"], "r": m["r"], "n": m["n"]}
    m = classification_metrics(held["label"], predicted)
    return {"balanced_accuracy": m["balanced_accuracy"], "auc": m["auc"], "n": m["n"]}


def run_learning_benchmark(
    task: str,
    out: str | Path,
    *,
    subjects: int = 20,
    effect_ad: float = 3.0,
    effect_age: float = 1.0,
    resolution: float = 4.0,
    seeds: tuple[int, ...] = (0,),
    spatial_size: int = 32,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int = 4,
    profiles: Path | None = None,
    sites: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """One row per (method, seed, labels) with the held-out metrics; see the module docstring."""
    out = Path(out)
    setting = DEFAULTS[task]
    t = time.perf_counter()
    spec = PhantomSpec(
        sites=tuple(sites or setting["sites"]),
        subjects_per_site=subjects,
        traveling=0,
        resolution=resolution,
        seed=1,
        profiles=str(profiles or setting["profiles"]),
        effects=Effects(ad=effect_ad, age=effect_age),
    )
    data = prepare_phantom(out, spec)
    prepare_seconds = time.perf_counter() - t
    table = task_table(data, task)
    volumes = read_volume_table(find_phantom_volumes(table))
    table = attach_volumes(table, volumes)
    train, held = table[table["split"] == "train"], table[table["split"].isin(["val", "test"])]
    n_classes = 1 if task == "brain_age" else int(table["label"].max()) + 1
    if task == "brain_age":
        baseline = _score(task, held, volume_regressor(train, held))
        floor = _score(task, held, np.full(len(held), train["label"].mean()))
    else:
        baseline = _score(task, held, volume_classifier(train, held, n_classes=n_classes))
        floor = None
    rows = [{"method": "volume_baseline", "labels": "true", "seed": -1, "seconds": 0.0, **baseline}]
    if floor:
        rows.append({"method": "train_mean", "labels": "true", "seed": -1, "seconds": 0.0, **floor})
    bundle = "brain_age" if task == "brain_age" else "ad_classification"
    size = [spatial_size] * 3
    for seed in seeds:
        for labels in ("true", "permuted"):
            root = out / f"{bundle}_seed{seed}_{labels}"
            common = {"dataset_dir": str(data), "spatial_size": size, **setting["net"]}
            if task != "brain_age":
                common["task"] = task
            t = time.perf_counter()
            run_bundle(
                bundle,
                "train",
                bundle_root=str(root),
                epochs=epochs or setting["epochs"],
                lr=lr or setting["lr"],
                batch_size=batch_size,
                seed=seed,
                permute_labels=seed if labels == "permuted" else None,
                **common,
            )
            seconds = time.perf_counter() - t
            if task == "brain_age":
                run_bundle(
                    bundle,
                    "inference",
                    bundle_root=str(root),
                    split="all",
                    volumes_file=None,
                    output_file=str(root / "eval" / "predictions.tsv"),
                    **common,
                )
                pred = pd.read_csv(
                    root / "eval" / "predictions.tsv", sep="\t", dtype={"subject": str}, keep_default_na=False
                )
                pred = held[["subject", "session", "label"]].merge(pred, on=["subject", "session"])
                scores = _score(task, pred, pred["predicted_age"].to_numpy())
            else:
                run_bundle(
                    bundle,
                    "inference",
                    bundle_root=str(root),
                    split="all",
                    volumes_file=None,
                    output_dir=str(root / "eval"),
                    **common,
                )
                pred = pd.read_csv(
                    root / "eval" / "predictions.tsv", sep="\t", dtype={"subject": str}, keep_default_na=False
                )
                pred = held[["subject", "session"]].merge(pred, on=["subject", "session"])
                scores = _score(task, pred, pred[[c for c in pred.columns if c.startswith("prob_")]].to_numpy())
            rows.append({"method": "cnn", "labels": labels, "seed": seed, "seconds": seconds, **scores})
    result = pd.DataFrame(rows)
    write_table(out / "learning.tsv", result)
    write_json(
        out / "learning.json",
        {
            "task": task,
            "subjects_per_site": subjects,
            "effects": {"ad": effect_ad, "age": effect_age},
            "resolution_mm": resolution,
            "spatial_size": spatial_size,
            "batch_size": batch_size,
            "n_train": len(train),
            "n_held_out": len(held),
            "prepare_seconds": prepare_seconds,
            "rows": rows,
        },
    )
    return result


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(DEFAULTS), default="cn_ad")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--subjects", type=int, default=20, help="subjects per site")
    parser.add_argument("--effect-ad", type=float, default=3.0, help="AD effect multiplier (1 = realistic)")
    parser.add_argument("--effect-age", type=float, default=1.0, help="age effect multiplier (1 = realistic)")
    parser.add_argument("--resolution", type=float, default=4.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--spatial-size", type=int, default=32)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = run_learning_benchmark(
        args.task,
        args.out,
        subjects=args.subjects,
        effect_ad=args.effect_ad,
        effect_age=args.effect_age,
        resolution=args.resolution,
        seeds=tuple(args.seeds),
        spatial_size=args.spatial_size,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
    )
    metrics = [c for c in ("mae", "r", "balanced_accuracy", "auc") if c in result.columns]
    summary = result.groupby(["method", "labels"])[metrics + ["seconds"]].agg(["median", "min", "max"])
    print(summary.round(3).to_string())
    return result


if __name__ == "__main__":
    main()
