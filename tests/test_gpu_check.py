"""scripts/gpu_check.sh stays runnable: its CPU dry run passes every step and writes the JSON the GPU session
reports from; a failing step makes the exit status non-zero."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _check(*args: str) -> tuple[int, dict, str]:
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh"), "--dry-run", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    out = Path(args[args.index("--out") + 1])
    return proc.returncode, json.loads((out / "gpu_check.json").read_text()), proc.stdout + proc.stderr


@pytest.mark.slow
def test_dry_run_passes_every_step_with_figures(tmp_path):
    rc, report, log = _check("--out", str(tmp_path))
    assert rc == 0 and report["ok"], log[-4000:]
    steps = report["steps"]
    assert list(steps) == [
        "environment",
        "cyclegan_trainer",
        "conditional_gan_trainer",
        "bundles",
        "torchrun_nccl",
        "speed",
    ]
    assert steps["environment"]["dry_run"] is True
    for trainer in ("cyclegan_trainer", "conditional_gan_trainer"):
        assert set(steps[trainer]) >= {"fp32", "float16", "bfloat16", "channels_last_3d"}
    assert set(steps["bundles"]["bundle_seconds"]) == {
        "cyclegan_train",
        "cyclegan_inference",
        "brain_age_train",
        "brain_age_inference",
        "ad_classification_train",
        "synthetic_train",
    }
    assert steps["torchrun_nccl"]["backend"] == "gloo" and steps["torchrun_nccl"]["epoch_completed"]
    rows = steps["speed"]["training"]
    assert {(r["batch"], r["precision"]) for r in rows} == {(1, "fp32"), (1, "bfloat16"), (2, "fp32"), (2, "bfloat16")}
    assert all(r["steps_per_second"] > 0 for r in rows)
    assert all(steps["speed"]["inference"][m]["volumes_per_second"] > 0 for m in ("fp32", "bfloat16"))


def test_a_failing_step_fails_the_check(tmp_path):
    rc, report, _ = _check(
        "--out", str(tmp_path), "--only", "environment,conditional_gan_trainer", "--break", "conditional_gan_trainer"
    )
    assert rc == 1 and not report["ok"] and report["failed"] == ["conditional_gan_trainer"]
    assert report["steps"]["environment"]["status"] == "ok"
    assert "deliberate failure" in report["steps"]["conditional_gan_trainer"]["error"]
