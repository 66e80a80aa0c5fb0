"""Atomic file writes: write to a temporary file in the target folder, then rename.

A killed run therefore never leaves a half-written output, and a re-run can trust that any
file it finds is complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import nibabel as nib
import numpy as np
import pandas as pd

__all__ = ["atomic_path", "write_text", "write_json", "read_json_numbers", "write_yaml", "write_table", "save_nifti"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    Args:
        path: final destination. Parent folders are created.
        suffix: suffix of the temporary file (default: the full suffix of ``path``, so that
            writers that choose their format from the extension, like nibabel, still work).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the usual umask mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (JSON has no NaN: ``NaN`` breaks strict
    parsers such as JavaScript's ``JSON.parse`` and jq)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented, strict JSON atomically (numpy scalars and arrays allowed; NaN and
    infinities become ``null``)."""
    return write_text(path, json.dumps(_finite(data), indent=2, default=_json_default, allow_nan=False) + "\n")


def _nan_for_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _nan_for_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_for_none(v) for v in obj]
    return float("nan") if obj is None else obj


def read_json_numbers(path: str | os.PathLike) -> Any:
    """Read a JSON file of results with every ``null`` as NaN, as the number :func:`write_json` wrote it for
    (the text formatters print NaN as "nan"; a null would stop them)."""
    return _nan_for_none(json.loads(Path(path).read_text()))


def write_yaml(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as YAML atomically (key order kept)."""
    import yaml

    return write_text(path, yaml.safe_dump(json.loads(json.dumps(data, default=_json_default)), sort_keys=False))


def write_table(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    """Write a table atomically: tab-separated for ``.tsv``, comma-separated otherwise.

    Missing values are written as ``n/a`` (the BIDS convention). File paths (the columns of
    :data:`pipeline.table_paths.PATH_COLUMNS`) are stored relative to the table's folder when inside it,
    absolute otherwise; :func:`pipeline.table_paths.read_table` resolves them again.
    """
    from pipeline.table_paths import relative_paths

    path = Path(path)
    sep = "\t" if path.suffix == ".tsv" else ","
    table = relative_paths(table, path.parent)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep=sep, index=False, na_rep="n/a")
    return path


def save_nifti(path: str | os.PathLike, img: nib.Nifti1Image) -> Path:
    """Save a NIfTI image atomically."""
    with atomic_path(path) as tmp:
        nib.save(img, tmp)
    return Path(path)
