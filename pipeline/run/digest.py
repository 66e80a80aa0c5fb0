"""Digests of files and settings: what a stage records to tell whether its inputs changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pipeline.atomic import _finite, _json_default

__all__ = ["file_sha256", "settings_digest", "normalised"]


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB chunks.

    Examples:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(delete=False) as handle:
        ...     _ = handle.write(b"abc")
        >>> file_sha256(handle.name)[:12]
        'ba7816bf8f01'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def normalised(settings: Any) -> Any:
    """``settings`` as :func:`pipeline.atomic.write_json` stores them (tuples as lists, numpy as Python,
    NaN as null), so that a record read back compares equal to a fresh one.

    Examples:
        >>> normalised({"size": (32, 32), "lr": float("nan")})
        {'size': [32, 32], 'lr': None}
    """
    return _finite(json.loads(json.dumps(_finite(settings), default=_json_default)))


def settings_digest(settings: Any, length: int = 16) -> str:
    """A short hash of JSON-able settings, independent of key order.

    Examples:
        >>> settings_digest({"a": 1, "b": [2, 3]}) == settings_digest({"b": (2, 3), "a": 1})
        True
    """
    text = json.dumps(normalised(settings), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
