"""The ``mriharmony`` command line: a thin layer over the package's functions."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main", "build_parser"]


class _ConsoleFilter(logging.Filter):
    """The console shows mriharmony's own INFO lines (stages, counts) and everyone's warnings; the rest (Dask's
    scheduler and worker lines, MONAI's per-iteration and config lines) goes to the log file only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.startswith("mriharmony")


def _command_log(out: str | Path, command: str) -> Path:
    """``out/logs/COMMAND.log``, as the run layout names it (imported here: ``mriharmony --help`` stays fast)."""
    from pipeline.run.layout import RunLayout

    return RunLayout(out).log(command)


def _setup_logging(log_file: Path | None = None) -> None:
    console = logging.StreamHandler(sys.stderr)
    console.addFilter(_ConsoleFilter())
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", handlers=handlers, force=True
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.config import apply_overrides, load_config
    from pipeline.demo import run_demo
    from pipeline.demo_config import SCALES

    config = apply_overrides(load_config(args.config or SCALES[args.scale]), args.set or [])
    out = Path(args.out)
    _setup_logging(_command_log(out, "demo"))
    result = run_demo(out, config, workers=args.workers, progress=not args.quiet)
    print(f"\nmriharmony demo: phantom cohort {result.cohort.source}\n")
    print(result.summary_text)
    print("\nwritten:")
    for name, path in result.files.items():
        print(f"  {name:<9} {path}")
    print(f"  {'log':<9} {_command_log(out, 'demo')}")
    return 0


def _cmd_phantom(args: argparse.Namespace) -> int:
    from pipeline.demo_config import phantom_spec_from_config
    from pipeline.phantom import generate_phantom

    section = {
        "sites": [s.strip() for s in args.sites.split(",") if s.strip()],
        "subjects_per_site": args.subjects_per_site,
        "traveling": args.traveling,
        "resolution": args.resolution,
        "seed": args.seed,
        "profiles": args.profiles,
        "effects": {"age": args.effect_age, "ad": args.effect_ad, "site": args.effect_site},
    }
    spec = phantom_spec_from_config(section, where="phantom options")
    result = generate_phantom(args.out, spec, workers=args.workers, progress=not args.quiet, resume=not args.overwrite)
    state = "kept existing" if result.reused else "generated"
    print(
        f"{state} {len(result.truth)} images ({result.truth['subject'].nunique()} subjects) in {result.root} "
        f"({result.seconds:.1f} s); ground truth: {result.truth_path}"
    )
    return 0


def _cmd_preprocess(args: argparse.Namespace) -> int:
    from pipeline.preprocess.batch import run_preprocess
    from pipeline.preprocess.config import load_preprocess_config

    config = load_preprocess_config(args.config, args.set or [])  # fails before any work
    out = Path(args.out)
    _setup_logging(_command_log(out, "preprocess"))
    result = run_preprocess(
        args.cohort, out, config, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet
    )
    n_ok = len(result.ok)
    print(f"preprocessed {n_ok} of {len(result.table)} images in {result.seconds:.1f} s -> {out / 'preprocessed.tsv'}")
    if len(result.failures):
        n_qc = int((result.failures["step"] == "qc").sum())
        print(
            f"{len(result.failures) - n_qc} failed, {n_qc} stopped by the QC gate (details in {out / 'failures.tsv'}):"
        )
        for _, row in result.failures.iterrows():
            print(f"  - sub-{row['subject']} {row.get('session') or ''} [{row['step']}]: {row['reason']}")
        return 1
    return 0


def _cmd_harmonize(args: argparse.Namespace) -> int:
    from pipeline.harmonize import harmonize_cohort
    from pipeline.preprocess.batch import read_preprocessed

    if bool(args.bundle) == bool(args.checkpoint):
        raise ValueError("give either --bundle BUNDLE_DIR (uses BUNDLE_DIR/models/model.pt) or --checkpoint FILE")
    checkpoint = Path(args.checkpoint) if args.checkpoint else Path(args.bundle) / "models" / "model.pt"
    table = read_preprocessed(args.preprocessed)
    sites = [s for s in args.site.split(",") if s] if args.site else None
    result = harmonize_cohort(
        table,
        checkpoint,
        args.out,
        direction=args.direction,
        sites=sites,
        workers=args.workers,
        scheduler=args.scheduler,
        amp=args.amp,
        progress=not args.quiet,
    )
    n_ok = int((result["harmonized"] & (result["status"] == "ok")).sum())
    n_failed = int((result["status"] == "failed").sum())
    print(f"harmonized {n_ok} images ({n_failed} failed) -> {Path(args.out) / 'harmonized.tsv'}")
    unseen = sorted(set(result.loc[result["unseen_site"].astype(bool), "site"]))
    if unseen:
        print(f"sites never seen in training, harmonized and flagged unseen_site: {', '.join(unseen)}")
    return 1 if n_failed else 0


def _cmd_slices(args: argparse.Namespace) -> int:
    from pipeline.preprocess.batch import read_preprocessed
    from pipeline.slices import extract_slices

    table = read_preprocessed(args.table)
    views = [v for v in args.views.split(",") if v]
    result = extract_slices(
        table, args.out, views=views, mode=args.mode, n=args.n, image_column=args.image_column, png=not args.no_png
    )
    print(f"{len(result)} slices of {len(table)} images -> {Path(args.out) / 'slices.tsv'}")
    return 0


def _key_values(items: list[str] | None, flag: str, example: str) -> dict:
    import yaml

    overrides = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{flag} {item!r}: expected KEY=VALUE (a bundle key, e.g. {example})")
        overrides[key] = yaml.safe_load(value)
    return overrides


def _cmd_benchmark_brain_age_cv(args: argparse.Namespace) -> int:
    from pipeline.experiments.brain_age_benchmark import format_benchmark_table
    from pipeline.experiments.brain_age_cv import run_brain_age_cv

    _setup_logging(_command_log(args.out, "benchmark"))
    summary = run_brain_age_cv(
        args.raw,
        args.out,
        folds=args.folds,
        seed=args.seed,
        bundle_overrides=_key_values(args.set, "--set", "epochs=5"),
    )
    print(f"\nbrain age, {args.folds}-fold cross-validated over every control of {args.raw}:")
    print(format_benchmark_table(summary))
    print(f"\nwritten: {Path(args.out) / 'summary.tsv'}, summary.json, predictions.tsv, folds.tsv")
    return 0


def _cmd_benchmark_brain_age(args: argparse.Namespace) -> int:
    from pipeline.experiments.brain_age_benchmark import format_benchmark_table, run_brain_age_benchmark
    from pipeline.experiments.harmonizer_seeds import prepare_harmonizers

    overrides = _key_values(args.set, "--set", "epochs=5")
    cyclegan = _key_values(args.cyclegan_set, "--cyclegan-set", "epochs=10")
    if not args.harmonized and args.harmonizer_seeds < 1:
        raise ValueError("--harmonizer-seeds: expected at least 1 when no --harmonized folder is given")
    _setup_logging(_command_log(args.out, "benchmark"))
    harmonizers = prepare_harmonizers(
        args.raw,
        Path(args.out) / "harmonizers",
        source_site=args.source_site,
        target_site=args.target_site,
        harmonized=args.harmonized,
        harmonized_to_target=args.harmonized_to_target,
        harmonizer_seeds=args.harmonizer_seeds,
        splits_file=args.splits,
        bundle_overrides=cyclegan,
    )
    protocol = args.protocol.replace("-", "_")
    summary = run_brain_age_benchmark(
        args.raw,
        args.out,
        harmonizers,
        source_site=args.source_site,
        target_site=args.target_site,
        protocol=protocol,
        seeds=args.seeds,
        bundle_overrides=overrides,
    )
    print(
        f"\nbrain-age benchmark, protocol {args.protocol}, {args.source_site} + {args.target_site} controls, "
        f"{args.seeds} seed(s) x {len(harmonizers)} harmonizer seed(s):"
    )
    print(format_benchmark_table(summary))
    print(f"\nwritten: {Path(args.out) / 'summary.tsv'}, results.tsv, predictions.tsv, scatter_*.png")
    return 0


def _cmd_evaluate_harmonization(args: argparse.Namespace) -> int:
    from pipeline.experiments.harmonization_evaluation import evaluate_harmonization, format_evaluation

    _setup_logging(_command_log(args.out, "evaluate"))
    report = evaluate_harmonization(
        args.raw,
        args.harmonized if len(args.harmonized) > 1 else args.harmonized[0],
        args.out,
        baselines=[b for b in args.baselines.split(",") if b],
        split=args.split,
        splits_file=args.splits_file,
        probes=[p for p in args.probes.split(",") if p],
        n_resamples=args.resamples,
        seed=args.seed,
        site=args.site,
    )
    print("\n" + format_evaluation(report))
    print(f"\nwritten: {Path(args.out)}/site_probe.tsv, tsne.png, traveling.tsv, biological.tsv, evaluation.json")
    return 0


def _cmd_evaluate_site_effects(args: argparse.Namespace) -> int:
    from pipeline.evaluate.site_effects import format_site_effects, measure_site_effects

    _setup_logging(_command_log(args.out, "evaluate"))
    report = measure_site_effects(args.raw, args.out, n_resamples=args.resamples, seed=args.seed)
    print("\n" + format_site_effects(report))
    print(f"\nwritten: {Path(args.out)}/site_effects.tsv, site_iqms.tsv, site_effects.json")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    if args.markdown is not None:
        if args.run is not None:
            raise ValueError(f"give either a run folder ({args.run}) or --markdown, not both")
        from pipeline.report.markdown import write_results_markdown

        print(write_results_markdown(args.markdown, args.out))
        return 0
    if args.run is None:
        raise ValueError("give a run folder (the --out of `mriharmony demo`), or --markdown REPORT_JSON_OR_RUN_DIR")
    from pipeline.report import build_report

    result = build_report(args.run, args.out)
    print(result.summary_text)
    print(f"written: {result.html}, {result.json}")
    return 0


def _cmd_augment_grid(args: argparse.Namespace) -> int:
    from pipeline.config import apply_overrides, load_config
    from pipeline.experiments.augmentation_grid import format_grid_table, run_augment_grid

    config = apply_overrides(load_config(args.config), args.set or [])
    _setup_logging(_command_log(args.out, "augment_grid"))
    result = run_augment_grid(config, args.out)
    print(
        f"\naugmentation grid, {result['runs']['repeat'].nunique()} repeat(s), real test subjects; median (min-max) "
        "over repeats, then the paired difference to 'none' [95% interval]:"
    )
    print(format_grid_table(result["summary"]))
    for item in result["skipped"]:
        print(f"skipped: repeat {item['repeat']} {item['run']}: {item['reason']}")
    if not result["quality"].empty:
        columns = [
            "repeat",
            "generator",
            "diagnosis",
            "n_synthetic",
            "nearest_ssim_mean",
            "ms_ssim_synthetic",
            "ms_ssim_real",
            "memorized_fraction",
        ] + [c for c in ("fid", "mmd") if c in result["quality"]]
        print("\nsynthetic image quality:\n" + result["quality"][columns].round(3).to_string(index=False))
    print(f"\nwritten: {Path(args.out) / 'summary.tsv'}, runs.tsv, quality.tsv, grid.json")
    return 0


def _cmd_cohort(args: argparse.Namespace) -> int:
    from pipeline.cohort import format_summary, load_cohort, summarize, write_cohort

    cohort = load_cohort(args.source, bad_files="raise" if args.strict else "exclude", t1w_glob=args.t1w_glob)
    print(format_summary(summarize(cohort.table)))
    if len(cohort.excluded):
        print(f"\n{len(cohort.excluded)} image(s) excluded:")
        for _, row in cohort.excluded.iterrows():
            print(f"  - sub-{row['subject']} {row['session'] or ''}: {row['reason']}")
    if args.out:
        write_cohort(cohort, args.out)
        if len(cohort.excluded):
            excluded = Path(args.out).with_name(Path(args.out).stem + "_excluded.tsv")
            write_cohort(cohort.excluded, excluded)
            print(f"excluded rows: {excluded}")
        print(f"cohort table: {args.out}")
    return 1 if len(cohort.excluded) else 0


def _cmd_split(args: argparse.Namespace) -> int:
    from pipeline.cohort import kfold_subjects, load_cohort, split_subjects, write_splits

    table = load_cohort(args.cohort).table
    stratify = [s for s in args.stratify.split(",") if s]
    if args.folds:
        splits = kfold_subjects(table, args.folds, seed=args.seed, stratify=stratify)
        counts = splits["fold"].value_counts().sort_index()
    else:
        splits = split_subjects(table, args.fractions, seed=args.seed, stratify=stratify, traveling=args.traveling)
        counts = splits["split"].value_counts()
    write_splits(splits, args.out)
    print(f"{len(splits)} subjects -> {args.out}: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    return 0


QC_FLAG_HELP = (
    "also use images the preprocessing QC gate stopped (status qc_failed in preprocessed.tsv); by default "
    "they are left out"
)


def _add_dask_options(p: argparse.ArgumentParser) -> None:
    """``--workers`` or ``--scheduler``: where a per-image command runs (:func:`pipeline.parallel.map_rows`)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local Dask worker processes (default: CPU cores; 0 = no Dask, run in this process)",
    )
    group.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler, e.g. tcp://host:8786")


def build_parser() -> argparse.ArgumentParser:
    from pipeline import __version__
    from pipeline.config import CONFIG_DIR
    from pipeline.demo_config import SCALES

    parser = argparse.ArgumentParser(
        prog="mriharmony",
        description=(
            "Multisite 3D brain T1 MRI: preprocessing, CycleGAN harmonization, synthetic augmentation, evaluation."
        ),
    )
    parser.add_argument("--version", action="version", version=f"mriharmony {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "demo",
        help="run the main job on the embedded phantom cohort, ending in the report",
        description="The whole chain on the phantom: cohort -> splits -> preprocess -> CycleGAN -> "
        "harmonize -> evaluation with baselines -> brain-age benchmark (Komandur et al. 2023, Tables 2 and 3) -> "
        "downstream bundles -> augmentation grid -> report (RUN/report/report.html). "
        "A re-run reuses every finished stage.",
    )
    p.add_argument("--out", default="mriharmony-demo", help="run folder (default: %(default)s)")
    p.add_argument(
        "--scale",
        choices=sorted(SCALES),
        default="demo",
        help="demo: about 15 min on 2 CPU cores (configs/demo.yaml); study: the evidence run, the full "
        "protocol at a CPU size, about 2 hours on 2 cores (configs/demo_study.yaml); full: the "
        "paper-sized configuration for GPUs (configs/demo_full.yaml)",
    )
    p.add_argument("--config", default=None, help="demo YAML (default: the --scale configuration)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set phantom.subjects_per_site=10 (repeatable)",
    )
    p.add_argument("--workers", type=int, default=None, help="parallel workers (default: CPU cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "report",
        help="one self-contained HTML page (and JSON) of everything a run folder holds",
        description="Gather a run folder (the --out of `mriharmony demo`) into RUN/report/report.html "
        "and report.json: preprocessing QC, harmonization evaluation, brain-age benchmark, "
        "AD classification, augmentation grid, configuration, seeds, versions, timings. "
        "Absent parts are listed as such. With --markdown, writes the markdown results page of a report.json "
        "instead (every table with an anchor, the headline findings, the notes; nothing else is run).",
    )
    p.add_argument("run", nargs="?", default=None, help="run folder")
    p.add_argument(
        "--markdown",
        default=None,
        metavar="REPORT_JSON_OR_RUN_DIR",
        help="write the markdown results page of this report.json (a run folder: its report/report.json)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="folder to write (default: RUN/report); with --markdown, the page's file (default: the JSON's "
        "path with .md)",
    )
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "phantom",
        help="generate a phantom multisite cohort (BIDS + ground truth)",
        description="Generate a synthetic multisite T1w cohort on the MNI152 template: a BIDS "
        "dataset with ground truth in derivatives/phantom/ (see pipeline/phantom).",
    )
    p.add_argument("--out", required=True, help="BIDS folder to write")
    p.add_argument("--sites", default="adni,oasis,ukb", help="comma-separated site profiles (default: %(default)s)")
    p.add_argument("--subjects-per-site", type=int, default=20, help="regular subjects per site (default: %(default)s)")
    p.add_argument(
        "--traveling", type=int, default=4, help="traveling subjects scanned at every site (default: %(default)s)"
    )
    p.add_argument(
        "--resolution", type=float, default=2.0, help="base voxel size in mm: 1, 1.5, 2 (default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--profiles", default=None, help="site profiles YAML (default: configs/phantom_sites.yaml)")
    p.add_argument("--effect-age", type=float, default=1.0, help="age effect multiplier (default: 1, realistic)")
    p.add_argument("--effect-ad", type=float, default=1.0, help="AD/MCI effect multiplier (default: 1, realistic)")
    p.add_argument(
        "--effect-site", type=float, default=1.0, help="site effect multiplier (default: 1; 0 = no site effect)"
    )
    p.add_argument("--workers", type=int, default=None, help="parallel workers (default: CPU cores)")
    p.add_argument(
        "--overwrite", action="store_true", help="regenerate even if a complete dataset of the same spec exists"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_phantom)

    p = sub.add_parser(
        "preprocess",
        help="N4, skull strip, rigid to MNI, 2 mm box, 64^3, [0,1] for a whole cohort",
        description="Preprocess every image of a cohort (BIDS folder or manifest) into a BIDS-derivatives "
        "folder, subject-parallel on Dask, resumable. Exit status 1 when any image failed "
        "(see failures.tsv), 2 on configuration or table errors.",
    )
    p.add_argument("cohort", help="BIDS folder or manifest .csv/.tsv")
    p.add_argument("--out", required=True, help="derivatives folder to write")
    p.add_argument("--config", default=None, help="preprocessing YAML (default: configs/preprocess.yaml)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set skullstrip.method=template (repeatable)",
    )
    _add_dask_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_preprocess)

    p = sub.add_parser(
        "harmonize",
        help="apply a trained harmonizer (pairwise CycleGAN or many-to-one) to a preprocessed cohort",
        description="Run every 64^3 image of a site through a generator trained by the "
        "cyclegan_harmonization bundle, or every site but the reference through the universal generator of "
        "the many_to_one_harmonization bundle (sites it never saw are flagged unseen_site), writing harmonized "
        "images, harmonized.tsv (read like preprocessed.tsv by later stages) and failures.tsv. Resumable. "
        "Exit status 1 when images failed.",
    )
    p.add_argument("preprocessed", help="preprocessing derivatives folder (or its preprocessed.tsv)")
    p.add_argument("--bundle", default=None, help="trained bundle folder (its models/model.pt is used)")
    p.add_argument("--checkpoint", default=None, help="or: a model.pt written by the bundle's training")
    p.add_argument(
        "--direction",
        choices=["to_target", "to_source"],
        default="to_target",
        help="to_target: source site -> target site (G_X; a many-to-one harmonizer: every site -> the "
        "reference); to_source: target -> source (G_Y, pairwise only)",
    )
    p.add_argument(
        "--site",
        default=None,
        help="comma-separated sites to harmonize (pairwise: only the generator's input site for --direction, "
        "the default; many-to-one: any but the reference, default all of them)",
    )
    p.add_argument("--out", required=True, help="folder to write")
    _add_dask_options(p)
    p.add_argument(
        "--amp",
        default="auto",
        metavar="{auto,float32,bfloat16,float16}",
        help="generator precision: auto (default) = bfloat16 autocast on CPUs with native bfloat16 "
        "instructions, where it is about 2x faster and its in-brain error against fp32 was "
        "measured at 3e-4, else float32; or float32, bfloat16, float16 (CUDA)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--include-qc-failed", action="store_true", help=QC_FLAG_HELP)
    p.set_defaults(func=_cmd_harmonize)

    p = sub.add_parser(
        "slices",
        help="2D slices (mid-slices or a range) of a preprocessed or harmonized table",
        description="Write the middle slice of each view (--mode mid) or N slices around the centre "
        "(--mode range) of every image as .npy (exact values) and PNG, with slices.tsv "
        "linking each slice to its subject, labels and split.",
    )
    p.add_argument("table", help="preprocessing or harmonization folder, or its table")
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--views", default="axial,coronal,sagittal", help="comma-separated views (default: %(default)s)")
    p.add_argument("--mode", choices=["mid", "range"], default="mid", help="mid-slices or a range (default: mid)")
    p.add_argument("--n", type=int, default=20, help="slices per view in range mode (default: %(default)s)")
    p.add_argument(
        "--image-column",
        default="image_cube",
        help="table column of the volumes (default: %(default)s; image_2mm for the 2 mm box)",
    )
    p.add_argument("--no-png", action="store_true", help="write only .npy")
    p.add_argument("--include-qc-failed", action="store_true", help=QC_FLAG_HELP)
    p.set_defaults(func=_cmd_slices)

    p = sub.add_parser(
        "benchmark",
        help="downstream benchmarks of harmonization (brain-age, after Komandur et al. 2023)",
        description="Benchmarks that train downstream bundles on raw and harmonized images.",
    )
    bench = p.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    b = bench.add_parser(
        "brain-age",
        help="brain-age MAE with and without harmonization: pooled (Komandur et al. "
        "Table 2), held-out (Table 3), cross-site",
        description="Train the brain_age bundle on raw and harmonized images of two sites' controls "
        "on the same subject splits per seed and report raw test MAE, R^2 and corr(gap, "
        "age) with the interval of the mean over runs and the paired difference to raw. "
        "pooled: both sites, 70:30; held-out: the same on the controls no CycleGAN saw "
        "(checked in each checkpoint); cross-site: train on one site, test on the other, "
        "both directions, with histogram matching and ComBat beside the CycleGAN.",
    )
    b.add_argument("--raw", required=True, help="preprocessing folder (no harmonization)")
    b.add_argument("--source-site", required=True, help="the reference (source) site")
    b.add_argument("--target-site", required=True, help="the other site")
    b.add_argument(
        "--protocol",
        choices=["pooled", "held-out", "cross-site"],
        default="pooled",
        help="which benchmark (default: %(default)s)",
    )
    b.add_argument(
        "--harmonized",
        default=None,
        help="a harmonization folder (target site harmonized to the source): harmonizer seed 0",
    )
    b.add_argument(
        "--harmonized-to-target", default=None, help="the same CycleGAN's source site harmonized to the target"
    )
    b.add_argument(
        "--harmonizer-seeds",
        type=int,
        default=1,
        help="CycleGANs in all (default: %(default)s): those beyond --harmonized are trained here, each with "
        "its own seed on the same training subjects",
    )
    b.add_argument(
        "--cyclegan-set",
        action="append",
        metavar="KEY=VALUE",
        help="cyclegan_harmonization bundle override for the CycleGANs trained here (e.g. epochs=10)",
    )
    b.add_argument("--splits", default=None, help="the CycleGANs' split table (default: splits.tsv in or beside --raw)")
    b.add_argument(
        "--seeds", type=int, default=3, help="brain-age splits / trainings per condition (default: %(default)s)"
    )
    b.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="brain_age bundle override, repeatable (e.g. epochs=10, spatial_size=[32,32,32])",
    )
    b.add_argument("--out", required=True, help="folder to write")
    b.add_argument("--include-qc-failed", action="store_true", help=QC_FLAG_HELP)
    b.set_defaults(func=_cmd_benchmark_brain_age)
    b = bench.add_parser(
        "brain-age-cv",
        help="brain age cross-validated over every control: CNN and a regional-feature "
        "ridge against the mean predictor",
        description="Predict every control of every site once by k-fold cross-validation by subject "
        "(the brain_age bundle and a ridge regression on regional mean T1, trained on the "
        "other folds) and report raw MAE with its interval and the paired difference to "
        "the training folds' mean age.",
    )
    b.add_argument("--raw", required=True, help="preprocessing folder")
    b.add_argument("--folds", type=int, default=5, help="subject-level folds (default: %(default)s)")
    b.add_argument("--seed", type=int, default=0, help="fold assignment and training seed (default: %(default)s)")
    b.add_argument("--set", action="append", metavar="KEY=VALUE", help="brain_age bundle override, repeatable")
    b.add_argument("--out", required=True, help="folder to write")
    b.set_defaults(func=_cmd_benchmark_brain_age_cv)

    p = sub.add_parser(
        "evaluate",
        help="evaluate harmonization: site probe, t-SNE, traveling subjects, biology, "
        "beside identity / histogram / z-score / ComBat",
        description="Evaluations of a run folder.",
    )
    evaluate = p.add_subparsers(dest="evaluation", required=True, metavar="EVALUATION")
    e = evaluate.add_parser(
        "harmonization",
        help="the harmonized site against the reference site, with baselines",
        description="Site probe (linear 8^3, CNN 16^3, regional features), t-SNE, traveling-"
        "subject fidelity and age / AD / site effects on regional T1 measures, for "
        "the harmonizers and the baselines, on the subjects of one split.",
    )
    e.add_argument("--raw", required=True, help="preprocessing folder (with splits.tsv in or beside it)")
    e.add_argument(
        "--harmonized",
        required=True,
        nargs="+",
        help="output folder of `mriharmony harmonize`; several (one per harmonizer seed, trained on the same "
        "subjects; pairwise CycleGANs and many-to-one harmonizers may be mixed) are scored as cyclegan_seed0, "
        "cyclegan_seed1, ..., many_to_one_seed0, ...",
    )
    e.add_argument("--out", required=True, help="folder to write")
    e.add_argument(
        "--baselines",
        default="identity,histogram,zscore,combat",
        help="comma-separated baselines (default: %(default)s)",
    )
    e.add_argument(
        "--split", default="test", help="subjects to evaluate: test, val, train or all (default: %(default)s)"
    )
    e.add_argument("--splits-file", default=None, help="split table (default: splits.tsv in or beside --raw)")
    e.add_argument(
        "--site",
        default=None,
        help="the site to evaluate against the reference (default: the harmonized folder's one input site; "
        "needed for a many-to-one folder, which holds every site)",
    )
    e.add_argument("--probes", default="linear,cnn", help="image-level site probes (default: %(default)s)")
    e.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")
    e.add_argument("--seed", type=int, default=0, help="folds, CNN and t-SNE seed (default: %(default)s)")
    e.add_argument("--include-qc-failed", action="store_true", help=QC_FLAG_HELP)
    e.set_defaults(func=_cmd_evaluate_harmonization)
    e = evaluate.add_parser(
        "site-effects",
        help="what site effects survive preprocessing, per site and site pair",
        description="Linear site probes on 8^3 volumes and regional features (raw, residualized "
        "for age / sex / diagnosis, traveling subjects only) per site pair and over "
        "all sites, and the image quality metrics per site; every subject of the "
        "preprocessing folder.",
    )
    e.add_argument("--raw", required=True, help="preprocessing folder")
    e.add_argument("--out", required=True, help="folder to write")
    e.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")
    e.add_argument("--seed", type=int, default=0, help="fold seed (default: %(default)s)")
    e.add_argument("--include-qc-failed", action="store_true", help=QC_FLAG_HELP)
    e.set_defaults(func=_cmd_evaluate_site_effects)

    p = sub.add_parser(
        "augment-grid",
        help="classifier over augmentation policies (none, classical, oversampling, "
        "synthetic), repeated, with paired differences",
        description="The augmentation experiment grid of configs/augment_grid.yaml (see "
        "pipeline/experiments/augmentation_grid.py): per repeat a new subject split, generators retrained "
        "on its training subjects, the ad_classification bundle per arm, real test "
        "subjects only.",
    )
    p.add_argument(
        "--config", default=str(CONFIG_DIR / "augment_grid.yaml"), help="grid YAML (default: configs/augment_grid.yaml)"
    )
    p.add_argument("--out", required=True, help="grid folder to write (re-runs resume)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set repeats=5 --set dataset_dir=DERIV (repeatable)",
    )
    p.add_argument("--include-qc-failed", action="store_true", help=QC_FLAG_HELP)
    p.set_defaults(func=_cmd_augment_grid)

    p = sub.add_parser(
        "cohort",
        help="validate a BIDS folder or manifest and summarise it",
        description="Load a cohort (BIDS folder with participants.tsv, or a manifest CSV/TSV), report "
        "every problem at once, print a per-site summary, optionally write the table. "
        "Exit status 1 when images had to be excluded, 2 on table errors.",
    )
    p.add_argument("source", help="BIDS folder or manifest .csv/.tsv")
    p.add_argument("--out", default=None, help="write the canonical cohort table (TSV) here")
    p.add_argument("--strict", action="store_true", help="treat unreadable / missing images as errors")
    p.add_argument(
        "--t1w-glob", default="*_T1w.nii*", help="T1w file pattern inside anat/ (BIDS; default: %(default)s)"
    )
    p.set_defaults(func=_cmd_cohort)

    p = sub.add_parser(
        "split",
        help="subject-level train/val/test or k-fold splits",
        description="Split a cohort by subject (never by image), stratified and seeded; writes a TSV "
        "with subject and split (or fold) that every later stage reads.",
    )
    p.add_argument("cohort", help="BIDS folder or cohort / manifest table")
    p.add_argument("--out", required=True, help="split TSV to write")
    p.add_argument(
        "--fractions", type=float, nargs="+", default=[0.7, 0.15, 0.15], help="train val test (default: %(default)s)"
    )
    p.add_argument("--folds", type=int, default=None, help="k folds instead of fractions")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--stratify", default="site,diagnosis,age", help="stratify by (default: %(default)s)")
    p.add_argument(
        "--traveling",
        choices=["split", "test"],
        default="split",
        help="subjects scanned at several sites: split like the others, or all in test (held out from "
        "every training; default: %(default)s)",
    )
    p.set_defaults(func=_cmd_split)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mriharmony`` console script."""
    from pipeline.cohort import CohortValidationError
    from pipeline.config import ConfigError

    args = build_parser().parse_args(argv)
    if getattr(args, "include_qc_failed", False):  # read by read_preprocessed, here and in bundle subprocesses
        from pipeline.preprocess.batch import INCLUDE_QC_FAILED_ENV

        os.environ[INCLUDE_QC_FAILED_ENV] = "1"
    try:
        return int(args.func(args) or 0)
    except (CohortValidationError, ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"mriharmony {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
