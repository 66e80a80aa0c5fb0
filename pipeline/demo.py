"""The main job, ``mriharmony demo``: the whole chain on the embedded phantom cohort.

Stages so far: generate the phantom -> load and validate it as a cohort -> subject-level splits ->
preprocess (N4, skull strip, rigid to MNI, 2 mm, 64^3) -> summary. Later stages (harmonize,
benchmark, report) extend this run folder.
Each stage writes files into the run folder and a re-run reuses what is complete.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.atomic import write_json
from pipeline.cohort import Cohort, format_summary, load_cohort, split_subjects, summarize, write_cohort, write_splits
from pipeline.config import CONFIG_DIR, ConfigError, check_keys, load_config
from pipeline.phantom import Effects, PhantomSpec, generate_phantom
from pipeline.phantom.scanner import load_site_profiles
from pipeline.preprocess.batch import run_preprocess
from pipeline.preprocess.config import DEFAULT_PREPROCESS_CONFIG, PreprocessConfig, preprocess_config_from_dict

__all__ = ["DemoResult", "run_demo", "phantom_spec_from_config", "DEFAULT_CONFIG"]

DEFAULT_CONFIG = CONFIG_DIR / "demo.yaml"
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


def run_demo(out: str | Path, config: dict[str, Any], *, workers: int | None = None, progress: bool = True) -> DemoResult:
    """Run the demo chain into ``out`` (see the module docstring)."""
    check_keys(config, {"phantom", "splits", "preprocess"}, "demo config")
    splits_cfg = config.get("splits") or {}
    check_keys(splits_cfg, {"fractions", "stratify", "seed"}, "splits")
    spec = phantom_spec_from_config(config.get("phantom") or {})
    preprocess_cfg = preprocess_config_from_demo(config.get("preprocess") or {})

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    phantom = generate_phantom(out / "phantom", spec, workers=workers, progress=progress)
    seconds["phantom"] = time.perf_counter() - t
    log.info("phantom: %d images in %s (%s, %.1f s)", len(phantom.truth), phantom.root,
             "reused" if phantom.reused else "generated", seconds["phantom"])

    t = time.perf_counter()
    cohort = load_cohort(phantom.root)
    seconds["cohort"] = time.perf_counter() - t
    splits = split_subjects(cohort.table, splits_cfg.get("fractions", (0.7, 0.15, 0.15)),
                            seed=int(splits_cfg.get("seed", 0)),
                            stratify=splits_cfg.get("stratify", ("site", "diagnosis", "age")))
    t = time.perf_counter()
    preprocessed = run_preprocess(cohort, out / "preprocessed", preprocess_cfg, workers=workers, progress=progress)
    seconds["preprocess"] = time.perf_counter() - t
    log.info("preprocess: %d ok, %d failed (%.1f s)", len(preprocessed.ok), len(preprocessed.failures), seconds["preprocess"])
    summary = summarize(cohort.table)
    files = {
        "bids": phantom.root,
        "truth": phantom.truth_path,
        "cohort": write_cohort(cohort, out / "cohort.tsv"),
        "excluded": write_cohort(cohort.excluded, out / "excluded.tsv"),
        "splits": write_splits(splits, out / "splits.tsv"),
        "preprocessed": out / "preprocessed" / "preprocessed.tsv",
        "failures": out / "preprocessed" / "failures.tsv",
        "summary": out / "summary.json",
    }
    split_counts = splits["split"].value_counts().to_dict()
    write_json(files["summary"], {
        "version": __version__, "phantom": {**vars(spec), "effects": vars(spec.effects)},
        "sites": summary.to_dict(orient="records"), "splits": split_counts,
        "excluded": len(cohort.excluded), "preprocessed_ok": len(preprocessed.ok),
        "preprocess_failures": len(preprocessed.failures), "seconds": seconds,
    })
    text = format_summary(summary) + "\n\nsubjects per split: " + ", ".join(f"{k} {v}" for k, v in sorted(split_counts.items()))
    text += f"\npreprocessed: {len(preprocessed.ok)} of {len(preprocessed.table)} images ({seconds['preprocess']:.0f} s)"
    return DemoResult(out=out, cohort=cohort, summary_text=text, files=files, seconds=seconds)
