"""The MONAI model-zoo's bundle checks, run on our bundles with the ``monai.bundle`` functions its CI calls.

Each bundle's test module trains the bundle one or two epochs on a tiny phantom, stages a copy of the
bundle folder with the trained ``models/`` (the state the model-zoo verifies), and calls
:func:`check_bundle`: required and preferred files, version and changelog, formatting of every JSON and
YAML file, ``verify_metadata`` against the shipped schema, ``verify_net_in_out``, ``ckpt_export`` with the
default arguments (the TorchScript module must give the eager network's output), and ``check_properties``
of the train and inference workflows.

``bundles/released.json`` records a content hash for every bundle version: a change to a bundle's files
without a new ``version`` and ``changelog`` entry fails :func:`check_version`. After bumping them, record
the new version's hash with ``python -m tests.bundles.model_zoo record``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
BUNDLES = REPO / "bundles"
RELEASED = BUNDLES / "released.json"
REQUIRED = (
    "configs/metadata.json",
    "configs/inference.yaml",
    "configs/train.yaml",
    "models/model.pt",
    "LICENSE",
    "docs/README.md",
)
PREFERRED = ("configs/multi_gpu_train.yaml", "configs/logging.conf", "docs/data_license.txt")
README_SECTIONS = (
    "Model Overview",
    "Data",
    "Training configuration",
    "Performance",
    "MONAI Bundle Commands",
    "References",
    "License",
)
_SKIP_SUFFIXES = (".pt", ".ts", ".pyc")


def bundle_hash(folder: Path) -> str:
    """SHA-256 over the bundle's own files (names and contents), trained weights left out."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix in _SKIP_SUFFIXES or "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def stage(name: str, trained_root: Path, tmp: Path) -> Path:
    """A copy of ``bundles/<name>`` holding the weights a training run wrote into ``trained_root/models``."""
    staged = tmp / name
    shutil.copytree(BUNDLES / name, staged)
    for path in (trained_root / "models").iterdir():
        if path.is_file():
            shutil.copy2(path, staged / "models" / path.name)
    return staged


def check_files(folder: Path) -> list[str]:
    problems = [f"required file {f} is missing" for f in REQUIRED if not (folder / f).exists()]
    problems += [f"preferred file {f} is missing" for f in PREFERRED if not (folder / f).exists()]
    readme = (folder / "docs" / "README.md").read_text() if (folder / "docs" / "README.md").exists() else ""
    headings = {m.strip() for m in re.findall(r"^#+ (.+)$", readme, flags=re.M)}
    problems += [f"docs/README.md has no '{s}' section" for s in README_SECTIONS if s not in headings]
    return problems


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def check_version(name: str, folder: Path, source: Path | None = None) -> list[str]:
    """Version and changelog agree, and the released hash of this version is the content's of ``source``
    (default: ``bundles/<name>``; ``folder`` may be a staged copy with weights)."""
    meta = json.loads((folder / "configs" / "metadata.json").read_text())
    version, changelog = meta.get("version"), meta.get("changelog", {})
    problems = []
    if version not in changelog:
        problems.append(f"version {version} has no changelog entry")
    ordered = sorted(changelog, key=_version_key, reverse=True)
    if list(changelog) != ordered or (ordered and ordered[0] != version):
        problems.append(f"changelog must list versions newest first, starting at version {version}: {list(changelog)}")
    released = json.loads(RELEASED.read_text()).get(name, {})
    recorded, actual = released.get(version), bundle_hash(source or BUNDLES / name)
    if recorded != actual:
        problems.append(
            f"bundles/{name} changed without a new version (content {actual[:12]}, recorded for "
            f"{version}: {str(recorded)[:12]}): bump version and changelog in configs/metadata.json, "
            f"then run `python -m tests.bundles.model_zoo record`"
        )
    return problems


def check_formatting(folder: Path) -> list[str]:
    """JSON as pre-commit's pretty-format-json (4 spaces, no key sorting) writes it; YAML that loads without
    duplicate keys; every text file ends with one newline and has no trailing whitespace."""
    from monai.utils.misc import CheckKeyDuplicatesYamlLoader

    problems = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix not in (".json", ".yaml", ".yml", ".md", ".conf", ".txt"):
            continue
        text, rel = path.read_text(), path.relative_to(folder)
        if path.suffix == ".json" and text != json.dumps(json.loads(text), indent=4, ensure_ascii=False) + "\n":
            problems.append(f"{rel}: not formatted as json.dumps(indent=4) with a final newline")
        if path.suffix in (".yaml", ".yml"):
            with warnings.catch_warnings(record=True) as caught:  # MONAI's loader warns on a duplicate key
                warnings.simplefilter("always")
                try:
                    yaml.load(text, Loader=CheckKeyDuplicatesYamlLoader)
                except Exception as exc:  # noqa: BLE001 - reported, not raised
                    problems.append(f"{rel}: {type(exc).__name__}: {exc}")
            problems += [f"{rel}: {w.message}" for w in caught if "Duplicate key" in str(w.message)]
        if not text.endswith("\n") or text.endswith("\n\n"):
            problems.append(f"{rel}: must end with exactly one newline")
        if any(line != line.rstrip() for line in text.splitlines()):
            problems.append(f"{rel}: trailing whitespace")
    return problems


def monai_bundle(*args: str) -> str:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _cli(overrides: dict[str, Any]) -> list[str]:
    return [a for k, v in overrides.items() for a in (f"--{k}", v if isinstance(v, str) else json.dumps(v))]


def eager_network(folder: Path, overrides: dict[str, Any]) -> torch.nn.Module:
    """The inference config's ``network_def`` with ``models/model.pt`` loaded strictly, in eval mode."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(folder / "configs" / "inference.yaml"))
    parser.update({"bundle_root": str(folder), **overrides})
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(folder / "models" / "model.pt", map_location="cpu", weights_only=True))
    return net.eval()


def check_properties(folder: Path, config: str, workflow_type: str, overrides: dict[str, Any]) -> list[str]:
    """What MONAI's ConfigWorkflow reports missing for the config, after ``initialize``."""
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        config_file=str(folder / "configs" / f"{config}.yaml"),
        meta_file=str(folder / "configs" / "metadata.json"),
        workflow_type=workflow_type,
        bundle_root=str(folder),
        **overrides,
    )
    workflow.initialize()
    return list(workflow.check_properties() or [])


def check_bundle(
    name: str,
    folder: Path,
    *,
    example_input: torch.Tensor,
    net_overrides: dict[str, Any],
    train_overrides: dict[str, Any],
    infer_overrides: dict[str, Any],
    shared_keys: Sequence[str] = (),
) -> None:
    """Every model-zoo check on the staged bundle ``folder``; raises AssertionError listing what failed.

    ``net_overrides``: the architecture the weights were trained with (for ckpt_export and the eager
    network; verify_net_in_out checks the default network against the metadata's shapes); ``train_overrides`` /
    ``infer_overrides``: what the workflows need to build
    (dataset_dir, sites, ...); ``shared_keys``: config keys whose content train.yaml and inference.yaml must
    share (the preprocessing transforms).
    """
    problems = check_files(folder) + check_version(name, folder) + check_formatting(BUNDLES / name)
    meta, infer = str(folder / "configs" / "metadata.json"), str(folder / "configs" / "inference.yaml")
    log = monai_bundle("verify_metadata", "--meta_file", meta, "--filepath", str(BUNDLES / "meta_schema.json"))
    assert "metadata is verified with no error" in log
    # the network as the config builds it by default, against the shapes the metadata declares
    log = monai_bundle(
        "verify_net_in_out", "network_def", "--meta_file", meta, "--config_file", infer, "--bundle_root", str(folder)
    )
    assert "data shape of network is verified with no error" in log
    exported = folder / "models" / "verify_model.ts"
    monai_bundle(
        "ckpt_export",
        "network_def",
        "--filepath",
        str(exported),
        "--ckpt_file",
        str(folder / "models" / "model.pt"),
        "--meta_file",
        meta,
        "--config_file",
        infer,
        "--bundle_root",
        str(folder),
        *_cli(net_overrides),
    )
    with torch.no_grad():
        scripted, eager = (
            torch.jit.load(str(exported))(example_input),
            eager_network(folder, net_overrides)(example_input),
        )
    if not torch.allclose(scripted, eager, rtol=1e-4, atol=1e-5):
        problems.append(
            f"the exported TorchScript differs from the eager network by {(scripted - eager).abs().max():.2e}"
        )
    for config, kind, extra in (("train", "train", train_overrides), ("inference", "infer", infer_overrides)):
        missing = check_properties(folder, config, kind, {**net_overrides, **extra})
        problems += [f"configs/{config}.yaml lacks the {kind} property {m!r}" for m in missing]
    train_cfg, infer_cfg = (
        yaml.safe_load((folder / "configs" / f"{c}.yaml").read_text()) for c in ("train", "inference")
    )
    problems += [
        f"train.yaml and inference.yaml differ in {k!r}"
        for k in shared_keys
        if train_cfg.get(k) is None or train_cfg.get(k) != infer_cfg.get(k)
    ]
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)


def record() -> None:
    """Write the current content hash of every bundle's version into bundles/released.json."""
    released = json.loads(RELEASED.read_text()) if RELEASED.exists() else {}
    for folder in sorted(p for p in BUNDLES.iterdir() if (p / "configs" / "metadata.json").exists()):
        version = json.loads((folder / "configs" / "metadata.json").read_text())["version"]
        entry, actual = released.setdefault(folder.name, {}), bundle_hash(folder)
        if entry.get(version, actual) != actual:
            raise SystemExit(
                f"{folder.name} {version} is recorded with other content: bump its version and "
                f"changelog first (or, for a version never released, delete its entry)"
            )
        entry[version] = actual
        print(f"{folder.name} {version} {actual[:12]}")
    RELEASED.write_text(json.dumps(released, indent=4) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["record"]:
        raise SystemExit("usage: python -m tests.bundles.model_zoo record")
    record()
