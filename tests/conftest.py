"""Shared fixtures: small phantom cohorts generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.phantom import PhantomSpec, generate_phantom

SMALL_SPEC = PhantomSpec(sites=("adni", "oasis", "ukb"), subjects_per_site=12, traveling=2, resolution=4.0, seed=0)


@pytest.fixture(scope="session")
def small_phantom(tmp_path_factory: pytest.TempPathFactory):
    """3 sites x 12 subjects + 2 traveling subjects at 4 mm (about 5 s)."""
    return generate_phantom(tmp_path_factory.mktemp("phantom") / "bids", SMALL_SPEC, progress=False)


@pytest.fixture(scope="session")
def small_bids(small_phantom) -> Path:
    return small_phantom.root
