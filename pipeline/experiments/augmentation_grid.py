"""The augmentation experiment grid (Kwon 2024): what synthetic images buy a classifier, measured honestly.

    mriharmony augment-grid --config configs/augment_grid.yaml --out GRID

Per repeat r (``repeats`` of them):

1. a new subject-level split of the cohort (seed ``split.seed + r``), written to ``GRID/repeat-r/splits.tsv``;
2. the generators the arms need, retrained on that split's training subjects only: the CN <-> AD
   translator (cyclegan_harmonization + the synthetic_augmentation translation override) and the
   class-conditional GAN (the synthetic_augmentation bundle's train.yaml), then their synthetic images
   (translation of every training image; as many conditional images per class as the largest arm needs);
3. per arm x real fraction X x synthetic fraction Y: the mixed training table
   (:func:`~pipeline.augment.policy.build_training_table`, seed r), the ad_classification bundle trained
   on it (``--train_table``, seed r), and its predictions on the repeat's real test subjects;
4. beside them, on the same subjects: the class prior and the volume logistic baseline (phantom truth,
   or ``volumes_file``), and the synthetic-quality report of each generator and class.

Arms (``arms`` in the config): no ``extra`` and no ``augment`` is the reference arm ``none``; ``augment:
true`` adds the bundle's flips and MONAI RandAffine (classical augmentation); ``extra: real`` adds Y x N_i
copies of real images (oversampling to the same count as a synthetic arm); ``extra: translation`` or
``extra: conditional`` adds Y x N_i synthetic images of the ``classes`` named (default all: selective
augmentation when fewer); ``real: false`` trains on synthetic images only (tested on real ones).

Outputs: ``runs.tsv`` (one row per repeat x arm x X x Y), ``summary.tsv`` (per arm x X x Y: median, min
and max over repeats of balanced accuracy, AUC, macro F1 and cross-entropy; the paired difference to
``none`` at the same X with a two-level bootstrap 95% interval, see
:mod:`pipeline.evaluate.paired_difference`), ``quality.tsv`` and ``grid.json``. Re-runs resume: a
trained model with identical settings is reused. A run asking for more synthetic images than exist
(translations of class C number the training images of the other class) is skipped with the reason in
``grid.json``, never silently capped.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from pipeline import __version__
from pipeline.atomic import write_table
from pipeline.augment.policy import SYNTHETIC_COLUMNS, AugmentationPolicy, TooFewSyntheticImages, build_training_table
from pipeline.bundles import run_bundle, train_bundle_once
from pipeline.config import ConfigError, check_keys
from pipeline.data.task_tables import CLASS_NAMES, task_table
from pipeline.evaluate.paired_difference import (
    GRID_METRICS,
    bootstrap_metric_samples,
    two_level_interval,
    weighted_classification_metrics,
)
from pipeline.preprocess.batch import RUN_COLUMNS
from pipeline.run import file_sha256
from pipeline.run.records import AugmentationGridRecord

__all__ = ["GridArm", "GridRun", "GridConfig", "expand_runs", "run_augment_grid", "format_grid_table"]

log = logging.getLogger("mriharmony.augment")

GRID_KEYS = {
    "dataset_dir",
    "task",
    "repeats",
    "split",
    "real_fractions",
    "synthetic_fractions",
    "arms",
    "classifier",
    "generators",
    "bootstrap",
    "volumes_file",
    "quality_size",
    "quality_encoder",
}
ARM_KEYS = {"augment", "extra", "classes", "real"}
EXTRAS = ("real", "translation", "conditional")
CLASSIFIER_KEYS = {"model", "epochs", "lr", "batch_size", "spatial_size", "net_kwargs"}
GENERATOR_KEYS = {
    "translation": {"epochs", "epoch_length", "batch_size", "lr", "spatial_size", "net_kwargs", "disc_kwargs"},
    "conditional": {
        "epochs",
        "epoch_length",
        "batch_size",
        "g_lr",
        "d_lr",
        "spatial_size",
        "net_kwargs",
        "disc_kwargs",
    },
}
REFERENCE = "none"


@dataclass(frozen=True)
class GridArm:
    """One arm of the grid: classical augmentation and/or extra images for some classes."""

    name: str
    augment: bool = False
    extra: str | None = None
    classes: tuple[str, ...] | None = None  # None: every class
    real: bool = True


@dataclass(frozen=True)
class GridRun:
    """One arm at one real fraction X and synthetic (or oversampling) fraction Y."""

    arm: GridArm
    real_fraction: float
    synthetic_fraction: float
    reference_real_fraction: float  # the X of the ``none`` run it is paired with

    @property
    def name(self) -> str:
        return f"{self.arm.name}_X{self.real_fraction:g}_Y{self.synthetic_fraction:g}"

    def policy(self, class_names: list[str]) -> AugmentationPolicy:
        """The per-class policy: the arm's classes get X and the extra images, the others stay real at the
        reference X (selective augmentation)."""
        spec: dict[str, dict] = {}
        for name in class_names:
            if self.arm.classes is not None and name not in self.arm.classes:
                spec[name] = {"real_fraction": self.reference_real_fraction}
                continue
            entry: dict[str, Any] = {"real_fraction": self.real_fraction}
            if self.arm.extra == "real":
                entry["oversample_fraction"] = self.synthetic_fraction
            elif self.arm.extra in ("translation", "conditional"):
                entry.update(synthetic_fraction=self.synthetic_fraction, generator=self.arm.extra)
            spec[name] = entry
        return AugmentationPolicy.from_dict(spec, where=f"arm {self.arm.name}")


@dataclass
class GridConfig:
    """The checked grid configuration (see configs/augment_grid.yaml for every key)."""

    dataset_dir: Path
    task: str = "cn_ad"
    repeats: int = 3
    split: dict[str, Any] = field(default_factory=lambda: {"fractions": [0.6, 0.2, 0.2], "seed": 0})
    real_fractions: tuple[float, ...] = (1.0,)
    synthetic_fractions: tuple[float, ...] = (0.5, 1.0)
    arms: tuple[GridArm, ...] = ()
    classifier: dict[str, Any] = field(default_factory=dict)
    generators: dict[str, dict[str, Any]] = field(default_factory=dict)
    bootstrap: int = 1000
    volumes_file: str | None = "auto"
    quality_size: int = 32
    quality_encoder: str | None = None  # an ad_classification model.pt (same classifier settings); None: the none arm's

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any], where: str = "augment_grid") -> "GridConfig":
        check_keys(cfg, GRID_KEYS, where)
        if not cfg.get("dataset_dir"):
            raise ConfigError(f"{where}.dataset_dir: expected a preprocessed (or harmonized) cohort folder")
        task = cfg.get("task", "cn_ad")
        if task not in CLASS_NAMES:
            raise ConfigError(f"{where}.task: expected one of {sorted(CLASS_NAMES)}, got {task!r}")
        arms = []
        for name, spec in (cfg.get("arms") or {}).items():
            spec = spec or {}
            check_keys(spec, ARM_KEYS, f"{where}.arms.{name}")
            extra = spec.get("extra")
            if extra is not None and extra not in EXTRAS:
                raise ConfigError(
                    f"{where}.arms.{name}.extra: expected one of {list(EXTRAS)} or nothing, got {extra!r}"
                )
            classes = spec.get("classes")
            if classes is not None:
                unknown = sorted(set(classes) - set(CLASS_NAMES[task]))
                if unknown or not classes:
                    raise ConfigError(
                        f"{where}.arms.{name}.classes: {unknown or classes} not classes of task {task} "
                        f"({CLASS_NAMES[task]})"
                    )
            real = bool(spec.get("real", True))
            if not real and extra not in ("translation", "conditional"):
                raise ConfigError(
                    f"{where}.arms.{name}: real: false (synthetic-only) needs extra: translation or conditional"
                )
            arms.append(
                GridArm(
                    str(name),
                    bool(spec.get("augment", False)),
                    extra,
                    tuple(classes) if classes is not None else None,
                    real,
                )
            )
        reference = [a for a in arms if a.name == REFERENCE]
        if not reference or reference[0].augment or reference[0].extra:
            raise ConfigError(
                f"{where}.arms: needs an arm named '{REFERENCE}' without augment or extra (the "
                "reference every arm is compared with)"
            )
        fractions = {}
        for key in ("real_fractions", "synthetic_fractions"):
            values = tuple(float(v) for v in cfg.get(key, getattr(cls, key)))
            if not values or any(v <= 0 for v in values) or (key == "real_fractions" and any(v > 1 for v in values)):
                bound = " <= 1" if key == "real_fractions" else ""
                raise ConfigError(f"{where}.{key}: expected positive fractions{bound}, got {list(values)}")
            fractions[key] = values
        classifier = dict(cfg.get("classifier") or {})
        check_keys(classifier, CLASSIFIER_KEYS, f"{where}.classifier")
        generators = {k: dict(v or {}) for k, v in (cfg.get("generators") or {}).items()}
        for name, section in generators.items():
            if name not in GENERATOR_KEYS:
                raise ConfigError(f"{where}.generators: unknown generator {name!r}; allowed: {sorted(GENERATOR_KEYS)}")
            check_keys(section, GENERATOR_KEYS[name], f"{where}.generators.{name}")
        split = {"fractions": [0.6, 0.2, 0.2], "seed": 0, **dict(cfg.get("split") or {})}
        check_keys(split, {"fractions", "seed", "stratify", "traveling"}, f"{where}.split")
        if len(split["fractions"]) != 3:
            raise ConfigError(f"{where}.split.fractions: expected train, val, test fractions, got {split['fractions']}")
        encoder = cfg.get("quality_encoder") or None
        if encoder and not Path(encoder).exists():
            raise ConfigError(
                f"{where}.quality_encoder: {encoder} does not exist (expected an ad_classification "
                "models/model.pt trained with the same classifier settings)"
            )
        repeats = int(cfg.get("repeats", 3))
        if repeats < 1:
            raise ConfigError(f"{where}.repeats: expected at least 1, got {repeats}")
        return cls(
            dataset_dir=Path(cfg["dataset_dir"]),
            task=task,
            repeats=repeats,
            split=split,
            real_fractions=fractions["real_fractions"],
            synthetic_fractions=fractions["synthetic_fractions"],
            arms=tuple(arms),
            classifier=classifier,
            generators=generators,
            bootstrap=int(cfg.get("bootstrap", 1000)),
            volumes_file=cfg.get("volumes_file", "auto"),
            quality_size=int(cfg.get("quality_size", 32)),
            quality_encoder=encoder,
        )


def expand_runs(config: GridConfig) -> list[GridRun]:
    """Every (arm, X, Y) the grid trains: arms without extra images vary X only, synthetic-only arms Y only."""
    top = max(config.real_fractions)
    runs = []
    for arm in config.arms:
        if arm.extra is None:
            runs += [GridRun(arm, x, 0.0, x) for x in config.real_fractions]
        elif not arm.real:
            runs += [GridRun(arm, 0.0, y, top) for y in config.synthetic_fractions]
        else:
            runs += [GridRun(arm, x, y, x) for x in config.real_fractions for y in config.synthetic_fractions]
    return runs


def _nested(section: Mapping[str, Any], keys: tuple[str, ...] = ("net_kwargs", "disc_kwargs")) -> dict:
    """Bundle overrides from a config section; nested mappings become ``key#sub`` overrides."""
    out = {}
    for key, value in section.items():
        if key in keys:
            out.update({f"{key}#{sub}": v for sub, v in (value or {}).items()})
        else:
            out[key] = value
    return out


def _repeat_split(config: GridConfig, repeat: int, folder: Path) -> Path:
    """The repeat's subject-level split. Every training of the repeat records the split's digest in its marker,
    so an unchanged split (rewritten here on each run) reuses them and a changed one retrains."""
    from pipeline.cohort import split_subjects, write_splits
    from pipeline.preprocess.batch import read_preprocessed

    table = read_preprocessed(config.dataset_dir)
    kwargs = {key: config.split[key] for key in ("stratify", "traveling") if key in config.split}
    splits = split_subjects(table, config.split["fractions"], seed=int(config.split["seed"]) + repeat, **kwargs)
    return write_splits(splits, folder / "splits.tsv")


def _generators(
    config: GridConfig,
    runs: list[GridRun],
    folder: Path,
    splits: Path,
    train: pd.DataFrame,
    repeat: int,
    seconds: dict[str, float],
) -> pd.DataFrame:
    """Train the generators the runs need on the repeat's training subjects; return their synthetic pool."""
    from pipeline.augment.generate import generate_conditional
    from pipeline.augment.translate import translate_training_images

    needed = {r.arm.extra for r in runs} & {"translation", "conditional"}
    common = {"dataset_dir": str(config.dataset_dir), "splits_file": str(splits), "seed": repeat}
    inputs = {"splits_sha256": file_sha256(splits)}
    pools = []
    if "translation" in needed:
        t = time.perf_counter()
        names = CLASS_NAMES[config.task]
        if len(names) != 2:
            raise ConfigError(f"arms with extra: translation need a two-class task (cn_ad), not {config.task}")
        section = _nested(config.generators.get("translation", {}))
        train_bundle_once(
            "cyclegan_harmonization",
            folder / "translation",
            {**common, "resume": False, "source_site": names[0], "target_site": names[1], **section},
            overlays=[("synthetic_augmentation", "translation")],
            inputs=inputs,
        )
        pools.append(
            translate_training_images(
                config.dataset_dir,
                folder / "translation" / "models" / "model.pt",
                folder / "synthetic-translation",
                splits_file=splits,
            )
        )
        seconds["translation"] = time.perf_counter() - t
    if "conditional" in needed:
        t = time.perf_counter()
        section = _nested(config.generators.get("conditional", {}))
        train_bundle_once(
            "synthetic_augmentation",
            folder / "conditional",
            {**common, "task": config.task, **section},
            config="train",
            model_file="models/model.pt",
            inputs=inputs,
        )
        counts: dict[str, int] = {}
        subjects = train.groupby("diagnosis")["subject"].nunique()
        for run in runs:
            if run.arm.extra == "conditional":
                for name in run.arm.classes or CLASS_NAMES[config.task]:
                    counts[name] = max(counts.get(name, 0), int(round(run.synthetic_fraction * subjects.get(name, 0))))
        pools.append(
            generate_conditional(
                folder / "conditional" / "models" / "model.pt",
                folder / "synthetic-conditional",
                counts,
                reference_image=train["image"].iloc[0],
                seed=1000 * repeat,
            )
        )
        seconds["conditional"] = time.perf_counter() - t
    return pd.concat(pools, ignore_index=True) if pools else pd.DataFrame(columns=list(SYNTHETIC_COLUMNS))


def _classifier_overrides(config: GridConfig) -> dict[str, Any]:
    section = {"lr": 3e-4, "epochs": 30, "batch_size": 4, **config.classifier}
    return {"task": config.task, **_nested(section)}


def _train_and_predict(
    config: GridConfig, run: GridRun, folder: Path, splits: Path, mixed: pd.DataFrame, repeat: int
) -> tuple[pd.DataFrame, float]:
    """Train the classifier of one run on its mixed table and predict the repeat's test subjects."""
    # without the preprocessing run's own columns: a resumed re-run of the preprocessing must not retrain the grid
    write_table(folder / "mixed.tsv", mixed.drop(columns=[c for c in RUN_COLUMNS if c in mixed.columns]))
    common = {"dataset_dir": str(config.dataset_dir), "splits_file": str(splits), **_classifier_overrides(config)}
    train = {**common, "train_table": str(folder / "mixed.tsv"), "augment": run.arm.augment, "seed": repeat}
    t = time.perf_counter()
    trained = train_bundle_once(
        "ad_classification",
        folder,
        train,  # new table or split content retrains
        inputs={"mixed_sha256": file_sha256(folder / "mixed.tsv"), "splits_sha256": file_sha256(splits)},
    )
    seconds = time.perf_counter() - t
    log.info("%s: %s (%.0f s)", folder.name, "trained" if trained else "reused", seconds)
    predictions = folder / "eval" / "predictions.tsv"
    if trained or not predictions.exists():
        infer = {k: v for k, v in common.items() if k not in ("lr", "epochs", "batch_size")}
        run_bundle(
            "ad_classification",
            "inference",
            bundle_root=str(folder),
            split="test",
            volumes_file=None,
            n_resamples=0,
            output_dir=str(folder / "eval"),
            **infer,
        )
    table = pd.read_csv(predictions, sep="\t", dtype={"subject": str, "session": str}, keep_default_na=False)
    return table, seconds


def _baseline_probabilities(config: GridConfig, table: pd.DataFrame, n_classes: int) -> dict[str, np.ndarray]:
    """Class prior (train frequencies) and volume logistic regression, fitted on the train split."""
    from pipeline.evaluate.volume_baseline import (
        attach_volumes,
        find_phantom_volumes,
        read_volume_table,
        volume_classifier,
    )

    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    prior = np.bincount(train["label"].astype(int), minlength=n_classes) / len(train)
    out = {"class_prior": np.tile(prior, (len(test), 1))}
    path = find_phantom_volumes(train) if config.volumes_file == "auto" else (config.volumes_file or None)
    if path is not None:
        volumes = read_volume_table(path)
        out["volume_logistic"] = volume_classifier(
            attach_volumes(train, volumes), attach_volumes(test, volumes), n_classes=n_classes
        )
    return out


def _quality(pool: pd.DataFrame, train: pd.DataFrame, encoder_run: Path, config: GridConfig) -> pd.DataFrame:
    """Synthetic-quality report; FID / MMD on pooled features (resnet3d only) of the reference arm's classifier, or
    of a local ``quality_encoder`` weights file (nothing is downloaded)."""
    from pipeline.evaluate.synthetic_quality import LayerFeatures, quality_report

    if pool.empty:
        return pd.DataFrame()
    encoder = None
    overrides = _classifier_overrides(config)
    weights = Path(config.quality_encoder) if config.quality_encoder else encoder_run / "models" / "model.pt"
    if overrides.get("model", "resnet3d") == "resnet3d" and weights.exists():
        from pipeline.bundles import load_bundle_weights
        from pipeline.nets import build_classifier

        kwargs = {k.split("#", 1)[1]: v for k, v in overrides.items() if k.startswith("net_kwargs#")}
        net = build_classifier("resnet3d", len(CLASS_NAMES[config.task]), **kwargs)
        encoder = LayerFeatures(load_bundle_weights(net, weights, "ad_classification"), "avgpool")
    return quality_report(pool, train[["image", "diagnosis", "subject"]], encoder=encoder, size=config.quality_size)


def run_augment_grid(config: GridConfig | Mapping[str, Any], out: str | Path) -> dict[str, pd.DataFrame]:
    """Run the grid into ``out``; returns ``{"runs", "summary", "quality"}`` tables (also written)."""
    if not isinstance(config, GridConfig):
        config = GridConfig.from_dict(config)
    out = Path(os.path.abspath(out))  # workers get absolute paths; tables store them relative to themselves
    out.mkdir(parents=True, exist_ok=True)
    runs = expand_runs(config)
    names = CLASS_NAMES[config.task]
    started = time.perf_counter()
    rows, samples, points, quality, timings, skipped = [], {}, {}, [], {}, []
    for repeat in range(config.repeats):
        folder = out / f"repeat-{repeat}"
        folder.mkdir(parents=True, exist_ok=True)
        splits = _repeat_split(config, repeat, folder)
        table = task_table(config.dataset_dir, config.task, splits_file=splits)
        train, test = table[table["split"] == "train"], table[table["split"] == "test"]
        if train["diagnosis"].nunique() < len(names) or test.empty:
            raise ValueError(
                f"{config.dataset_dir}: repeat {repeat} has training classes "
                f"{sorted(train['diagnosis'].unique())} and {len(test)} test images; the grid needs every "
                f"class of {names} in training and a test subject"
            )
        seconds: dict[str, float] = {}
        pool = _generators(config, runs, folder, splits, train, repeat, seconds)
        truth = test[["subject", "session", "label"]].reset_index(drop=True)
        groups = truth["subject"].to_numpy()
        scored: dict[str, np.ndarray] = {}
        for run in runs:
            try:
                mixed = build_training_table(train, pool, run.policy(names), seed=repeat)
            except TooFewSyntheticImages as error:  # e.g. Y = 1 translations of the larger class: not enough sources
                log.warning("repeat %d, %s skipped: %s", repeat, run.name, error)
                skipped.append({"repeat": repeat, "run": run.name, "reason": str(error)})
                continue
            predictions, train_seconds = _train_and_predict(config, run, folder / run.name, splits, mixed, repeat)
            predictions = truth.merge(predictions.drop(columns=["label"]), on=["subject", "session"], how="left")
            if predictions[f"prob_{names[0]}"].isna().any():
                raise RuntimeError(f"{folder / run.name}: predictions miss test subjects")
            scored[run.name] = predictions[[f"prob_{n}" for n in names]].to_numpy(float)
            seconds[run.name] = train_seconds
            rows.append(
                {
                    "repeat": repeat,
                    "arm": run.arm.name,
                    "extra": run.arm.extra or "",
                    "augment": run.arm.augment,
                    "classes": ",".join(run.arm.classes or names),
                    "real_fraction": run.real_fraction,
                    "synthetic_fraction": run.synthetic_fraction,
                    "n_real": int((~mixed["synthetic"]).sum()),
                    "n_real_subjects": int(mixed.loc[~mixed["synthetic"], "subject"].nunique()),
                    "n_synthetic": int(mixed["synthetic"].sum()),
                    "n_test_subjects": int(truth["subject"].nunique()),
                    "train_seconds": train_seconds,
                    **weighted_classification_metrics(truth["label"], scored[run.name]),
                }
            )
        for name, probabilities in _baseline_probabilities(config, table, len(names)).items():
            scored[name] = probabilities
            rows.append(
                {
                    "repeat": repeat,
                    "arm": name,
                    "extra": "",
                    "augment": False,
                    "classes": "",
                    "real_fraction": 1.0,
                    "synthetic_fraction": 0.0,
                    "n_real": len(train),
                    "n_real_subjects": int(train["subject"].nunique()),
                    "n_synthetic": 0,
                    "n_test_subjects": int(truth["subject"].nunique()),
                    "train_seconds": 0.0,
                    **weighted_classification_metrics(truth["label"], probabilities),
                }
            )
        for name, probabilities in scored.items():
            points[(repeat, name)] = weighted_classification_metrics(truth["label"], probabilities)
            samples[(repeat, name)] = bootstrap_metric_samples(
                truth["label"], probabilities, groups, n_resamples=config.bootstrap, seed=repeat
            )
        reference = next(r for r in runs if r.arm.name == REFERENCE and r.real_fraction == max(config.real_fractions))
        report = _quality(pool, train, folder / reference.name, config)
        if not report.empty:
            quality.append(report.assign(repeat=repeat))
        timings[f"repeat-{repeat}"] = seconds
    runs_table = pd.DataFrame(rows)
    summary = _summarize(runs_table, runs, points, samples, config)
    quality_table = pd.concat(quality, ignore_index=True) if quality else pd.DataFrame()
    write_table(out / "runs.tsv", runs_table)
    write_table(out / "summary.tsv", summary)
    write_table(out / "quality.tsv", quality_table)
    AugmentationGridRecord.from_json(
        {
            "version": __version__,
            "task": config.task,
            "dataset_dir": str(config.dataset_dir),
            "repeats": config.repeats,
            "split": config.split,
            "real_fractions": list(config.real_fractions),
            "synthetic_fractions": list(config.synthetic_fractions),
            "classifier": config.classifier,
            "generators": config.generators,
            "bootstrap": config.bootstrap,
            # a fixed property of every arm: the loss balance comes from the real training rows (see class_weights)
            "class_weights": "inverse class frequency of the real training rows (the ad_classification bundle's "
            "class_weight_rows: real), the same for every arm",
            "arms": [
                {
                    "name": a.name,
                    "augment": a.augment,
                    "extra": a.extra,
                    "classes": list(a.classes or []),
                    "real": a.real,
                }
                for a in config.arms
            ],
            "summary": summary.to_dict(orient="records"),
            "skipped": skipped,
            "quality": quality_table.to_dict(orient="records"),
            "seconds": {"total": time.perf_counter() - started, **timings},
        },
        source=str(out / "grid.json"),
    ).write(out / "grid.json")
    return {"runs": runs_table, "summary": summary, "quality": quality_table, "skipped": skipped}


def _summarize(
    runs_table: pd.DataFrame,
    runs: list[GridRun],
    points: dict,
    samples: dict,
    config: GridConfig,
) -> pd.DataFrame:
    """Median / min / max over repeats per arm x X x Y, and the paired difference to ``none``."""
    keys = ["arm", "real_fraction", "synthetic_fraction"]
    reference_of = {
        (r.arm.name, r.real_fraction, r.synthetic_fraction): GridRun(
            GridArm(REFERENCE), r.reference_real_fraction, 0.0, r.reference_real_fraction
        ).name
        for r in runs
    }
    name_of = {(r.arm.name, r.real_fraction, r.synthetic_fraction): r.name for r in runs}
    top = max(config.real_fractions)
    rows = []
    for key, part in runs_table.groupby(keys, sort=False):
        row = dict(zip(keys, key))
        row["repeats"] = len(part)
        row["n_train"] = float(part["n_real"].median() + part["n_synthetic"].median())
        for metric in GRID_METRICS:
            row[f"{metric}_median"] = float(part[metric].median())
            row[f"{metric}_min"] = float(part[metric].min())
            row[f"{metric}_max"] = float(part[metric].max())
        run_name = name_of.get(key, key[0])
        reference = reference_of.get(key, GridRun(GridArm(REFERENCE), top, 0.0, top).name)
        for metric in GRID_METRICS:
            if run_name == reference:
                row.update({f"{metric}_diff": 0.0, f"{metric}_diff_low": 0.0, f"{metric}_diff_high": 0.0})
                continue
            point = [points[(r, run_name)][metric] - points[(r, reference)][metric] for r in sorted(part["repeat"])]
            inner = [samples[(r, run_name)][metric] - samples[(r, reference)][metric] for r in sorted(part["repeat"])]
            low, high = two_level_interval(inner, n_resamples=config.bootstrap, seed=0)
            row.update(
                {f"{metric}_diff": float(np.mean(point)), f"{metric}_diff_low": low, f"{metric}_diff_high": high}
            )
        row["compared_with"] = reference
        rows.append(row)
    return pd.DataFrame(rows)


def format_grid_table(
    summary: pd.DataFrame, metrics: tuple[str, ...] = ("balanced_accuracy", "auc", "cross_entropy")
) -> str:
    """A plain-text table: per arm x X x Y the median (min-max) and the paired difference [95% interval]."""
    lines = []
    header = f"{'arm':<22}{'X':>5}{'Y':>5}{'n':>6}  " + "  ".join(f"{m:<40}" for m in metrics)
    lines.append(header)
    for _, row in summary.iterrows():
        cells = []
        for m in metrics:
            text = f"{row[f'{m}_median']:.3f} ({row[f'{m}_min']:.2f}-{row[f'{m}_max']:.2f})"
            if row.get("compared_with") and row["arm"] != REFERENCE:
                text += f" {row[f'{m}_diff']:+.3f} [{row[f'{m}_diff_low']:+.2f},{row[f'{m}_diff_high']:+.2f}]"
            cells.append(f"{text:<40}")
        lines.append(
            f"{row['arm']:<22}{row['real_fraction']:>5g}{row['synthetic_fraction']:>5g}{row['n_train']:>6.0f}  "
            + "  ".join(cells)
        )
    return "\n".join(lines)
