"""The many-to-one study: one harmonizer for every site of a cohort, tested on sites it never saw.

The question a user with many cohorts brings: does one many-to-one harmonizer (IGUANe's design, Roca et al. 2025)
work for all of them, and for a new site without retraining? Per harmonizer seed, the many_to_one_harmonization
bundle trains on every site but the held-out ones against the reference site (train split only; traveling
subjects never trained on; those of the val split choose the epoch) and harmonizes every site to the reference.
Then, on the test split:

- each evaluated site (every held-out site and every seen one) goes through
  :func:`pipeline.experiments.harmonization_evaluation.evaluate_harmonization`: the many-to-one seeds beside
  identity, histogram matching, z-score, ComBat (seen sites only: on a held-out site the evaluation leaves it out
  and says why) and, for the site the run's pairwise CycleGAN harmonizes, the pairwise seeds, all on the same
  subjects: retrained site probes, in-brain traveling-subject fidelity against the reference, and the age and AD
  effects of regional T1 measures;
- each held-out site against the reference goes through the brain-age benchmark's ``cross_site`` protocol
  (:mod:`pipeline.experiments.brain_age_benchmark`): the brain-age model trained on one site's raw controls and
  applied to the other's, raw, many-to-one harmonized and histogram-matched; ``penalty`` is the error above the
  model's own-site error. Its ComBat rows are dropped: ComBat there is refitted on the held-out site.

``summary.json`` (:class:`pipeline.run.records.ManyToOneSummary`) holds per site what the report shows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from pipeline.bundles import train_bundle_once
from pipeline.experiments.harmonization_evaluation import COMBAT_UNSEEN, describe_harmonized, evaluate_harmonization
from pipeline.experiments.harmonizer_seeds import Harmonizer
from pipeline.harmonize import harmonize_cohort
from pipeline.preprocess.batch import read_preprocessed
from pipeline.run.layout import RunLayout
from pipeline.run.records import ManyToOneSummary

__all__ = ["run_many_to_one_study", "summarize_site", "format_many_to_one"]

log = logging.getLogger("mriharmony.many_to_one")

BUNDLE = "many_to_one_harmonization"


def run_many_to_one_study(
    run: RunLayout,
    *,
    reference_site: str,
    held_out_sites: Sequence[str],
    seeds: int = 2,
    bundle_overrides: dict[str, Any] | None = None,
    pairwise: Sequence[Path] = (),
    evaluation: dict[str, Any] | None = None,
    brain_age_seeds: int = 0,
    brain_age_overrides: dict[str, Any] | None = None,
    progress: bool = False,
) -> ManyToOneSummary:
    """Train, harmonize, evaluate and summarize (see the module docstring).

    Args:
        run: the run folder (its ``preprocessed/`` and ``splits.tsv``; writes under ``many_to_one/``).
        reference_site: the site every image is harmonized to.
        held_out_sites: sites never trained on (at least one).
        seeds: harmonizer seeds, each trained on the same subjects.
        bundle_overrides: the bundle's training settings (epochs, widths, ...).
        pairwise: ``mriharmony harmonize`` folders of the run's pairwise CycleGAN seeds (one input site each,
            harmonized to the same reference), compared on their site.
        evaluation: settings of :func:`evaluate_harmonization` (split, baselines, probes, n_resamples, seed).
        brain_age_seeds: brain-age seeds of the cross-site benchmark per held-out site (0: not run).
        brain_age_overrides: the brain_age bundle's settings for it.
    """
    table = read_preprocessed(run.preprocessed)
    sites = sorted(set(table["site"].astype(str)))
    held_out = [str(s) for s in held_out_sites]
    unknown = [s for s in [reference_site, *held_out] if s not in sites]
    if unknown or not held_out or reference_site in held_out:
        raise ValueError(
            f"many_to_one: reference_site {reference_site!r} and held_out_sites {held_out}: expected sites of the "
            f"cohort ({sites}), at least one held out, the reference not among them"
        )
    sources = [s for s in sites if s != reference_site and s not in held_out]
    if not sources:
        raise ValueError(f"many_to_one: no site left to train on (sites {sites}, held out {held_out})")
    folders = []
    for seed in range(seeds):
        root = run.many_to_one_harmonizer(seed)
        overrides = {
            "dataset_dir": str(run.preprocessed),
            "splits_file": str(run.splits),
            "reference_site": reference_site,
            "source_sites": sources,
            "seed": seed,
            **dict(bundle_overrides or {}),
        }
        train_bundle_once(BUNDLE, root, overrides)
        folders.append(run.many_to_one_harmonized(seed))
        harmonize_cohort(table, root / "models" / "model.pt", folders[-1], workers=0, progress=progress)
    settings = dict(evaluation or {})
    pairwise_by_site = _pairwise_sites(pairwise, reference_site)
    evaluations = {}
    for site in [*held_out, *sources]:
        given = pairwise_by_site.get(site, [])
        evaluations[site] = evaluate_harmonization(
            run.preprocessed,
            [*folders, *given],
            run.many_to_one_evaluation(site),
            splits_file=run.splits,
            site=site,
            **settings,
        )
    benchmarks = {}
    if brain_age_seeds:
        from pipeline.experiments.brain_age_benchmark import run_brain_age_benchmark

        harmonizers = [
            Harmonizer(seed, run.many_to_one_harmonizer(seed) / "models" / "model.pt", folder, None)
            for seed, folder in enumerate(folders)
        ]
        for site in held_out:
            benchmarks[site] = run_brain_age_benchmark(
                run.preprocessed,
                run.many_to_one_benchmark(site),
                harmonizers,
                source_site=reference_site,
                target_site=site,
                protocol="cross_site",
                seeds=brain_age_seeds,
                bundle_overrides=dict(brain_age_overrides or {}),  # its own 70:30 splits of the controls
                n_resamples=int(settings.get("n_resamples", 1000)),
            )
    summary = ManyToOneSummary(
        reference_site=reference_site,
        source_sites=sources,
        held_out_sites=held_out,
        harmonizer_seeds=seeds,
        bundle_overrides=dict(bundle_overrides or {}),
        sites={
            site: summarize_site(report, benchmarks.get(site), held_out=site in held_out)
            for site, report in evaluations.items()
        },
    )
    summary.write(run.many_to_one_summary)
    return summary


def _pairwise_sites(folders: Sequence[Path], reference_site: str) -> dict[str, list[Path]]:
    """The pairwise harmonized folders by the site they harmonize (only those harmonizing to the reference)."""
    out: dict[str, list[Path]] = {}
    for folder in folders:
        described = describe_harmonized(Path(folder))
        if described.output_site == reference_site and len(described.input_sites) == 1:
            out.setdefault(described.input_sites[0], []).append(Path(folder))
    return out


def _columns(rows: list[dict], keys: Sequence[str]) -> list[dict]:
    return [{k: r[k] for k in keys if k in r} for r in rows]


def summarize_site(report: dict, benchmark: pd.DataFrame | None, *, held_out: bool) -> dict[str, Any]:
    """What the report shows for one evaluated site: traveling-subject MAE and the linear site probe per condition
    (each with its interval and its paired difference to identity), the age slope and AD effect of the regional
    means per condition, and for a held-out site the cross-site brain-age rows."""
    interval = ("low", "high", "difference_to_identity", "difference_low", "difference_high", "n_subjects")
    travel = _columns(
        [r for r in report["traveling_intervals"] if r["metric"] == "mae"], ("condition", "mean", *interval)
    )
    probe = _columns(
        [r for r in report["site_probe"] if r["probe"] == "linear" and r.get("adjustment", "none") == "none"],
        ("condition", "balanced_accuracy", *interval),
    )
    biology = _columns(
        [r for r in report["biological"] if r.get("effect") in ("age", "AD")],
        ("condition", "measure", "effect", "estimate", "low", "high"),
    )
    brain_age = []
    if benchmark is not None:
        keep = benchmark[~benchmark["condition"].str.contains("combat")].copy()
        # the benchmark calls its harmonized condition "cyclegan"; here the harmonizers are many-to-one
        keep["condition"] = keep["condition"].replace({"cyclegan": "many_to_one"})
        brain_age = keep[
            [
                "condition",
                "train_site",
                "test_site",
                "mae_mean",
                "mae_low",
                "mae_high",
                "penalty",
                "penalty_low",
                "penalty_high",
                "n_test",
                "underpowered",
            ]
        ].to_dict(orient="records")
    not_applicable = dict(report.get("not_applicable", {}))
    if benchmark is not None:
        not_applicable["features_combat"] = COMBAT_UNSEEN
    return {
        "held_out": held_out,
        "unseen": bool(report.get("unseen_site")),
        "n_subjects": int(report["n_subjects"]),
        "n_traveling": int(report["n_traveling"]),
        "conditions": list(report["conditions"]),
        "traveling_mae": travel,
        "site_probe_linear": probe,
        "biology": biology,
        "brain_age_cross_site": brain_age,
        "not_applicable": not_applicable,
    }


def format_many_to_one(summary: ManyToOneSummary) -> str:
    """The study as text: per site, traveling MAE and linear site probe per condition."""
    lines = [
        f"many-to-one harmonization to {summary.reference_site}: trained on {', '.join(summary.source_sites)}; "
        f"held out (never trained on): {', '.join(summary.held_out_sites)}; {summary.harmonizer_seeds} seed(s)"
    ]
    for site, part in summary.sites.items():
        label = "held out" if part["held_out"] else "seen"
        lines.append(f"  {site} ({label}, {part['n_subjects']} subjects, {part['n_traveling']} traveling):")
        for row in part["traveling_mae"]:
            lines.append(
                f"    traveling MAE {row['condition']:<20} {row['mean']:.4f} [{row['low']:.4f}, {row['high']:.4f}]"
                f"  vs identity {row['difference_to_identity']:+.4f}"
            )
        for row in part["site_probe_linear"]:
            lines.append(
                f"    site probe   {row['condition']:<20} {row['balanced_accuracy']:.3f} "
                f"[{row['low']:.3f}, {row['high']:.3f}]"
            )
        lines += [f"    {name}: {why}" for name, why in part["not_applicable"].items()]
    return "\n".join(lines)
