"""The main job, ``mriharmony demo``: the whole chain on the embedded phantom cohort.

Stages: generate the phantom -> load and validate it as a cohort -> subject-level splits -> preprocess (N4, skull
strip, rigid to MNI, 2 mm, 64^3) -> the site effects that survive it -> train a CycleGAN between two sites (the
cyclegan_harmonization bundle) -> harmonize the target site to the source (reference) site and back ->
traveling-subject fidelity -> further CycleGANs on the same split (``benchmark.harmonizer_seeds``) -> the
harmonization evaluation (every harmonizer seed beside the identity, histogram, z-score and ComBat baselines) ->
the brain-age benchmark (pooled, held-out, cross-site; cross-validated) -> the brain_age and ad_classification
bundles beside their baselines -> the augmentation grid -> one many-to-one harmonizer for every site but the
held-out ones, evaluated on the held-out and the seen sites -> the report.

Every path comes from :class:`pipeline.run.RunLayout`, every setting from :class:`pipeline.demo_config.DemoConfig`,
and every stage that is not a bundle training resumes through a :class:`pipeline.run.StageMarker` (bundles through
:func:`pipeline.bundles.train_bundle_once`, which uses the same marker).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline import __version__
from pipeline.atomic import write_table, write_yaml
from pipeline.bundles import run_bundle, train_bundle_once
from pipeline.cohort import Cohort, format_summary, load_cohort, split_subjects, summarize, write_cohort, write_splits
from pipeline.demo_config import SCALES, BundleSection, DemoConfig, HarmonizationSection, phantom_spec_from_config
from pipeline.evaluate import traveling_fidelity
from pipeline.harmonize import harmonize_cohort
from pipeline.phantom import generate_phantom
from pipeline.preprocess.batch import read_preprocessed, run_preprocess
from pipeline.run import RunLayout, StageMarker, file_sha256
from pipeline.run.layout import BENCHMARK_PROTOCOLS
from pipeline.run.records import (
    BrainAgePredictions,
    ClassificationMetrics,
    EvaluationRecord,
    JsonRecord,
    RunSummary,
    SeedsSummary,
    SiteEffectsRecord,
)

__all__ = ["DemoResult", "run_demo", "check_demo_config", "phantom_spec_from_config", "SCALES", "BENCHMARK_PROTOCOLS"]

log = logging.getLogger("mriharmony.demo")

SEED_METRICS = {"brain_age": ("mae", "r"), "ad_classification": ("balanced_accuracy", "auc")}


@dataclass
class DemoResult:
    out: Path
    cohort: Cohort
    summary_text: str
    files: dict[str, Path]
    seconds: dict[str, float]


def check_demo_config(config: dict[str, Any], out: str | Path = "mriharmony-demo") -> DemoConfig:
    """Check every section of a demo config before any work (see :class:`DemoConfig`)."""
    return DemoConfig.from_dict(config, out)


def _too_small(run: RunLayout, task: str) -> str:
    """Why ``task`` cannot be trained and tested on the run's split ("" when it can)."""
    from pipeline.data.task_tables import task_table

    table = task_table(run.preprocessed, task, splits_file=run.splits)
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    if task == "brain_age" and (len(train) < 3 or len(test) < 1):
        return f"{len(train)} training and {len(test)} test controls; need at least 3 and 1"
    if task != "brain_age" and (train["label"].nunique() < 2 or len(test) < 1):
        return (
            f"training classes {sorted(train['diagnosis'].unique())} and {len(test)} test subjects; "
            "need two classes and a test subject"
        )
    return ""


def _cyclegan_overrides(run: RunLayout, cfg: HarmonizationSection) -> dict[str, Any]:
    """The cyclegan_harmonization bundle's settings for the run's split (without its bundle_root)."""
    return {"dataset_dir": str(run.preprocessed), "splits_file": str(run.splits), **cfg.bundle_overrides()}


def _harmonization_stage(
    run: RunLayout, cfg: HarmonizationSection, splits, seconds: dict[str, float], progress: bool
) -> str:
    """Train the CycleGAN between the source (reference) and target sites on the train split, harmonize the target
    site to the source and the source to the target, and measure traveling-subject fidelity; returns the text."""
    source, target = cfg.source_site, cfg.target_site
    model = run.cyclegan_model(source, target)
    t = time.perf_counter()
    # train_bundle_once, not a bare run: a re-run of a finished bundle would rewrite models/model.pt
    # (its final-epoch CheckpointSaver fires on COMPLETED even when the resumed trainer has nothing left to do)
    train_bundle_once("cyclegan_harmonization", run.cyclegan(source, target), _cyclegan_overrides(run, cfg))
    seconds["cyclegan_train"] = time.perf_counter() - t

    t = time.perf_counter()
    table = harmonize_cohort(
        read_preprocessed(run.preprocessed), model, run.harmonized, direction="to_source", workers=0, progress=progress
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
    t = time.perf_counter()  # the other direction, for the benchmark's "to target" condition
    harmonize_cohort(
        read_preprocessed(run.preprocessed),
        model,
        run.harmonized_to_target,
        direction="to_target",
        workers=0,
        progress=progress,
    )
    seconds["harmonize_to_target"] = time.perf_counter() - t
    fidelity = traveling_fidelity(table, output_site=source)
    fidelity = fidelity.merge(splits[["subject", "split"]], on="subject", how="left")
    write_table(run.traveling_fidelity, fidelity)
    text = (
        f"\nCycleGAN {source} <-> {target}: trained in {seconds['cyclegan_train']:.0f} s; {target} harmonized "
        f"to {source}; traveling-subject fidelity inside the brain (harmonized vs identity, against the real "
        f"{source} image):"
    )
    for label, part in (
        ("held out (test split)", fidelity[fidelity["split"] == "test"]),
        ("all traveling (train/val ones chose the checkpoint)", fidelity),
    ):
        if len(part):
            text += (
                f"\n  {label}, n={len(part)}: MAE {part['harmonized_mae'].mean():.4f} vs "
                f"{part['identity_mae'].mean():.4f}, SSIM {part['harmonized_ssim'].mean():.3f} vs "
                f"{part['identity_ssim'].mean():.3f}, PSNR {part['harmonized_psnr'].mean():.1f} vs "
                f"{part['identity_psnr'].mean():.1f} dB"
            )
    return text


def _harmonizers_stage(run: RunLayout, config: DemoConfig, seconds: dict[str, float]) -> list:
    """The harmonizer seeds: seed 0 is the harmonization stage's CycleGAN; seeds 1, ... are trained on the same
    split and harmonize both ways."""
    from pipeline.experiments.harmonizer_seeds import prepare_harmonizers

    cfg = config.harmonization
    t = time.perf_counter()
    harmonizers = prepare_harmonizers(
        run.preprocessed,
        run.harmonizer_seeds,
        source_site=cfg.source_site,
        target_site=cfg.target_site,
        harmonized=run.harmonized,
        harmonized_to_target=run.harmonized_to_target,
        harmonizer_seeds=config.benchmark.harmonizer_seeds if config.benchmark else 1,
        splits_file=run.splits,
        bundle_overrides=_cyclegan_overrides(run, cfg),
    )
    seconds["harmonizer_seeds"] = time.perf_counter() - t
    return harmonizers


def _site_effects_stage(run: RunLayout, config: DemoConfig, seconds: dict[str, float]) -> str:
    """`mriharmony evaluate site-effects` on every preprocessed image: what survives preprocessing, per site pair."""
    from pipeline.evaluate.site_effects import format_site_effects, measure_site_effects

    settings = {"n_resamples": config.evaluation.resamples, "seed": config.evaluation.seed}
    images = sorted(file_sha256(p) for p in read_preprocessed(run.preprocessed)["image_cube"])
    marker = StageMarker(run.site_effects / "settings.json", settings, digests={"images": images})
    return _marked_stage(
        "site effects",
        "site_effects",
        marker,
        (SiteEffectsRecord, run.site_effects_record),
        lambda: measure_site_effects(run.preprocessed, run.site_effects, **settings),
        format_site_effects,
        seconds,
    )


def _marked_stage(
    title: str,
    key: str,
    marker: StageMarker,
    record: tuple[type[JsonRecord], Path],
    compute: Callable[[], dict],
    describe: Callable[[dict], str],
    seconds: dict[str, float],
) -> str:
    """Reuse a stage's record when its marker is current, else compute it and mark it complete; a ``ValueError``
    (e.g. a cohort too small for it) skips the stage with the reason and keeps the run going."""
    kind, path = record
    t = time.perf_counter()
    if marker.is_complete(path):
        report, state = kind.read(path, nan_for_null=True).to_json(), "reused"
    else:
        try:
            report = compute()
        except ValueError as error:
            log.warning("%s skipped: %s", title, error)
            return f"\n{title}: skipped ({error})"
        marker.mark_complete()
        state = "computed"
    seconds[key] = time.perf_counter() - t
    return f"\n{describe(report)}\n({state} in {seconds[key]:.0f} s)"


def _evaluation_stage(run: RunLayout, config: DemoConfig, harmonizers: list, seconds: dict[str, float]) -> str:
    """`mriharmony evaluate harmonization` on the run's split: every harmonizer seed beside the baselines."""
    from pipeline.experiments.harmonization_evaluation import evaluate_harmonization, format_evaluation

    cfg = config.evaluation
    settings = {
        "split": cfg.split,
        "baselines": list(cfg.baselines),
        "probes": list(cfg.probes),
        "n_resamples": cfg.resamples,
        "seed": cfg.seed,
    }
    # inputs: the generators and the split decide the harmonized images (harmonized.tsv itself is rewritten,
    # with its "resumed" column, on every run)
    marker = StageMarker(
        run.evaluation / "settings.json",
        settings,
        inputs={"splits": run.splits},
        digests={"cyclegan": [file_sha256(h.checkpoint) for h in harmonizers]},
    )
    folders = [h.to_source for h in harmonizers]
    return _marked_stage(
        "harmonization evaluation",
        "evaluation",
        marker,
        (EvaluationRecord, run.evaluation_record),
        lambda: evaluate_harmonization(
            run.preprocessed,
            folders if len(folders) > 1 else folders[0],
            run.evaluation,
            splits_file=run.splits,
            **settings,
        ),
        format_evaluation,
        seconds,
    )


def _benchmark_stage(run: RunLayout, config: DemoConfig, harmonizers: list, seconds: dict[str, float]) -> str:
    """The brain-age benchmark for each configured protocol; harmonizer seed 0 is the run's CycleGAN."""
    from pipeline.experiments.brain_age_benchmark import format_benchmark_table, run_brain_age_benchmark

    cfg, source, target = config.benchmark, config.harmonization.source_site, config.harmonization.target_site
    overrides = cfg.bundle.train_overrides()
    text = ""
    for protocol in cfg.protocols:
        t = time.perf_counter()
        try:
            summary = run_brain_age_benchmark(
                run.preprocessed,
                run.benchmark_protocol(protocol),
                harmonizers,
                source_site=source,
                target_site=target,
                protocol=protocol,
                seeds=cfg.seeds,
                bundle_overrides=overrides,
            )
        except ValueError as error:  # too few controls at this scale: say so, keep the run going
            log.warning("brain-age benchmark %s skipped: %s", protocol, error)
            text += f"\nbrain-age benchmark ({protocol}): skipped ({error})"
            continue
        seconds[f"benchmark_{protocol}"] = time.perf_counter() - t
        text += (
            f"\nbrain-age benchmark, {BENCHMARK_PROTOCOLS[protocol]} ({source} + {target}; {cfg.seeds} seed(s) "
            f"x {len(harmonizers)} harmonizer seed(s), {seconds[f'benchmark_{protocol}']:.0f} s):\n"
            f"{format_benchmark_table(summary)}"
        )
    if cfg.cross_validated_folds:
        text += _cross_validated_stage(run, cfg.cross_validated_folds, overrides, seconds)
    return text


def _many_to_one_stage(run: RunLayout, config: DemoConfig, harmonizers: list, seconds: dict[str, float]) -> str:
    """One many-to-one harmonizer for every site but the held-out ones, evaluated on every site beside the
    baselines and, on its site, the run's pairwise CycleGAN seeds (:mod:`pipeline.experiments.many_to_one_study`)."""
    from pipeline.experiments.many_to_one_study import format_many_to_one, run_many_to_one_study
    from pipeline.run.records import ManyToOneSummary

    cfg, evaluation = config.many_to_one, config.evaluation
    settings = {
        "split": evaluation.split,
        "baselines": list(evaluation.baselines),
        "probes": list(evaluation.probes),
        "n_resamples": evaluation.resamples,
        "seed": evaluation.seed,
    }
    brain_age = cfg.brain_age.train_overrides()
    pairwise = [h.to_source for h in harmonizers]
    marker = StageMarker(
        run.many_to_one / "settings.json",
        {
            "section": {
                **cfg.bundle_overrides(),
                "reference_site": cfg.reference_site,
                "seeds": cfg.seeds,
                "held_out_sites": list(cfg.held_out_sites),
                "brain_age_seeds": cfg.brain_age_seeds,
            },
            "evaluation": settings,
            "brain_age": brain_age,
        },
        inputs={"splits": run.splits},
        digests={"pairwise": [file_sha256(h.checkpoint) for h in harmonizers]},
    )
    return _marked_stage(
        "many-to-one harmonization",
        "many_to_one",
        marker,
        (ManyToOneSummary, run.many_to_one_summary),
        lambda: run_many_to_one_study(
            run,
            reference_site=cfg.reference_site,
            held_out_sites=cfg.held_out_sites,
            seeds=cfg.seeds,
            bundle_overrides=cfg.bundle_overrides(),
            pairwise=pairwise,
            evaluation=settings,
            brain_age_seeds=cfg.brain_age_seeds,
            brain_age_overrides=brain_age,
        ).to_json(),
        lambda report: format_many_to_one(ManyToOneSummary.from_json(report)),
        seconds,
    )


def _cross_validated_stage(run: RunLayout, folds: int, overrides: dict[str, Any], seconds: dict[str, float]) -> str:
    """`mriharmony benchmark brain-age-cv`: every control of every site predicted once by k-fold cross-validation,
    so that the brain-age models meet the mean predictor on more test subjects than the split holds."""
    from pipeline.experiments.brain_age_benchmark import format_benchmark_table
    from pipeline.experiments.brain_age_cv import run_brain_age_cv

    t = time.perf_counter()
    try:
        summary = run_brain_age_cv(run.preprocessed, run.cross_validated, folds=folds, bundle_overrides=overrides)
    except ValueError as error:
        log.warning("cross-validated brain age skipped: %s", error)
        return f"\ncross-validated brain age: skipped ({error})"
    seconds["benchmark_cross_validated"] = time.perf_counter() - t
    return (
        f"\nbrain age, {folds}-fold cross-validated over every control of every site "
        f"({seconds['benchmark_cross_validated']:.0f} s):\n{format_benchmark_table(summary)}"
    )


def _infer(
    run: RunLayout, name: str, bundle_root: Path, infer: dict[str, Any], *, gradcam: bool = False
) -> BrainAgePredictions | ClassificationMetrics:
    """Run bundle ``name``'s inference on the test split into ``bundle_root/eval``; return its metrics record."""
    eval_dir = bundle_root / "eval"
    if name == "brain_age":
        run_bundle(
            name, "inference", **infer, bundle_root=str(bundle_root), output_file=str(eval_dir / "predictions.tsv")
        )
    else:
        run_bundle(
            name,
            "inference",
            **infer,
            bundle_root=str(bundle_root),
            output_dir=str(eval_dir),
            **({"gradcam": True} if gradcam else {}),
        )
    record = BrainAgePredictions if name == "brain_age" else ClassificationMetrics
    return record.read(eval_dir / run.downstream_metrics(name).name, nan_for_null=True)


def _downstream_stage(run: RunLayout, config: DemoConfig, seconds: dict[str, float]) -> str:
    """Train the brain_age and ad_classification bundles on the train split, predict the test split and return
    their metrics beside the baselines as text."""
    from pipeline.downstream.brain_age import format_brain_age_table
    from pipeline.downstream.classification import format_metrics_table

    text = ""
    for name, section in config.downstream.items():
        reason = _too_small(run, "brain_age" if name == "brain_age" else section.task or "cn_ad")
        if reason:
            log.warning("%s skipped: %s", name, reason)
            text += f"\n{name}: skipped ({reason})"
            continue
        common = {"dataset_dir": str(run.preprocessed), "splits_file": str(run.splits), **section.common_overrides()}
        train = {**common, **section.train_overrides()}
        t = time.perf_counter()
        trained = train_bundle_once(name, run.downstream(name), train)
        seconds[f"{name}_train"] = time.perf_counter() - t
        t = time.perf_counter()
        infer = {**common, "split": "test"}
        report = _infer(run, name, run.downstream(name), infer, gradcam=name != "brain_age")
        if isinstance(report, BrainAgePredictions):
            table, title = format_brain_age_table(report.to_json()), "brain age (controls, test split)"
        else:
            table = format_metrics_table(report.to_json())
            title = f"{report.task} classification ({report.model}, test split)"
        seconds[f"{name}_inference"] = time.perf_counter() - t
        state = f"trained in {seconds[f'{name}_train']:.0f} s" if trained else "reused"
        text += f"\n{title}, {state}; baselines fitted on the train split:\n{table}"
        if section.seeds > 1:
            t = time.perf_counter()
            text += _downstream_seeds(run, name, section, train, infer, report)
            seconds[f"{name}_seeds"] = time.perf_counter() - t
    return text


def _downstream_seeds(
    run: RunLayout,
    name: str,
    section: BundleSection,
    train: dict[str, Any],
    infer: dict[str, Any],
    first: BrainAgePredictions | ClassificationMetrics,
) -> str:
    """Train bundle ``name`` again with further seeds on the same split (reused when unchanged), score each on the
    test split, and write the CNN's test metrics per seed with their mean, SD and range (the baselines do not
    depend on the seed). ``first`` is the first seed's report."""
    base = int(section.seed or 0)
    reports = {base: first}
    for k in range(1, section.seeds):
        folder = run.downstream_seed(name, base + k)
        train_bundle_once(name, folder, {**train, "seed": base + k})
        reports[base + k] = _infer(run, name, folder, infer)
    rows = []
    for metric in SEED_METRICS[name]:
        values = [float((r.cnn if name == "brain_age" else r.classifier).metrics[metric]) for r in reports.values()]
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
    SeedsSummary(bundle=name, seeds=list(reports), split="test", summary=rows).write(run.downstream_seeds(name))
    return "".join(
        f"\n  over {len(reports)} seeds: cnn {r['metric']} {r['mean']:.3f} (SD {r['sd']:.3f}; "
        f"{', '.join(f'{v:.3f}' for v in r['per_seed'])})"
        for r in rows
    )


def _augmentation_stage(run: RunLayout, config: DemoConfig, seconds: dict[str, float]) -> str:
    """The augmentation grid (generators, synthetic images, classifier per arm) as text."""
    from pipeline.experiments.augmentation_grid import format_grid_table, run_augment_grid

    grid = config.augmentation
    reason = _too_small(run, grid.task)
    if reason:
        log.warning("augmentation grid skipped: %s", reason)
        return f"\naugmentation grid: skipped ({reason})"
    t = time.perf_counter()
    result = run_augment_grid(grid, run.augment_grid)
    seconds["augmentation_grid"] = time.perf_counter() - t
    summary = result["summary"]
    text = (
        f"\naugmentation grid ({grid.repeats} repeat(s), {int(summary['repeats'].max())} run(s) per arm, "
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


def _written(run: RunLayout, config: DemoConfig) -> dict[str, Path]:
    """The main outputs of this run, by name (printed by the CLI)."""
    files = {
        "bids": run.phantom,
        "cohort": run.cohort,
        "excluded": run.excluded,
        "splits": run.splits,
        "preprocessed": run.preprocessed_table,
        "failures": run.failures,
        "summary": run.summary,
    }
    if config.harmonization:
        files["cyclegan"] = run.cyclegan_model(config.harmonization.source_site, config.harmonization.target_site)
        files["harmonized"] = run.harmonized_table
        files["fidelity"] = run.traveling_fidelity
    if config.evaluation:
        files["site_effects"] = run.site_effects_record
        files["evaluation"] = run.evaluation_record
    if config.benchmark:
        files["benchmark"] = run.benchmark
    for name in config.downstream or {}:
        files[name] = run.downstream_metrics(name)
    if config.augmentation:
        files["augment"] = run.augment_grid / "summary.tsv"
    if config.many_to_one:
        files["many_to_one"] = run.many_to_one_summary
    files["report"] = run.report_html
    return files


def run_demo(
    out: str | Path, config: dict[str, Any], *, workers: int | None = None, progress: bool = True
) -> DemoResult:
    """Run the demo chain into ``out`` (see the module docstring)."""
    checked = check_demo_config(config, out)
    run = RunLayout(out)
    run.root.mkdir(parents=True, exist_ok=True)
    write_yaml(run.config, config)  # the exact configuration of this run, for the report
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    phantom = generate_phantom(run.phantom, checked.phantom, workers=workers, progress=progress)
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
    splits = split_subjects(cohort.table, **checked.splits.as_dict())
    t = time.perf_counter()
    preprocessed = run_preprocess(cohort, run.preprocessed, checked.preprocess, workers=workers, progress=progress)
    seconds["preprocess"] = time.perf_counter() - t
    log.info(
        "preprocess: %d ok, %d failed (%.1f s)", len(preprocessed.ok), len(preprocessed.failures), seconds["preprocess"]
    )
    write_splits(splits, run.splits)
    write_cohort(cohort, run.cohort)
    write_cohort(cohort.excluded, run.excluded)

    text = ""
    if checked.harmonization:
        text += _harmonization_stage(run, checked.harmonization, splits, seconds, progress)
        harmonizers = _harmonizers_stage(run, checked, seconds)
    if checked.evaluation:
        text += _site_effects_stage(run, checked, seconds)
        text += _evaluation_stage(run, checked, harmonizers, seconds)
    if checked.benchmark:
        text += _benchmark_stage(run, checked, harmonizers, seconds)
    if checked.downstream:
        text += _downstream_stage(run, checked, seconds)
    if checked.augmentation:
        text += _augmentation_stage(run, checked, seconds)
    if checked.many_to_one:
        text += _many_to_one_stage(run, checked, harmonizers if checked.harmonization else [], seconds)
    summary = summarize(cohort.table)
    split_counts = splits["split"].value_counts().to_dict()
    spec = checked.phantom
    record = RunSummary(
        version=__version__,
        phantom={**vars(spec), "effects": vars(spec.effects)},
        sites=summary.to_dict(orient="records"),
        splits=split_counts,
        excluded=len(cohort.excluded),
        preprocessed_ok=len(preprocessed.ok),
        preprocess_failures=len(preprocessed.failures),
        seconds=seconds,
    )
    record.write(run.summary)
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
    built = build_report(run.root)
    seconds["report"] = time.perf_counter() - t
    record.write(run.summary)  # with the report's own time (``seconds`` is the same dict)
    text += f"\n\n{built.summary_text}"
    files = {"truth": phantom.truth_path, **_written(run, checked)}
    return DemoResult(out=run.root, cohort=cohort, summary_text=text, files=files, seconds=seconds)
