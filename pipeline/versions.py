"""Installed versions of the packages a result depends on, for provenance (sidecars, the report)."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Sequence

__all__ = ["package_versions"]


def package_versions(packages: Sequence[str]) -> dict[str, str]:
    """Python's version and each package's installed version ("not installed" when absent)."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
