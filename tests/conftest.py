"""Shared fixtures: small phantom cohorts generated once per test session.

The suites run on both cores with pytest-xdist (``-n 2 --dist loadfile``, see the Makefile): each worker is a
process with its own session, so the expensive fixtures (preprocessed phantoms, the tiny demo) are built once
into a folder both workers share, under a file lock (:func:`shared_folder`), and each worker runs torch on one
thread so that two workers fill the two cores without oversubscribing them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest
from filelock import FileLock

from pipeline.phantom import PhantomSpec, generate_phantom


def pytest_configure(config: pytest.Config) -> None:
    """Other floating-point paths on demand, to find tests whose verdict depends on the CPU's rounding.

    ``MRIHARMONY_TEST_THREADS=1`` runs torch single-threaded (other reduction orders);
    ``MRIHARMONY_TEST_DETERMINISTIC=1`` turns on ``torch.use_deterministic_algorithms``. Together with
    ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` (other vector kernels, inherited by subprocesses)
    an AVX-512 machine computes like an AVX2 one. See docs in README "Tests".
    """
    import os

    import torch

    threads = os.environ.get("MRIHARMONY_TEST_THREADS")
    if threads is None and os.environ.get("PYTEST_XDIST_WORKER"):
        # one thread per xdist worker: two workers on two cores; subprocesses (bundle runs) inherit it
        threads = "1"
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, threads)
    if threads:
        torch.set_num_threads(int(threads))
    if os.environ.get("MRIHARMONY_TEST_DETERMINISTIC"):
        torch.use_deterministic_algorithms(True, warn_only=True)


def shared_folder(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder ``build`` fills once per test run, shared by the xdist workers (a file lock; the first worker
    builds, the others wait and reuse); without xdist, a fresh folder of this session."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    folder = tmp_path_factory.getbasetemp().parent / f"shared-{name}"
    done = folder / ".built"
    with FileLock(str(folder) + ".lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder


@contextmanager
def apt_lock() -> Iterator[None]:
    """One apt-get at a time on this machine (the browser and Colin27 fixtures may run in two workers)."""
    with FileLock(os.path.join(tempfile.gettempdir(), "mriharmony-tests-apt.lock")):
        yield


SMALL_SPEC = PhantomSpec(sites=("adni", "oasis", "ukb"), subjects_per_site=12, traveling=2, resolution=4.0, seed=0)


@pytest.fixture(scope="session")
def small_phantom(tmp_path_factory: pytest.TempPathFactory):
    """3 sites x 12 subjects + 2 traveling subjects at 4 mm (about 5 s)."""
    return generate_phantom(tmp_path_factory.mktemp("phantom") / "bids", SMALL_SPEC, progress=False)


@pytest.fixture(scope="session")
def small_bids(small_phantom) -> Path:
    return small_phantom.root


CONTRAST_SITES = Path(__file__).parent / "data" / "contrast_sites.yaml"


@pytest.fixture(scope="session")
def contrast_pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A preprocessed two-site phantom whose sites differ strongly in contrast (about 2.5 min).

    Sites ``dark`` and ``bright`` (tests/data/contrast_sites.yaml: controls aged 40-90), 20 subjects
    each plus 6 traveling subjects, 4 mm, age effect x3 (for the brain-age learning test),
    preprocessed with the phantom's true brain masks (skull stripping is tested elsewhere); returns
    the run folder holding ``preprocessed/`` and ``splits.tsv``.
    """
    from pipeline.experiments.downstream_learning import prepare_phantom
    from pipeline.phantom import Effects

    spec = PhantomSpec(
        sites=("dark", "bright"),
        subjects_per_site=20,
        traveling=6,
        resolution=4.0,
        seed=0,
        profiles=str(CONTRAST_SITES),
        effects=Effects(age=3.0),
    )
    return shared_folder(
        tmp_path_factory,
        "contrast_pair",
        lambda run: prepare_phantom(run, spec, fractions=(0.7, 0.15, 0.15), workers=2),
    )


MANY_SITES = Path(__file__).parent / "data" / "many_sites.yaml"


@pytest.fixture(scope="session")
def many_sites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A preprocessed four-site phantom for many-to-one harmonization (about 2 min): the reference ``plain``, the
    source sites ``dark`` and ``deep`` and ``dusk``, unseen in training, whose contrast lies between theirs
    (tests/data/many_sites.yaml: contrast only); 10 subjects each plus 6 traveling subjects scanned at every site,
    4 mm, true brain masks; returns the run folder holding ``preprocessed/`` and ``splits.tsv``."""
    from pipeline.experiments.downstream_learning import prepare_phantom

    spec = PhantomSpec(
        sites=("plain", "dark", "deep", "dusk"),
        subjects_per_site=10,
        traveling=6,
        resolution=4.0,
        seed=2,
        profiles=str(MANY_SITES),
    )
    return shared_folder(
        tmp_path_factory, "many_sites", lambda run: prepare_phantom(run, spec, fractions=(0.7, 0.15, 0.15), workers=2)
    )


AD_SITES = Path(__file__).parent / "data" / "ad_sites.yaml"


@pytest.fixture(scope="session")
def ad_pair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A preprocessed two-site phantom of CN and AD subjects for the classifier bundle (about 90 s).

    Sites ``clinica`` and ``clinicb`` (tests/data/ad_sites.yaml: half CN, half AD, ages 60-90), 20
    subjects each, 4 mm, AD effect x3 (exaggerated, for the learning test), splits 60/20/20, true brain
    masks; returns the run folder holding ``bids/``, ``preprocessed/`` and ``splits.tsv``.
    """
    from pipeline.experiments.downstream_learning import prepare_phantom
    from pipeline.phantom import Effects

    spec = PhantomSpec(
        sites=("clinica", "clinicb"),
        subjects_per_site=20,
        traveling=0,
        resolution=4.0,
        seed=1,
        profiles=str(AD_SITES),
        effects=Effects(ad=3.0),
    )
    return shared_folder(
        tmp_path_factory, "ad_pair", lambda run: prepare_phantom(run, spec, fractions=(0.6, 0.2, 0.2), workers=2)
    )


TINY_DEMO = [
    "--set",
    "splits.fractions=[0.7,0.15,0.15]",  # the only AD subject lands in train: AD stages run
    "--set",
    "phantom.subjects_per_site=3",
    "--set",
    "phantom.traveling=1",
    "--set",
    "phantom.resolution=4",
    "--set",
    "harmonization.epochs=1",
    "--set",
    "evaluation.resamples=50",
    "--set",
    "evaluation.split=all",  # 1 test subject per site at this size: too few for a site probe
    "--set",
    "benchmark.bundle.epochs=1",
    "--set",
    "benchmark.harmonizer_seeds=2",
    "--set",
    "downstream.brain_age.epochs=1",
    "--set",
    "downstream.ad_classification.epochs=1",
    "--set",
    "downstream.brain_age.seeds=2",
    "--set",
    "augmentation.classifier.epochs=1",
    "--set",
    "augmentation.generators.translation.epochs=1",
    "--set",
    "augmentation.generators.conditional.epochs=1",
    "--set",
    "augmentation.bootstrap=20",
]


def mriharmony_exe() -> list[str]:
    """The installed `mriharmony` script of this interpreter's environment (or the module)."""
    found = shutil.which("mriharmony", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "pipeline.cli"]


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """README command 1 at tiny scale (3 subjects per site, 4 mm, one epoch everywhere), run once per
    session through the CLI: the run folder and the finished process (about 3 min)."""
    args = mriharmony_exe() + ["demo", "--out", "RUN", "--quiet", *TINY_DEMO]

    def build(folder: Path) -> None:
        result = subprocess.run(
            [str(folder / "run") if a == "RUN" else a for a in args], capture_output=True, text=True, timeout=1200
        )
        (folder / "process.json").write_text(
            json.dumps({"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr})
        )

    folder = shared_folder(tmp_path_factory, "demo", build)
    done = json.loads((folder / "process.json").read_text())
    result = subprocess.CompletedProcess(args, done["returncode"], done["stdout"], done["stderr"])
    assert result.returncode == 0, result.stderr[-5000:]
    return folder / "run", result


@pytest.fixture(scope="session")
def colin27():
    """Colin27, a real head (Debian's mricron-data), fetched by scripts/fetch_colin27.sh into the cache when
    missing, as the browser test fetches Chromium; skipped only where apt is absent."""
    from pipeline.phantom.real_head import default_cache, find_colin27

    try:
        return find_colin27()
    except FileNotFoundError:
        if not (shutil.which("apt-get") and shutil.which("dpkg")):
            pytest.skip("Colin27 needs Debian's apt-get and dpkg (scripts/fetch_colin27.sh); not on this machine")
        script = Path(__file__).resolve().parents[1] / "scripts" / "fetch_colin27.sh"
        with apt_lock():
            subprocess.run(["bash", str(script), str(default_cache())], check=True, timeout=900)
        return find_colin27()
