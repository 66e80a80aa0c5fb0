"""Validate a cohort table before any work starts, reporting every problem at once.

Problems come in two kinds:

* table problems (a missing column, a duplicate key, an age that is not a number, an unknown
  diagnosis): the table must be fixed, so loading raises :class:`CohortValidationError`;
* image problems (a missing, unreadable or non-3D file): one bad subject must not stop a cohort,
  so the loader can move such rows to a failure table instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from pipeline.cohort.schema import (
    AGE_RANGE,
    DIAGNOSES,
    REQUIRED_COLUMNS,
    SEXES,
    canonical_diagnosis,
    canonical_sex,
)

__all__ = ["CohortProblem", "CohortValidationError", "validate_table", "check_image_header"]


@dataclass(frozen=True)
class CohortProblem:
    """One problem: where it is (file, line, column), what was found and what was expected."""

    file: str
    line: int | None
    column: str | None
    found: str
    expected: str
    kind: str = "table"  # "table" or "image"
    row_index: int | None = None  # index of the row in the table, for image problems

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f", line {self.line}"
        if self.column is not None:
            where += f", column '{self.column}'"
        return f"{where}: found {self.found}; expected {self.expected}"


class CohortValidationError(ValueError):
    """Raised with the full list of problems of a cohort table."""

    def __init__(self, problems: list[CohortProblem]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"cohort table has {len(self.problems)} problem(s):\n{lines}")


def _show(value: object) -> str:
    """How a found value appears in a message: quoted, or 'an empty value' for blanks and n/a."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip():
        return "an empty value (n/a)"
    return repr(str(value))


def check_image_header(path: str | Path) -> str | None:
    """Return why ``path`` is not a readable 3D NIfTI image, or None when its header is fine.

    Only the header is read, so this is cheap even for thousands of files.
    """
    path = Path(path)
    if not path.exists():
        return "file does not exist"
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for corrupt files
        return f"not a readable NIfTI image ({type(exc).__name__}: {exc})"
    shape = tuple(int(s) for s in img.shape)
    spatial = shape[:3] if len(shape) == 4 and shape[3] == 1 else shape
    if len(spatial) != 3:
        return f"image has shape {shape}; expected a 3D volume"
    if min(spatial) < 2:
        return f"image has shape {shape}; expected at least 2 voxels along each axis"
    return None


def validate_table(
    table: pd.DataFrame,
    source: str,
    *,
    lines: pd.Series | None = None,
    check_files: bool = True,
) -> list[CohortProblem]:
    """Check a cohort table in canonical form and return all problems found.

    Args:
        table: cohort table with (at least) the columns of :data:`REQUIRED_COLUMNS`; ``sex`` and
            ``diagnosis`` may still hold aliases (they are checked through the alias maps).
        source: the file the rows came from, used in messages.
        lines: line number in ``source`` of each row (default: header on line 1, row i on i + 2).
        check_files: also read the header of every image (image problems).

    Returns:
        The problems, table problems first; an empty list when the table is valid.
    """
    problems: list[CohortProblem] = []
    if lines is None:
        lines = pd.Series(np.arange(len(table)) + 2, index=table.index)

    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    for col in missing:
        problems.append(
            CohortProblem(
                source, None, col, "no such column", f"a column '{col}' (required: {', '.join(REQUIRED_COLUMNS)})"
            )
        )

    def add(idx: object, col: str, found: str, expected: str, kind: str = "table") -> None:
        problems.append(CohortProblem(source, int(lines[idx]), col, found, expected, kind, int(idx)))

    present = set(table.columns)
    for idx, row in table.iterrows():
        if "subject" in present:
            subject = str(row["subject"]).strip() if pd.notna(row["subject"]) else ""
            if not subject or "/" in subject or " " in subject:
                add(idx, "subject", _show(row["subject"]), "a non-empty label without spaces or '/'")
        if "site" in present:
            site = str(row["site"]).strip() if pd.notna(row["site"]) else ""
            if not site or site.lower() == "n/a":
                add(idx, "site", _show(row["site"]), "a non-empty site name")
        if "age" in present:
            age = pd.to_numeric(pd.Series([row["age"]]), errors="coerce").iloc[0]
            if pd.isna(age):
                add(idx, "age", _show(row["age"]), "a number of years")
            elif not AGE_RANGE[0] <= float(age) <= AGE_RANGE[1]:
                add(idx, "age", _show(row["age"]), f"an age within {AGE_RANGE[0]:g}-{AGE_RANGE[1]:g} years")
        if "sex" in present and canonical_sex(row["sex"]) is None:
            add(idx, "sex", _show(row["sex"]), f"one of {', '.join(SEXES)} (or male/female)")
        if "diagnosis" in present and canonical_diagnosis(row["diagnosis"]) is None:
            add(
                idx,
                "diagnosis",
                _show(row["diagnosis"]),
                f"one of {', '.join(DIAGNOSES)} (aliases: NC/HC/control -> CN, EMCI/LMCI -> MCI, dementia -> AD)",
            )

    if "subject" in present:
        session = table["session"].fillna("") if "session" in present else pd.Series("", index=table.index)
        key = table["subject"].astype(str) + "\x00" + session.astype(str)
        for idx in table.index[key.duplicated(keep="first")]:
            first = table.index[(key == key[idx]).to_numpy()][0]
            ses = f", session '{session[idx]}'" if session[idx] else ""
            add(
                idx,
                "subject",
                f"subject '{table.at[idx, 'subject']}'{ses} again (first on line {int(lines[first])})",
                "each (subject, session) once",
            )

    if check_files and "path" in present:
        for idx, row in table.iterrows():
            if pd.isna(row["path"]) or not str(row["path"]).strip():
                add(idx, "path", "an empty path", "the path of a T1w NIfTI image")
                continue
            reason = check_image_header(row["path"])
            if reason is not None:
                add(idx, "path", f"{row['path']}: {reason}", "a readable 3D NIfTI image", kind="image")
    return problems
