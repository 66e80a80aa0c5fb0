"""The main job, ``mriharmony demo``: the whole chain on the embedded phantom cohort.

Stages: generate the phantom -> load and validate it as a cohort -> subject-level splits -> preprocess
(N4, skull strip, rigid to MNI, 2 mm, 64^3) -> the site effects that survive it (every image, per site pair)
-> train a CycleGAN between two sites (the
cyclegan_harmonization bundle, narrow at demo scale) -> harmonize the target site to the source (reference)
site and back -> traveling-subject fidelity -> further CycleGANs on the same split
(``benchmark.harmonizer_seeds``) -> the harmonization evaluation (site probes, t-SNE, traveling subjects,
biological signal; every harmonizer seed beside the identity, histogram, z-score and ComBat baselines) -> the
brain-age benchmark (pooled, held-out: only controls no CycleGAN saw, cross-site) -> the brain_age and
ad_classification bundles (narrow) scored beside their baselines -> the augmentation grid at demo scale (one
repeat on the demo split: generators, synthetic images, the classifier per arm) -> the report
(``report/report.html`` and ``report/report.json``). Each stage writes files into the run folder and a re-run reuses what is complete.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import __version__
from pipeline.atomic import read_json_numbers, write_json, write_table, write_yaml
from pipeline.bundles import run_bundle, train_bundle_once
from pipeline.cohort import Cohort, format_summary, load_cohort, split_subjects, summarize, write_cohort, write_splits
from pipeline.config import CONFIG_DIR, ConfigError, check_keys, load_config
from pipeline.evaluate import traveling_fidelity
from pipeline.harmonize import harmonize_cohort
from pipeline.phantom import Effects, PhantomSpec, generate_phantom
from pipeline.phantom.scanner import load_site_profiles
from pipeline.preprocess.batch import run_preprocess
from pipeline.preprocess.config import DEFAULT_PREPROCESS_CONFIG, PreprocessConfig, preprocess_config_from_dict

__all__ = ["DemoResult", "run_demo", "check_demo_config", "phantom_spec_from_config", "SCALES"]

SCALES = {
    "demo": CONFIG_DIR / "demo.yaml",
    "study": CONFIG_DIR / "demo_study.yaml",
    "full": CONFIG_DIR / "demo_full.yaml",
}
log = logging.getLogger("mriharmony.demo")


@dataclass
class DemoResult:
    out: Path
    cohort: Cohort
    summary_text: str
    files: dict[str, Path]
    seconds: dict[str, float]


def phantom_spec_from_config(section: dict[str, Any], where: str = "phantom") -> PhantomSpec:
    """Build and check a :class:`PhantomSpec` from a config section (fails before any work)."""
    allowed = {"sites", "subjects_per_site", "traveling", "resolution", "seed", "effects", "profiles"}
    check_keys(section, allowed, where)
    effects = section.get("effects") or {}
    check_keys(effects, {"age", "ad", "site", "sex", "individual"}, f"{where}.effects")
    _, profiles = load_site_profiles(section.get("profiles"))
    sites = tuple(section.get("sites", PhantomSpec.sites))
    unknown = [s for s in sites if s not in profiles]
    if unknown:
        raise ConfigError(f"{where}.sites: unknown site(s) {unknown}; allowed: {sorted(profiles)}")
    resolution = float(section.get("resolution", PhantomSpec.resolution))
    if not 0.5 <= resolution <= 8.0:
        raise ConfigError(f"{where}.resolution: expected a voxel size between 0.5 and 8 mm, got {resolution}")
    return PhantomSpec(
        sites=sites,
        subjects_per_site=int(section.get("subjects_per_site", PhantomSpec.subjects_per_site)),
        traveling=int(section.get("traveling", PhantomSpec.traveling)),
        resolution=resolution,
        seed=int(section.get("seed", PhantomSpec.seed)),
        effects=Effects(**{k: float(v) for k, v in effects.items()}),
        profiles=section.get("profiles"),
    )


def preprocess_config_from_demo(section: dict[str, Any]) -> PreprocessConfig:
    """configs/preprocess.yaml with the demo's ``preprocess`` section laid over it (checked)."""
    base = load_config(DEFAULT_PREPROCESS_CONFIG)
    merged = {k: {**(base.get(k) or {}), **(v or {})} if isinstance(v, dict) else v for k, v in section.items()}
    return preprocess_config_from_dict({**base, **merged})


DOWNSTREAM_KEYS = {"brain_age", "ad_classification"}
DOWNSTREAM_BUNDLE_KEYS = {"epochs", "batch_size", "lr", "spatial_size", "net_kwargs", "model", "task", "seed", "seeds"}


def _too_small(out: Path, task: str) -> str:
    """Why ``task`` cannot be trained and tested on the demo cohort ("" when it can)."""
    from pipeline.data.task_tables import task_table

    table = task_table(out / "preprocessed", task, splits_file=out / "splits.tsv")
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    if task == "brain_age" and (len(train) < 3 or len(test) < 1):
        return f"{len(train)} training and {len(test)} test controls; need at least 3 and 1"
    if task != "brain_age" and (train["label"].nunique() < 2 or len(test) < 1):
        return f"training classes {sorted(train['diagnosis'].unique())} and {len(test)} test subjects; need two classes and a test subject"
    return ""


def _downstream_stage(out: Path, cfg: dict[str, Any], seconds: dict[str, float]) -> str:
    """Train the brain_age and ad_classification bundles on the preprocessed cohort's train split (narrow,
    demo scale), predict the test split and return their metrics beside the baselines as text."""
    from pipeline.downstream.brain_age import format_brain_age_table
    from pipeline.downstream.classification import format_metrics_table

    text = ""
    for name in ("brain_age", "ad_classification"):
        if name not in cfg:
            continue
        section = dict(cfg.get(name) or {})
        check_keys(section, DOWNSTREAM_BUNDLE_KEYS, f"downstream.{name}")
        run_dir = out / name
        reason = _too_small(out, "brain_age" if name == "brain_age" else section.get("task", "cn_ad"))
        if reason:
            log.warning("%s skipped: %s", name, reason)
            text += f"\n{name}: skipped ({reason})"
            continue
        common: dict[str, Any] = {"dataset_dir": str(out / "preprocessed"), "splits_file": str(out / "splits.tsv")}
        for key in ("spatial_size", "model", "task"):
            if key in section:
                common[key] = section[key]
        for key, value in (section.get("net_kwargs") or {}).items():
            common[f"net_kwargs#{key}"] = value
        train = {**common, **{k: section[k] for k in ("epochs", "batch_size", "lr", "seed") if k in section}}
        t = time.perf_counter()
        trained = train_bundle_once(name, run_dir, train)
        seconds[f"{name}_train"] = time.perf_counter() - t
        t = time.perf_counter()
        infer = {**common, "bundle_root": str(run_dir), "split": "test"}
        if name == "brain_age":
            run_bundle(name, "inference", **infer, output_file=str(run_dir / "eval" / "predictions.tsv"))
            report = read_json_numbers(run_dir / "eval" / "predictions.json")
            table = format_brain_age_table(report)
            title = "brain age (controls, test split)"
        else:
            run_bundle(name, "inference", **infer, output_dir=str(run_dir / "eval"), gradcam=True)
            report = read_json_numbers(run_dir / "eval" / "metrics.json")
            table = format_metrics_table(report)
            title = f"{report['task']} classification ({report['model']}, test split)"
        seconds[f"{name}_inference"] = time.perf_counter() - t
        state = f"trained in {seconds[f'{name}_train']:.0f} s" if trained else "reused"
        text += f"\n{title}, {state}; baselines fitted on the train split:\n{table}"
        if int(section.get("seeds", 1)) > 1:
            t = time.perf_counter()
            text += _downstream_seeds(name, run_dir, train, infer, report, int(section.get("seeds", 1)))
            seconds[f"{name}_seeds"] = time.perf_counter() - t
    return text


SEED_METRICS = {"brain_age": ("mae", "r"), "ad_classification": ("balanced_accuracy", "auc")}


def _downstream_seeds(
    name: str, run_dir: Path, train: dict[str, Any], infer: dict[str, Any], first: dict[str, Any], seeds: int
) -> str:
    """Train bundle ``name`` again with seeds 1 .. seeds-1 on the same split (``run_dir/seeds/seed<k>``, reused
    when unchanged), score each on the test split, and write ``run_dir/seeds.json``: the CNN's test metrics per
    seed with their mean, SD and range (the baselines do not depend on the seed). ``first`` is seed 0's report."""
    base = int(train.get("seed", 0))
    reports = {base: first}
    for k in range(1, seeds):
        folder = run_dir / "seeds" / f"seed{base + k}"
        train_bundle_once(name, folder, {**train, "seed": base + k})
        if name == "brain_age":
            run_bundle(
                name,
                "inference",
                **{**infer, "bundle_root": str(folder)},
                output_file=str(folder / "eval" / "predictions.tsv"),
            )
            reports[base + k] = read_json_numbers(folder / "eval" / "predictions.json")
        else:
            run_bundle(name, "inference", **{**infer, "bundle_root": str(folder)}, output_dir=str(folder / "eval"))
            reports[base + k] = read_json_numbers(folder / "eval" / "metrics.json")
    rows = []
    for metric in SEED_METRICS[name]:
        values = [
            float((r["cnn"]["metrics"] if name == "brain_age" else r["metrics"])[metric]) for r in reports.values()
        ]
        rows.append(
            {
                "model": "cnn",
                "metric": metric,
                "mean": float(np.mean(values)),
                "sd": float(np.std(values, ddof=1)),
                "min": min(values),
                "max": max(values),
                "per_seed": values,
            }
        )
    write_json(
        run_dir / "seeds.json",
        {
            "bundle": name,
            "seeds": list(reports),
            "split": "test",
            "summary": rows,
            "note": "the same split and test subjects; only the training seed differs",
        },
    )
    return "".join(
        f"\n  over {len(reports)} seeds: cnn {r['metric']} {r['mean']:.3f} (SD {r['sd']:.3f}; "
        f"{', '.join(f'{v:.3f}' for v in r['per_seed'])})"
        for r in rows
    )


def _augmentation_config(section: dict[str, Any] | None, splits_cfg: dict[str, Any], out: Path):
    """The demo's ``augmentation`` section as a checked grid config on the demo's preprocessed cohort
    (its split settings by default, so repeat 0 is the demo's own split); None when absent."""
    from pipeline.experiments.augmentation_grid import GridConfig

    if not section:
        return None
    split = {
        "fractions": splits_cfg.get("fractions", (0.7, 0.15, 0.15)),
        "seed": int(splits_cfg.get("seed", 0)),
        "stratify": splits_cfg.get("stratify", ("site", "diagnosis", "age")),
        "traveling": splits_cfg.get("traveling", "split"),
    }
    return GridConfig.from_dict({"split": split, **section, "dataset_dir": str(out / "preprocessed")}, "augmentation")


def _augmentation_stage(out: Path, config, seconds: dict[str, float]) -> str:
    """The augmentation grid at demo scale (generators, synthetic images, classifier per arm) as text."""
    from pipeline.experiments.augmentation_grid import format_grid_table, run_augment_grid

    reason = _too_small(out, config.task)
    if reason:
        log.warning("augmentation grid skipped: %s", reason)
        return f"\naugmentation grid: skipped ({reason})"
    t = time.perf_counter()
    result = run_augment_grid(config, out / "augment_grid")
    seconds["augmentation_grid"] = time.perf_counter() - t
    summary = result["summary"]
    text = (
        f"\naugmentation grid ({config.repeats} repeat(s), {int(summary['repeats'].max())} run(s) per arm, "
        f"{seconds['augmentation_grid']:.0f} s; test subjects only; median (min-max), paired difference to none "
        f"[95% interval]):\n{format_grid_table(summary)}"
    )
    for item in result["skipped"]:
        text += f"\nskipped: {item['run']}: {item['reason']}"
    quality = result["quality"]
    if not quality.empty:
        text += "\nsynthetic images (nearest-real SSIM, memorized fraction): " + "; ".join(
            f"{r.generator} {r.diagnosis} {r.nearest_ssim_mean:.2f}, {r.memorized_fraction:.2f}"
            for r in quality.itertuples()
        )
    return text


HARMONIZATION_KEYS = {"source_site", "target_site", "epochs", "batch_size", "spatial_size", "net_kwargs", "disc_kwargs"}


def _cyclegan_overrides(out: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """The cyclegan_harmonization bundle settings of the demo's harmonization section."""
    source, target = cfg["source_site"], cfg["target_site"]
    run_dir = (
        out / "cyclegan" / f"{source}-{target}"
    )  # one folder per site pair: changing the pair never resumes another
    overrides: dict[str, Any] = {
        "bundle_root": str(run_dir),
        "dataset_dir": str(out / "preprocessed"),
        "splits_file": str(out / "splits.tsv"),
        "source_site": source,
        "target_site": target,
    }
    for key in ("epochs", "batch_size", "spatial_size"):
        if key in cfg:
            overrides[key] = cfg[key]
    for section in ("net_kwargs", "disc_kwargs"):
        for key, value in (cfg.get(section) or {}).items():
            overrides[f"{section}#{key}"] = value
    return overrides


def _harmonization_stage(
    out: Path, cfg: dict[str, Any], splits, seconds: dict[str, float], workers: int | None, progress: bool
) -> str:
    """Train the CycleGAN bundle between the source (reference) and target sites on the train split,
    harmonize the target site to the source ("to source", as in 004) and the source to the target, and
    measure traveling-subject fidelity (test-split subjects are the held-out ones); returns the text."""
    source, target = cfg["source_site"], cfg["target_site"]  # checked by check_demo_config
    overrides = _cyclegan_overrides(out, cfg)
    run_dir = Path(overrides["bundle_root"])
    t = time.perf_counter()
    # train_bundle_once, not a bare run: a re-run of a finished bundle would rewrite models/model.pt
    # (its final-epoch CheckpointSaver fires on COMPLETED even when the resumed trainer has nothing left to do)
    train_bundle_once("cyclegan_harmonization", run_dir, {k: v for k, v in overrides.items() if k != "bundle_root"})
    seconds["cyclegan_train"] = time.perf_counter() - t

    from pipeline.preprocess.batch import read_preprocessed

    t = time.perf_counter()
    table = harmonize_cohort(
        read_preprocessed(out / "preprocessed"),
        run_dir / "models" / "model.pt",
        out / "harmonized",
        direction="to_source",
        workers=0,
        progress=progress,
    )
    seconds["harmonize"] = time.perf_counter() - t
    done = table[table["harmonized"].astype(bool)]
    log.info(
        "harmonize: %d images (%d resumed), %d failed (%.1f s)",
        len(done),
        int(done["resumed"].sum()),
        int((table["status"] == "failed").sum()),
        seconds["harmonize"],
    )
    t = time.perf_counter()  # the other direction, for the benchmark's "to target" condition (004 Table 2)
    harmonize_cohort(
        read_preprocessed(out / "preprocessed"),
        run_dir / "models" / "model.pt",
        out / "harmonized_to_target",
        direction="to_target",
        workers=0,
        progress=progress,
    )
    seconds["harmonize_to_target"] = time.perf_counter() - t
    fidelity = traveling_fidelity(table, output_site=source)
    fidelity = fidelity.merge(splits[["subject", "split"]], on="subject", how="left")
    write_table(out / "harmonized" / "traveling_fidelity.tsv", fidelity)
    text = (
        f"\nCycleGAN {source} <-> {target}: trained in {seconds['cyclegan_train']:.0f} s; {target} harmonized to "
        f"{source}; traveling-subject fidelity inside the brain (harmonized vs identity, against the real {source} image):"
    )
    for label, part in (
        ("held out (test split)", fidelity[fidelity["split"] == "test"]),
        ("all traveling (train/val ones chose the checkpoint)", fidelity),
    ):
        if len(part):
            text += (
                f"\n  {label}, n={len(part)}: MAE {part['harmonized_mae'].mean():.4f} vs {part['identity_mae'].mean():.4f}, "
                f"SSIM {part['harmonized_ssim'].mean():.3f} vs {part['identity_ssim'].mean():.3f}, "
                f"PSNR {part['harmonized_psnr'].mean():.1f} vs {part['identity_psnr'].mean():.1f} dB"
            )
    return text


EVALUATION_KEYS = {"split", "baselines", "probes", "resamples", "seed"}
BENCHMARK_KEYS = {"seeds", "protocols", "harmonizer_seeds", "bundle", "cross_validated_folds"}


def _stage_done(marker: Path, settings: dict[str, Any]) -> bool:
    """True when ``marker`` records a finished stage with exactly these settings (inputs' hashes included)."""
    return marker.exists() and json.loads(marker.read_text()) == json.loads(json.dumps(settings))


def _evaluation_stage(out: Path, cfg: dict[str, Any], harmonizers: list, seconds: dict[str, float]) -> str:
    """`mriharmony evaluate harmonization` on the demo's split: every harmonizer seed's CycleGAN beside the baselines."""
    from pipeline.experiments.harmonization_evaluation import BASELINE_NAMES, evaluate_harmonization, format_evaluation
    from pipeline.run import file_sha256

    settings = {
        "split": cfg.get("split", "test"),
        "baselines": list(cfg.get("baselines", BASELINE_NAMES)),
        "probes": list(cfg.get("probes", ["linear", "cnn"])),
        "n_resamples": int(cfg.get("resamples", 1000)),
        "seed": int(cfg.get("seed", 0)),
    }
    marker = out / "evaluation" / "settings.json"
    # inputs: the generator and the split decide the harmonized images (harmonized.tsv itself is rewritten,
    # with its "resumed" column, on every run)
    settings_with_inputs = {
        **settings,
        "cyclegan": [file_sha256(h.checkpoint) for h in harmonizers],
        "splits": file_sha256(out / "splits.tsv"),
    }
    t = time.perf_counter()
    if _stage_done(marker, settings_with_inputs):
        report, state = read_json_numbers(out / "evaluation" / "evaluation.json"), "reused"
    else:
        try:
            folders = [h.to_source for h in harmonizers]
            report = evaluate_harmonization(
                out / "preprocessed",
                folders if len(folders) > 1 else folders[0],
                out / "evaluation",
                splits_file=out / "splits.tsv",
                **settings,
            )
        except ValueError as error:  # e.g. too few subjects per site in the split: say so, keep the run going
            log.warning("harmonization evaluation skipped: %s", error)
            return f"\nharmonization evaluation: skipped ({error})"
        write_json(marker, settings_with_inputs)
        state = "evaluated"
    seconds["evaluation"] = time.perf_counter() - t
    return f"\n{format_evaluation(report)}\n({state} in {seconds['evaluation']:.0f} s)"


def _site_effects_stage(out: Path, cfg: dict[str, Any], seconds: dict[str, float]) -> str:
    """`mriharmony evaluate site-effects` on every preprocessed image: what survives preprocessing, per site pair."""
    from pipeline.evaluate.site_effects import format_site_effects, measure_site_effects
    from pipeline.preprocess.batch import read_preprocessed
    from pipeline.run import file_sha256

    settings = {"n_resamples": int(cfg.get("resamples", 1000)), "seed": int(cfg.get("seed", 0))}
    images = sorted(file_sha256(p) for p in read_preprocessed(out / "preprocessed")["image_cube"])
    marker = out / "site_effects" / "settings.json"
    t = time.perf_counter()
    if _stage_done(marker, {**settings, "images": images}):
        report, state = read_json_numbers(out / "site_effects" / "site_effects.json"), "reused"
    else:
        try:
            report = measure_site_effects(out / "preprocessed", out / "site_effects", **settings)
        except ValueError as error:
            log.warning("site effects skipped: %s", error)
            return f"\nsite effects: skipped ({error})"
        write_json(marker, {**settings, "images": images})
        state = "measured"
    seconds["site_effects"] = time.perf_counter() - t
    return f"\n{format_site_effects(report)}\n({state} in {seconds['site_effects']:.0f} s)"


def _harmonizers_stage(
    out: Path, cfg: dict[str, Any], harmonization: dict[str, Any], seconds: dict[str, float]
) -> list:
    """The harmonizer seeds: seed 0 is the harmonization stage's CycleGAN; seeds 1, ... (``benchmark.harmonizer_seeds``)
    are trained on the same split into ``benchmark/harmonizers`` and harmonize both ways."""
    from pipeline.experiments.harmonizer_seeds import prepare_harmonizers

    t = time.perf_counter()
    harmonizers = prepare_harmonizers(
        out / "preprocessed",
        out / "benchmark" / "harmonizers",
        source_site=harmonization["source_site"],
        target_site=harmonization["target_site"],
        harmonized=out / "harmonized",
        harmonized_to_target=out / "harmonized_to_target",
        harmonizer_seeds=int(cfg.get("harmonizer_seeds", 1)),
        splits_file=out / "splits.tsv",
        bundle_overrides={k: v for k, v in _cyclegan_overrides(out, harmonization).items() if k != "bundle_root"},
    )
    seconds["harmonizer_seeds"] = time.perf_counter() - t
    return harmonizers


def _benchmark_stage(
    out: Path, cfg: dict[str, Any], harmonization: dict[str, Any], harmonizers: list, seconds: dict[str, float]
) -> str:
    """The brain-age benchmark (`mriharmony benchmark brain-age`) for each configured protocol: pooled
    (Komandur et al. Table 2), held_out (Table 3: only controls no CycleGAN saw), cross_site (train on one
    site, test on the other). Harmonizer seed 0 is the demo's CycleGAN; further seeds are trained on the
    same split."""
    from pipeline.experiments.brain_age_benchmark import format_benchmark_table, run_brain_age_benchmark

    bundle = dict(cfg.get("bundle") or {})  # keys checked by check_demo_config
    overrides = {k: v for k, v in bundle.items() if k != "net_kwargs"}
    overrides.update({f"net_kwargs#{k}": v for k, v in (bundle.get("net_kwargs") or {}).items()})
    source, target = harmonization["source_site"], harmonization["target_site"]
    text = ""
    for protocol in cfg.get("protocols", list(BENCHMARK_PROTOCOLS)):
        t = time.perf_counter()
        try:
            summary = run_brain_age_benchmark(
                out / "preprocessed",
                out / "benchmark" / protocol,
                harmonizers,
                source_site=source,
                target_site=target,
                protocol=protocol,
                seeds=int(cfg.get("seeds", 2)),
                bundle_overrides=overrides,
            )
        except ValueError as error:  # too few controls at this scale: say so, keep the run going
            log.warning("brain-age benchmark %s skipped: %s", protocol, error)
            text += f"\nbrain-age benchmark ({protocol}): skipped ({error})"
            continue
        seconds[f"benchmark_{protocol}"] = time.perf_counter() - t
        text += (
            f"\nbrain-age benchmark, {BENCHMARK_PROTOCOLS[protocol]} ({source} + {target}; "
            f"{int(cfg.get('seeds', 2))} seed(s) x {len(harmonizers)} harmonizer seed(s), "
            f"{seconds[f'benchmark_{protocol}']:.0f} s):\n{format_benchmark_table(summary)}"
        )
    folds = int(cfg.get("cross_validated_folds", 0))
    if folds:
        text += _cross_validated_stage(out, folds, overrides, seconds)
    return text


def _cross_validated_stage(out: Path, folds: int, overrides: dict[str, Any], seconds: dict[str, float]) -> str:
    """`mriharmony benchmark brain-age-cv`: every control of every site predicted once by k-fold cross-validation,
    so that the brain-age models meet the mean predictor on more test subjects than the split holds."""
    from pipeline.experiments.brain_age_benchmark import format_benchmark_table
    from pipeline.experiments.brain_age_cv import run_brain_age_cv

    t = time.perf_counter()
    try:
        summary = run_brain_age_cv(
            out / "preprocessed", out / "benchmark" / "cross_validated", folds=folds, bundle_overrides=overrides
        )
    except ValueError as error:
        log.warning("cross-validated brain age skipped: %s", error)
        return f"\ncross-validated brain age: skipped ({error})"
    seconds["benchmark_cross_validated"] = time.perf_counter() - t
    return (
        f"\nbrain age, {folds}-fold cross-validated over every control of every site "
        f"({seconds['benchmark_cross_validated']:.0f} s):\n{format_benchmark_table(summary)}"
    )


BENCHMARK_PROTOCOLS = {
    "pooled": "pooled controls, 70:30 by subject (Komandur et al. Table 2)",
    "held_out": "controls no CycleGAN saw, 70:30 by subject (Komandur et al. Table 3)",
    "cross_site": "trained on one site, tested on the other",
}


SECTIONS = {"phantom", "splits", "preprocess", "harmonization", "evaluation", "benchmark", "downstream", "augmentation"}


def check_demo_config(config: dict[str, Any], out: str | Path = "mriharmony-demo") -> dict[str, Any]:
    """Check every section of a demo config before any work; returns the parsed parts."""
    check_keys(config, SECTIONS, "demo config")
    harmonization = dict(config.get("harmonization") or {})
    check_keys(harmonization, HARMONIZATION_KEYS, "harmonization")
    evaluation = dict(config.get("evaluation") or {})
    check_keys(evaluation, EVALUATION_KEYS, "evaluation")
    benchmark = dict(config.get("benchmark") or {})
    check_keys(benchmark, BENCHMARK_KEYS, "benchmark")
    check_keys(
        dict(benchmark.get("bundle") or {}),
        DOWNSTREAM_BUNDLE_KEYS - {"model", "task", "seed", "seeds"},
        "benchmark.bundle",
    )
    wrong = [p for p in benchmark.get("protocols", list(BENCHMARK_PROTOCOLS)) if p not in BENCHMARK_PROTOCOLS]
    if wrong:
        raise ConfigError(f"benchmark.protocols: expected some of {list(BENCHMARK_PROTOCOLS)}, got {wrong}")
    if int(benchmark.get("harmonizer_seeds", 1)) < 1:
        raise ConfigError(f"benchmark.harmonizer_seeds: expected at least 1, got {benchmark['harmonizer_seeds']}")
    spec = phantom_spec_from_config(config.get("phantom") or {})
    for key in ("source_site", "target_site") if harmonization else ():
        if harmonization.get(key) not in spec.sites:
            raise ConfigError(
                f"harmonization.{key}: {harmonization.get(key)!r} is not a phantom site (sites: {list(spec.sites)})"
            )
    if (evaluation or benchmark) and not harmonization:
        raise ConfigError("evaluation / benchmark: need the harmonization section (they evaluate its CycleGAN)")
    downstream = dict(config.get("downstream") or {})
    check_keys(downstream, DOWNSTREAM_KEYS, "downstream")
    for name, section in downstream.items():
        check_keys(dict(section or {}), DOWNSTREAM_BUNDLE_KEYS, f"downstream.{name}")
    splits_cfg = config.get("splits") or {}
    check_keys(splits_cfg, {"fractions", "stratify", "seed", "traveling"}, "splits")
    return {
        "harmonization": harmonization,
        "evaluation": evaluation,
        "benchmark": benchmark,
        "downstream": downstream,
        "splits": splits_cfg,
        "augmentation": _augmentation_config(config.get("augmentation"), splits_cfg, Path(out)),
        "phantom": spec,
        "preprocess": preprocess_config_from_demo(config.get("preprocess") or {}),
    }


def run_demo(
    out: str | Path, config: dict[str, Any], *, workers: int | None = None, progress: bool = True
) -> DemoResult:
    """Run the demo chain into ``out`` (see the module docstring)."""
    parts = check_demo_config(config, out)
    harmonization, evaluation, benchmark = parts["harmonization"], parts["evaluation"], parts["benchmark"]
    downstream, splits_cfg, augmentation, spec = (
        parts["downstream"],
        parts["splits"],
        parts["augmentation"],
        parts["phantom"],
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(out / "config.yaml", config)  # the exact configuration of this run, for the report
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    phantom = generate_phantom(out / "phantom", spec, workers=workers, progress=progress)
    seconds["phantom"] = time.perf_counter() - t
    log.info(
        "phantom: %d images in %s (%s, %.1f s)",
        len(phantom.truth),
        phantom.root,
        "reused" if phantom.reused else "generated",
        seconds["phantom"],
    )

    t = time.perf_counter()
    cohort = load_cohort(phantom.root)
    seconds["cohort"] = time.perf_counter() - t
    splits = split_subjects(
        cohort.table,
        splits_cfg.get("fractions", (0.7, 0.15, 0.15)),
        seed=int(splits_cfg.get("seed", 0)),
        stratify=splits_cfg.get("stratify", ("site", "diagnosis", "age")),
        traveling=splits_cfg.get("traveling", "split"),
    )
    t = time.perf_counter()
    preprocessed = run_preprocess(cohort, out / "preprocessed", parts["preprocess"], workers=workers, progress=progress)
    seconds["preprocess"] = time.perf_counter() - t
    log.info(
        "preprocess: %d ok, %d failed (%.1f s)", len(preprocessed.ok), len(preprocessed.failures), seconds["preprocess"]
    )
    files_splits = write_splits(splits, out / "splits.tsv")

    text = ""
    if harmonization:
        text += _harmonization_stage(out, harmonization, splits, seconds, workers, progress)
        harmonizers = _harmonizers_stage(out, benchmark, harmonization, seconds)
    if evaluation:
        text += _site_effects_stage(out, evaluation, seconds)
        text += _evaluation_stage(out, evaluation, harmonizers, seconds)
    if benchmark:
        text += _benchmark_stage(out, benchmark, harmonization, harmonizers, seconds)
    if downstream:
        text += _downstream_stage(out, downstream, seconds)
    if augmentation:
        text += _augmentation_stage(out, augmentation, seconds)
    summary = summarize(cohort.table)
    files = {
        "bids": phantom.root,
        "truth": phantom.truth_path,
        "cohort": write_cohort(cohort, out / "cohort.tsv"),
        "excluded": write_cohort(cohort.excluded, out / "excluded.tsv"),
        "splits": files_splits,
        "preprocessed": out / "preprocessed" / "preprocessed.tsv",
        "failures": out / "preprocessed" / "failures.tsv",
        "summary": out / "summary.json",
    }
    if harmonization:
        files["cyclegan"] = (
            out / "cyclegan" / f"{harmonization['source_site']}-{harmonization['target_site']}" / "models" / "model.pt"
        )
        files["harmonized"] = out / "harmonized" / "harmonized.tsv"
        files["fidelity"] = out / "harmonized" / "traveling_fidelity.tsv"
    if evaluation:
        files["site_effects"] = out / "site_effects" / "site_effects.json"
        files["evaluation"] = out / "evaluation" / "evaluation.json"
    if benchmark:
        files["benchmark"] = out / "benchmark"
    if downstream:
        files["brain_age"] = out / "brain_age" / "eval" / "predictions.json"
        files["ad_classification"] = out / "ad_classification" / "eval" / "metrics.json"
    if augmentation:
        files["augment"] = out / "augment_grid" / "summary.tsv"
    split_counts = splits["split"].value_counts().to_dict()
    record = {
        "version": __version__,
        "phantom": {**vars(spec), "effects": vars(spec.effects)},
        "sites": summary.to_dict(orient="records"),
        "splits": split_counts,
        "excluded": len(cohort.excluded),
        "preprocessed_ok": len(preprocessed.ok),
        "preprocess_failures": len(preprocessed.failures),
        "seconds": seconds,
    }
    write_json(files["summary"], record)
    head = (
        format_summary(summary)
        + "\n\nsubjects per split: "
        + ", ".join(f"{k} {v}" for k, v in sorted(split_counts.items()))
    )
    head += (
        f"\npreprocessed: {len(preprocessed.ok)} of {len(preprocessed.table)} images ({seconds['preprocess']:.0f} s)"
    )
    text = head + text
    from pipeline.report import build_report

    t = time.perf_counter()
    built = build_report(out)
    seconds["report"] = time.perf_counter() - t
    write_json(files["summary"], record)  # with the report's own time
    files["report"] = built.html
    text += f"\n\n{built.summary_text}"
    return DemoResult(out=out, cohort=cohort, summary_text=text, files=files, seconds=seconds)
