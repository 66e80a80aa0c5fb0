"""--scheduler: preprocess through a separate `dask scheduler` and two `dask worker` processes on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.cohort import load_cohort


def _dask(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "dask"
    return subprocess.Popen([str(exe), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd)


@pytest.fixture()
def cluster(tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1", "OMP_NUM_THREADS": "1"}
    procs = [
        _dask(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(scheduler_file),
            env=env,
        )
    ]
    deadline = time.time() + 60
    while not scheduler_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert scheduler_file.exists(), "dask scheduler did not start"
    workers_cwd = tmp_path / "workers_cwd"  # as on another node: the workers' working folder is not the client's
    workers_cwd.mkdir()
    for _ in range(2):
        procs.append(
            _dask(
                "worker",
                "--scheduler-file",
                str(scheduler_file),
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                env=env,
                cwd=workers_cwd,
            )
        )
    address = json.loads(scheduler_file.read_text())["address"]
    from dask.distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
    yield address
    for proc in procs[::-1]:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)


def test_preprocess_on_existing_scheduler(small_bids, tmp_path, cluster, monkeypatch):
    """Workers in another working folder, a relative --out: the outputs land under the client's folder, the
    table stores them relative to itself and reads back from anywhere."""
    from pipeline.preprocess.batch import read_preprocessed

    rows = load_cohort(small_bids).table.head(2)
    manifest = small_bids / ".." / "two.tsv"
    rows.to_csv(manifest, sep="\t", index=False)
    launch = tmp_path / "launch"
    launch.mkdir()
    monkeypatch.chdir(launch)
    args = ["--quiet", "--set", "output.qc_png=false"]
    assert main(["preprocess", str(manifest), "--out", "remote", "--scheduler", cluster, *args]) == 0
    assert main(["preprocess", str(manifest), "--out", "local", "--workers", "0", *args]) == 0
    assert not (tmp_path / "workers_cwd" / "remote").exists()
    stored = pd.read_csv(launch / "remote" / "preprocessed.tsv", sep="\t")
    assert all(not str(p).startswith("/") and str(p).startswith("sub-") for p in stored["image_cube"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    a, b = read_preprocessed(launch / "remote"), read_preprocessed(launch / "local")
    assert list(a["status"]) == ["ok", "ok"] and list(a["subject"]) == list(b["subject"])
    for pa, pb, mask in zip(a["image_cube"], b["image_cube"], a["mask_cube"]):
        assert Path(pa).is_file() and Path(pa).is_relative_to(launch / "remote")
        x, y = nib.load(pa).get_fdata(), nib.load(pb).get_fdata()
        inside = nib.load(mask).get_fdata() > 0
        # same chain and seed; thread counts differ (1 per worker vs the machine's), so allow float noise;
        # compared inside the brain (the zero background would flatter the correlation)
        assert np.corrcoef(x[inside], y[inside])[0, 1] > 0.99
