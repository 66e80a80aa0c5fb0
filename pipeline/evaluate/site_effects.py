"""What site effects survive preprocessing: ``mriharmony evaluate site-effects --raw DERIV --out OUT``.

Measured on preprocessed images (no harmonization), for every site and every site pair, so that a cohort's
site effects (the phantom's, or your own scanners') can be set beside the published figures of real
scanners (docs/references.md: Glocker et al. 2019, Wachinger et al. 2021):

- per site: the medians of the MRIQC-style image quality metrics the preprocessing wrote
  (:mod:`pipeline.preprocess.quality`) and of the regional mean T1 (:mod:`pipeline.evaluate.regional_features`);
- per pair and over all sites: the linear site probe of :mod:`pipeline.evaluate.site_probe` on 8^3 volumes
  and on the regional features, raw, residualized for age, sex and diagnosis (fitted on training folds),
  and on the traveling subjects alone (the same anatomy at every site of the pair: nothing but the scanner
  differs); subject-level folds, bootstrap intervals, chance 1 / sites.

Every subject of the folder is used (there is no model to hold out from: each probe is cross-validated).
Writes ``site_effects.tsv`` (the probes), ``site_iqms.tsv`` and ``site_effects.json``.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from pipeline import __version__
from pipeline.atomic import write_table
from pipeline.evaluate.regional_features import REGIONS, regional_means
from pipeline.evaluate.site_probe import confound_design, downsampled_volumes, probe_row, site_probe, traveling_rows
from pipeline.preprocess.batch import read_preprocessed
from pipeline.preprocess.quality import IQM_NAMES
from pipeline.run.records import SiteEffectsRecord

__all__ = ["measure_site_effects", "format_site_effects"]

FEATURES = [f"{r}_mean" for r in REGIONS]


def _probe_rows(
    table: pd.DataFrame, volumes: np.ndarray, features: np.ndarray, pair: str, n_resamples: int, seed: int
) -> list[dict]:
    rows = []
    traveling = traveling_rows(table)
    for name, x in (("linear", volumes), ("features", features)):
        variants = [("none", table, x, None), ("residualized", table, x, confound_design(table))]
        if table.loc[traveling, "subject"].nunique() >= 2:
            variants.append(("traveling", table[traveling].reset_index(drop=True), x[traveling], None))
        for adjustment, rows_table, values, covariates in variants:
            result = site_probe(
                rows_table, probe="linear", volumes=values, covariates=covariates, n_resamples=n_resamples, seed=seed
            )
            rows.append(probe_row(result, sites=pair, probe=name, adjustment=adjustment))
    return rows


def measure_site_effects(raw_dir: str | Path, out: str | Path, *, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Measure the site effects of a preprocessing folder (see the module docstring); returns the JSON's content."""
    started = time.perf_counter()
    out = Path(out)
    table = read_preprocessed(raw_dir).reset_index(drop=True)
    sites = sorted(set(table["site"]))
    if len(sites) < 2:
        raise ValueError(f"{raw_dir}: site effects need at least two sites, got {sites}")
    volumes = downsampled_volumes(list(table["image_cube"]), 8)
    features = np.array(
        [
            [regional_means(np.asarray(img.dataobj, np.float32), img.affine)[f] for f in FEATURES]
            for img in (nib.load(p) for p in table["image_cube"])
        ],
        np.float32,
    )
    per_site = []
    for site, part in table.groupby("site"):
        index = part.index.to_numpy()
        record = {"site": site, "images": len(part), "subjects": int(part["subject"].nunique())}
        record.update({k: float(part[k].median()) for k in IQM_NAMES if k in part})
        record.update({f: float(np.median(features[index, i])) for i, f in enumerate(FEATURES)})
        per_site.append(record)
    probes = []
    groups = [tuple(sites)] + (list(itertools.combinations(sites, 2)) if len(sites) > 2 else [])
    for group in groups:
        part = table["site"].isin(group).to_numpy()
        probes += _probe_rows(
            table[part].reset_index(drop=True), volumes[part], features[part], "+".join(group), n_resamples, seed
        )
    probe_table, iqm_table = pd.DataFrame(probes), pd.DataFrame(per_site)
    write_table(out / "site_effects.tsv", probe_table)
    write_table(out / "site_iqms.tsv", iqm_table)
    report = {
        "version": __version__,
        "raw": str(raw_dir),
        "sites": sites,
        "n_images": int(len(table)),
        "n_subjects": int(table["subject"].nunique()),
        "probes": probe_table.to_dict(orient="records"),
        "per_site": iqm_table.to_dict(orient="records"),
        "seed": seed,
        "seconds": time.perf_counter() - started,
    }
    SiteEffectsRecord.from_json(report).write(out / "site_effects.json")
    return report


def format_site_effects(report: dict) -> str:
    """site_effects.json as text: the probes per site group and the IQM medians per site."""
    lines = [
        f"site effects after preprocessing: {report['n_images']} images of {report['n_subjects']} subjects",
        "linear site probe, balanced accuracy [95% interval] (chance 1 / sites):",
    ]
    lines += [
        f"  {r['sites']:<16} {r['probe']:<9} {r['adjustment']:<13} {r['balanced_accuracy']:.3f} "
        f"[{r['low']:.3f}, {r['high']:.3f}]  chance {r['chance']:.2f}  n={r['n_subjects']}"
        for r in report["probes"]
    ]
    keys = [k for k in IQM_NAMES if report["per_site"] and k in report["per_site"][0]]
    lines.append("per-site medians: " + ", ".join(keys))
    lines += [f"  {r['site']:<10} " + "  ".join(f"{r[k]:.3g}" for k in keys) for r in report["per_site"]]
    return "\n".join(lines)
