"""Preprocess a whole cohort, subject-parallel on Dask, resumable, one bad image never stops it.

By default a ``LocalCluster`` sized to the machine runs one single-threaded worker process per
core (ITK, ANTs and torch threads set to 1, so workers do not fight over cores); pass a
``scheduler`` address to use an existing cluster (e.g. one started by dask-jobqueue on Slurm).
``workers=0`` runs everything in this process, without Dask (for debugging).

Per run it writes ``dataset_description.json``, ``preprocessed.tsv`` (every image with its status
``ok`` / ``failed`` / ``qc_failed``, outputs, QC numbers and image quality metrics: what later stages read),
``failures.tsv`` (every image that is not ok: step, reason; ``qc`` for the QC gate) and
``logs/preprocess.log`` (through the CLI).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline import __version__
from pipeline.atomic import write_json, write_table
from pipeline.cohort import Cohort, load_cohort
from pipeline.mni import TEMPLATE_NAME
from pipeline.parallel import map_rows
from pipeline.preprocess.chain import preprocess_image, software_versions
from pipeline.preprocess.config import PreprocessConfig
from pipeline.table_paths import resolve_paths

__all__ = ["PreprocessResult", "run_preprocess", "read_preprocessed", "RUN_COLUMNS"]

log = logging.getLogger("mriharmony.preprocess")
FAILURE_COLUMNS = ["subject", "session", "site", "source", "step", "reason"]
# columns that describe one run of the preprocessing (a re-run that resumes changes them), not the image:
# anything that decides from a table's content whether to retrain must leave them out
RUN_COLUMNS = ("resumed", "seconds", "step_seconds")
#: Set to 1 (the CLI's ``--include-qc-failed`` does) to make :func:`read_preprocessed` keep ``qc_failed`` rows
#: by default, in this process and in the bundle runs it starts (``python -m monai.bundle`` reads it too).
INCLUDE_QC_FAILED_ENV = "MRIHARMONY_INCLUDE_QC_FAILED"


@dataclass
class PreprocessResult:
    out: Path
    table: pd.DataFrame  # every image, with status
    failures: pd.DataFrame
    seconds: float

    @property
    def ok(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "ok"]


def _outside_root(cohort: Cohort) -> list[dict]:
    """Rows whose image is not inside the cohort folder (BIDS root, or the manifest's folder).

    Paths are compared as written (made absolute, not resolved), so a dataset of symlinks into an
    annex (datalad, git-annex) is inside its folder.
    """
    root = Path(os.path.abspath(cohort.source if cohort.source.is_dir() else cohort.source.parent))
    bad = []
    for _, row in cohort.table.iterrows():
        if not Path(os.path.abspath(row["path"])).is_relative_to(root):
            bad.append(
                {
                    **row.to_dict(),
                    "source": row["path"],
                    "step": "load",
                    "status": "failed",
                    "reason": f"image is outside the cohort folder {root} (set input.inside_root: false to allow)",
                }
            )
    return bad


def run_preprocess(
    source: str | Path | Cohort,
    out: str | Path,
    config: PreprocessConfig = PreprocessConfig(),
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> PreprocessResult:
    """Preprocess every image of a cohort into the derivatives folder ``out``.

    Args:
        source: BIDS folder, manifest table, or an already loaded :class:`Cohort`.
        out: derivatives folder (created).
        config: the chain's parameters (already validated).
        workers: local worker processes (default: CPU cores); 0 = run in this process.
        scheduler: address of an existing Dask scheduler (``tcp://host:8786``); overrides ``workers``.
        progress: show a progress bar over images.
    """
    start = time.perf_counter()
    out = Path(os.path.abspath(out))  # workers get absolute paths; tables store them relative to themselves
    out.mkdir(parents=True, exist_ok=True)
    cohort = source if isinstance(source, Cohort) else load_cohort(source)
    records: list[dict] = []
    for _, row in cohort.excluded.iterrows():
        records.append({**row.to_dict(), "source": row["path"], "status": "failed", "step": "load"})
    table = cohort.table
    if config.input.inside_root and cohort.source is not None:
        outside = _outside_root(cohort)
        records += outside
        skip = {(r["subject"], r["session"]) for r in outside}
        table = table[[(s, ses) not in skip for s, ses in zip(table["subject"], table["session"])]]
    rows = [r.to_dict() for _, r in table.iterrows()]
    log.info("preprocess: %d images (%d refused before work) -> %s", len(rows), len(records), out)

    records += map_rows(
        preprocess_image,
        rows,
        config,
        str(out),
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="preprocess",
    )

    result_table = pd.DataFrame(records)
    result_table = result_table.sort_values(["subject", "session"]).reset_index(drop=True)
    failures = result_table.loc[result_table["status"] != "ok", [c for c in FAILURE_COLUMNS if c in result_table]]
    write_table(out / "preprocessed.tsv", result_table)
    write_table(out / "failures.tsv", failures.reindex(columns=FAILURE_COLUMNS))
    write_json(
        out / "dataset_description.json",
        {
            "Name": "mriharmony preprocessed T1w",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "mriharmony-preprocess", "Version": __version__}],
            "SourceDatasets": [{"URL": str(cohort.source)}],
            "SpatialReference": TEMPLATE_NAME,
            "Resolutions": {
                "2": "2 mm, the 91x109x91 MNI box",
                str(config.output.cube_size): f"the box padded to 109^3 and resized to {config.output.cube_size}^3",
            },
            "Config": config.to_dict(),
            "Software": software_versions(),
        },
    )
    seconds = time.perf_counter() - start
    n_ok = int((result_table["status"] == "ok").sum())
    n_qc = int((result_table["status"] == "qc_failed").sum())
    log.info(
        "preprocess: %d ok (%d resumed), %d failed, %d stopped by the QC gate in %.1f s",
        n_ok,
        int(result_table.get("resumed", pd.Series(dtype=bool)).fillna(False).astype(bool).sum()),
        len(failures) - n_qc,
        n_qc,
        seconds,
    )
    return PreprocessResult(out=out, table=result_table, failures=failures.reset_index(drop=True), seconds=seconds)


def read_preprocessed(out: str | Path, *, only_ok: bool = True, include_qc_failed: bool | None = None) -> pd.DataFrame:
    """An image table: ``preprocessed.tsv`` (from :func:`run_preprocess`) or ``harmonized.tsv`` (from
    ``mriharmony harmonize``) in the folder ``out``, or a table file, with absolute paths.

    By default only rows with status ok: images that failed, and images the QC gate stopped (``qc_failed``),
    are left out; ``include_qc_failed=True`` keeps the latter (their outputs exist; use with care). ``None``
    (the default) reads the choice from the environment variable ``MRIHARMONY_INCLUDE_QC_FAILED`` (``1``: keep).
    """
    path = Path(out)
    if path.is_dir():
        found = [path / name for name in ("preprocessed.tsv", "harmonized.tsv") if (path / name).exists()]
        if not found:
            raise FileNotFoundError(
                f"{path}: no preprocessed.tsv or harmonized.tsv (run `mriharmony preprocess` first)"
            )
        path = found[0]
    elif not path.exists():
        raise FileNotFoundError(f"{path} does not exist (expected a preprocessing or harmonization folder)")
    table = pd.read_csv(
        path, sep="\t", dtype={"subject": str, "session": str}, keep_default_na=False, na_values=["n/a"]
    )
    table["session"] = table["session"].fillna("")
    table = resolve_paths(table, path.parent)
    missing = {"subject", "site", "status", "image_cube"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected the table of `mriharmony preprocess`")
    if not only_ok:
        return table
    if include_qc_failed is None:
        include_qc_failed = os.environ.get(INCLUDE_QC_FAILED_ENV, "") in ("1", "true", "yes")
    keep = {"ok", "qc_failed"} if include_qc_failed else {"ok"}
    return table[table["status"].isin(keep)].reset_index(drop=True)
