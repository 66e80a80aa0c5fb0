"""Run the repository's MONAI bundles from Python, exactly as ``python -m monai.bundle run`` does.

The demo and the benchmark commands use this, so they exercise the same configs users run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

__all__ = ["BUNDLES_DIR", "bundle_dir", "run_bundle", "load_bundle_weights"]

BUNDLES_DIR = Path(__file__).resolve().parents[1] / "bundles"


def bundle_dir(name: str) -> Path:
    path = BUNDLES_DIR / name
    if not (path / "configs" / "metadata.json").exists():
        known = sorted(p.name for p in BUNDLES_DIR.iterdir() if (p / "configs" / "metadata.json").exists())
        raise ValueError(f"no bundle {name!r} in {BUNDLES_DIR} (bundles: {known})")
    return path


def run_bundle(name: str, config: str, **overrides: Any) -> None:
    """``python -m monai.bundle run --config_file bundles/NAME/configs/CONFIG.yaml --key value ...``.

    Args:
        name: bundle folder name (e.g. ``cyclegan_harmonization``).
        config: config file stem (``train``, ``inference``).
        overrides: config overrides; nested keys as ``"net_kwargs#channels"``. Pass ``bundle_root``
            to write outside the repository.
    """
    from monai.bundle import run

    root = bundle_dir(name)
    root_logger = logging.getLogger()
    handlers, level = list(root_logger.handlers), root_logger.level
    try:  # the bundle's logging.conf replaces the root handlers; the caller's (e.g. the demo log file) come back after
        run(config_file=str(root / "configs" / f"{config}.yaml"), meta_file=str(root / "configs" / "metadata.json"),
            logging_file=str(root / "configs" / "logging.conf"), **overrides)
    finally:
        for handler in list(root_logger.handlers):
            root_logger.removeHandler(handler)
        for handler in handlers:
            root_logger.addHandler(handler)
        root_logger.setLevel(level)


def load_bundle_weights(network, ckpt_path: str | Path, bundle: str):
    """Load the ``model`` entry written by a bundle's CheckpointSaver (or a bare state dict) into
    ``network``; weights only, no code runs from the file. Returns the network in eval mode."""
    import torch

    path = Path(ckpt_path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist (train the {bundle} bundle first)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    network.load_state_dict(state.get("model", state))
    return network.eval()
