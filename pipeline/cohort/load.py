"""Load a cohort from a BIDS folder or a manifest table into the canonical cohort table.

Both loaders return a :class:`Cohort`: the valid rows in canonical form, plus the rows whose image
is missing or unreadable (``excluded``, with the reason), so that one bad file never stops a
cohort. Problems in the table itself raise :class:`CohortValidationError`, all at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from pipeline.atomic import write_table
from pipeline.cohort.schema import KEY, REQUIRED_COLUMNS, canonical_diagnosis, canonical_sex, strip_prefix
from pipeline.cohort.validate import CohortProblem, CohortValidationError, validate_table

__all__ = ["Cohort", "load_cohort", "load_bids", "load_manifest", "write_cohort", "BadFiles"]

COLUMN_ORDER = ("subject", "session", "site", "age", "sex", "diagnosis", "path")
EXCLUDED_COLUMNS = ("subject", "session", "site", "path", "reason")


@dataclass
class Cohort:
    """A validated cohort.

    Attributes:
        table: one row per usable image, canonical columns first (see ``pipeline.cohort.schema``).
        excluded: rows whose image could not be used, with a ``reason`` column.
        source: the BIDS folder or manifest file the cohort came from.
    """

    table: pd.DataFrame
    excluded: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(EXCLUDED_COLUMNS)))
    source: Path | None = None

    def __len__(self) -> int:
        return len(self.table)

    @property
    def subjects(self) -> list[str]:
        return sorted(self.table["subject"].unique())


BadFiles = Literal["exclude", "raise"]


def load_cohort(source: str | Path, *, bad_files: BadFiles = "exclude", t1w_glob: str = "*_T1w.nii*") -> Cohort:
    """Load a cohort from a BIDS folder (with participants.tsv) or a manifest .csv/.tsv file.

    Args:
        source: BIDS dataset folder, or manifest table (columns subject, session (optional), site,
            age, sex, diagnosis, path; relative paths are relative to the manifest's folder).
        bad_files: ``"exclude"`` moves rows with a missing / unreadable / non-3D image to
            ``Cohort.excluded``; ``"raise"`` treats them as errors.
        t1w_glob: file pattern of the T1w images inside ``anat/`` (BIDS only), for example
            ``"*_run-1_T1w.nii.gz"`` to pick one run when sessions hold several.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        CohortValidationError: the table has problems; the message lists all of them.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(
            f"cohort source {source} does not exist (expected a BIDS folder or a .csv/.tsv manifest)"
        )
    if source.is_dir():
        return load_bids(source, bad_files=bad_files, t1w_glob=t1w_glob)
    return load_manifest(source, bad_files=bad_files)


def _read_table(path: Path) -> pd.DataFrame:
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=["n/a", "NA", ""])


def _finish(table: pd.DataFrame, problems: list[CohortProblem], source: Path, bad_files: BadFiles) -> Cohort:
    """Raise on table problems, split off image problems, canonicalise the values."""
    if bad_files not in ("exclude", "raise"):
        raise ValueError(f"bad_files must be 'exclude' or 'raise', got {bad_files!r}")
    fatal = [p for p in problems if p.kind == "table" or bad_files == "raise"]
    if fatal:
        raise CohortValidationError(fatal)
    bad_rows = {p.row_index: p for p in problems if p.kind == "image"}
    excluded = pd.DataFrame(
        [
            {
                "subject": table.at[i, "subject"],
                "session": table.at[i, "session"],
                "site": table.at[i, "site"],
                "path": table.at[i, "path"],
                "reason": p.found,
            }
            for i, p in bad_rows.items()
        ],
        columns=list(EXCLUDED_COLUMNS),
    )
    good = table.drop(index=list(bad_rows)).copy()
    good["subject"] = good["subject"].astype(str).str.strip()
    good["session"] = good["session"].fillna("").astype(str).str.strip()
    good["site"] = good["site"].astype(str).str.strip()
    good["age"] = pd.to_numeric(good["age"]).astype(float)
    good["sex"] = good["sex"].map(canonical_sex)
    good["diagnosis"] = good["diagnosis"].map(canonical_diagnosis)
    # absolute but not resolved: symlinked datasets (datalad, git-annex) keep their own paths
    good["path"] = good["path"].map(lambda p: os.path.abspath(p))
    extra = [c for c in good.columns if c not in COLUMN_ORDER]
    good = good[list(COLUMN_ORDER) + extra].sort_values(list(KEY)).reset_index(drop=True)
    return Cohort(table=good, excluded=excluded.reset_index(drop=True), source=source)


def load_manifest(path: str | Path, *, bad_files: BadFiles = "exclude") -> Cohort:
    """Load a manifest CSV/TSV (see :func:`load_cohort`)."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".tsv"):
        raise CohortValidationError(
            [CohortProblem(str(path), None, None, f"a '{path.suffix}' file", "a BIDS folder or a .csv / .tsv manifest")]
        )
    table = _read_table(path)
    table.columns = [c.strip() for c in table.columns]
    if "session" not in table.columns:
        table["session"] = ""
    table["session"] = table["session"].fillna("").map(lambda s: strip_prefix(s, "ses-"))
    if "subject" in table.columns:
        table["subject"] = table["subject"].map(lambda s: strip_prefix(s, "sub-") if pd.notna(s) else s)
    if "path" in table.columns:
        table["path"] = table["path"].map(
            lambda p: str(p if Path(p).is_absolute() else (path.parent / p)) if pd.notna(p) and str(p).strip() else p
        )
    problems = validate_table(table, str(path))
    return _finish(table, problems, path, bad_files)


def load_bids(root: str | Path, *, bad_files: BadFiles = "exclude", t1w_glob: str = "*_T1w.nii*") -> Cohort:
    """Load a BIDS dataset: participants.tsv (+ sub-*/sub-*_sessions.tsv) and the T1w images.

    Session-level columns in ``sessions.tsv`` (for example ``site`` or ``age`` of traveling
    subjects scanned at several sites) override the participant-level ones.
    """
    root = Path(root)
    participants_file = root / "participants.tsv"
    if not participants_file.exists():
        raise CohortValidationError(
            [
                CohortProblem(
                    str(participants_file),
                    None,
                    None,
                    "no such file",
                    "a participants.tsv with participant_id, age, sex, diagnosis, site",
                )
            ]
        )
    participants = _read_table(participants_file)
    if "participant_id" not in participants.columns:
        raise CohortValidationError(
            [
                CohortProblem(
                    str(participants_file), None, "participant_id", "no such column", "a 'participant_id' column"
                )
            ]
        )
    participants["_line"] = np.arange(len(participants)) + 2
    participants["subject"] = participants["participant_id"].map(lambda s: strip_prefix(s, "sub-"))
    known = set(participants["subject"])

    problems: list[CohortProblem] = []
    rows: list[dict] = []
    for subject_dir in sorted(root.glob("sub-*")):
        if not subject_dir.is_dir():
            continue
        subject = strip_prefix(subject_dir.name, "sub-")
        sessions = _read_sessions(subject_dir, problems)
        session_dirs = sorted(d for d in subject_dir.glob("ses-*") if d.is_dir()) or [None]
        for session_dir in session_dirs:
            session = strip_prefix(session_dir.name, "ses-") if session_dir is not None else ""
            anat = (session_dir or subject_dir) / "anat"
            images = sorted(anat.glob(t1w_glob))
            if not images:
                continue
            if len(images) > 1:
                problems.append(
                    CohortProblem(
                        str(anat),
                        None,
                        None,
                        f"{len(images)} T1w images ({', '.join(i.name for i in images)})",
                        "one T1w image per session; choose one with t1w_glob, e.g. '*_run-1_T1w.nii.gz'",
                    )
                )
                continue
            if subject not in known:
                problems.append(
                    CohortProblem(
                        str(participants_file),
                        None,
                        "participant_id",
                        f"no row for 'sub-{subject}'",
                        f"a row for every subject folder ({images[0]})",
                    )
                )
                continue
            row = {"subject": subject, "session": session, "path": str(images[0])}
            row.update(sessions.get(session, {}))
            rows.append(row)

    images = pd.DataFrame(
        rows,
        columns=["subject", "session", "path"] + sorted({k for r in rows for k in r} - {"subject", "session", "path"}),
    )
    # participant-level metadata first, then session-level values where given
    meta = participants.drop(columns=["participant_id"])
    table = images.merge(meta, on="subject", how="right", suffixes=("_ses", ""))
    for col in [c[:-4] for c in table.columns if c.endswith("_ses")]:
        table[col] = table[f"{col}_ses"].where(table[f"{col}_ses"].notna(), table[col])
        table = table.drop(columns=[f"{col}_ses"])
    for col in REQUIRED_COLUMNS:
        if col not in table.columns and col != "path":
            problems.append(
                CohortProblem(
                    str(participants_file),
                    None,
                    col,
                    "no such column",
                    f"a column '{col}' in participants.tsv (or in sessions.tsv)",
                )
            )
    no_image = table["path"].isna()
    for _, row in table[no_image].iterrows():
        problems.append(
            CohortProblem(
                str(participants_file),
                int(row["_line"]),
                "participant_id",
                f"'sub-{row['subject']}' has no T1w image matching anat/{t1w_glob}",
                "an image for every participant listed",
                kind="table",
            )
        )
    table = table[~no_image].reset_index(drop=True)
    table["session"] = table["session"].fillna("")
    if any(p.column in REQUIRED_COLUMNS and p.line is None for p in problems):
        raise CohortValidationError(problems)
    lines = table.pop("_line")
    problems += validate_table(table, str(participants_file), lines=lines)
    return _finish(table, problems, root, bad_files)


def _read_sessions(subject_dir: Path, problems: list[CohortProblem]) -> dict[str, dict]:
    """Read sub-X/sub-X_sessions.tsv into {session label: {column: value}}."""
    path = subject_dir / f"{subject_dir.name}_sessions.tsv"
    if not path.exists():
        return {}
    table = _read_table(path)
    if "session_id" not in table.columns:
        problems.append(CohortProblem(str(path), None, "session_id", "no such column", "a 'session_id' column"))
        return {}
    out: dict[str, dict] = {}
    for _, row in table.iterrows():
        values = {k: v for k, v in row.items() if k != "session_id" and pd.notna(v)}
        out[strip_prefix(row["session_id"], "ses-")] = values
    return out


def write_cohort(cohort: Cohort | pd.DataFrame, path: str | Path) -> Path:
    """Write the cohort table as a manifest TSV that :func:`load_manifest` reads back."""
    table = cohort.table if isinstance(cohort, Cohort) else cohort
    return write_table(path, table)
