"""File paths inside tables: relative to the table's own folder on disk, absolute in memory.

The BIDS-derivatives habit: a table such as ``preprocessed.tsv`` names its images relative to the folder it
sits in (``sub-01/anat/...``), so the run folder can be moved, mounted elsewhere, or read from any working
folder, by a Slurm job started in ``$HOME`` or by a Dask worker on another node. Paths outside the table's
folder (the raw cohort, a checkpoint) are stored absolute. :func:`pipeline.atomic.write_table` stores every
table this way; readers call :func:`resolve_paths` (or :func:`read_table`) to get absolute paths back.

Example:
    >>> import pandas as pd
    >>> table = pd.DataFrame({"subject": ["01"], "image_cube": ["/runs/a/prep/sub-01/anat/x.nii.gz"]})
    >>> stored = relative_paths(table, "/runs/a/prep")
    >>> stored["image_cube"].tolist()
    ['sub-01/anat/x.nii.gz']
    >>> resolve_paths(stored, "/elsewhere/prep")["image_cube"].tolist()
    ['/elsewhere/prep/sub-01/anat/x.nii.gz']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["PATH_COLUMNS", "relative_paths", "resolve_paths", "read_table"]

#: The columns of the project's tables that hold file paths.
PATH_COLUMNS = frozenset(
    {
        "path",
        "source",
        "mask",
        "image",
        "image_2mm",
        "mask_2mm",
        "image_cube",
        "mask_cube",
        "mask_native",
        "transform",
        "qc",
        "sidecar",
        "source_image",
        "source_image_cube",
        "source_mask_cube",
        "checkpoint",
    }
)
_MISSING = {"", "n/a", "nan", "NaN", "None"}


def _is_value(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike)) and str(value) not in _MISSING


def relative_paths(table: pd.DataFrame, folder: str | os.PathLike) -> pd.DataFrame:
    """A copy of ``table`` whose absolute path cells inside ``folder`` are made relative to it.

    Absolute paths elsewhere stay absolute; relative cells are kept as written (the caller chose what they are
    relative to, e.g. the phantom's truth table names images relative to its BIDS root). So producers hold
    absolute paths in memory: the stages make their output folder absolute before any work.
    """
    root = os.path.abspath(folder)
    out = table.copy()
    for column in PATH_COLUMNS & set(out.columns):

        def store(value: Any) -> Any:
            if not _is_value(value):
                return value
            if not os.path.isabs(str(value)):
                return value
            absolute = os.path.normpath(str(value))
            inside = absolute == root or absolute.startswith(root + os.sep)
            return os.path.relpath(absolute, root) if inside else absolute

        out[column] = out[column].map(store)
    return out


def resolve_paths(table: pd.DataFrame, folder: str | os.PathLike) -> pd.DataFrame:
    """A copy of ``table`` whose relative path cells are joined to ``folder`` (made absolute)."""
    root = os.path.abspath(folder)
    out = table.copy()
    for column in PATH_COLUMNS & set(out.columns):
        out[column] = out[column].map(
            lambda v: v if not _is_value(v) or os.path.isabs(str(v)) else os.path.normpath(os.path.join(root, str(v)))
        )
    return out


def read_table(path: str | os.PathLike, **read_csv: Any) -> pd.DataFrame:
    """Read a table written by :func:`pipeline.atomic.write_table`, with its paths made absolute."""
    path = Path(path)
    sep = "\t" if path.suffix == ".tsv" else ","
    return resolve_paths(pd.read_csv(path, sep=sep, **read_csv), path.parent)
