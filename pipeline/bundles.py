"""Run the repository's MONAI bundles from Python, exactly as ``python -m monai.bundle run`` does.

The demo and the benchmark commands use this, so they exercise the same configs users run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from pipeline.atomic import _finite, write_json

__all__ = ["BUNDLES_DIR", "bundle_dir", "run_bundle", "train_bundle_once", "load_bundle_weights", "flag"]

BUNDLES_DIR = Path(__file__).resolve().parents[1] / "bundles"


def bundle_dir(name: str) -> Path:
    path = BUNDLES_DIR / name
    if not (path / "configs" / "metadata.json").exists():
        known = sorted(p.name for p in BUNDLES_DIR.iterdir() if (p / "configs" / "metadata.json").exists())
        raise ValueError(f"no bundle {name!r} in {BUNDLES_DIR} (bundles: {known})")
    return path


def run_bundle(name: str, config: str, *, overlays: Sequence[tuple[str, str]] = (), **overrides: Any) -> None:
    """``python -m monai.bundle run --config_file bundles/NAME/configs/CONFIG.yaml --key value ...``.

    Args:
        name: bundle folder name (e.g. ``cyclegan_harmonization``).
        config: config file stem (``train``, ``inference``).
        overlays: (bundle, stem) config files laid over it in order, the model-zoo override pattern
            (``--config_file "['a.yaml','b.yaml']"``), e.g. ``[("synthetic_augmentation", "translation")]``.
        overrides: config overrides; nested keys as ``"net_kwargs#channels"``. Pass ``bundle_root``
            to write outside the repository.
    """
    from monai.bundle import run

    root = bundle_dir(name)
    files = [str(root / "configs" / f"{config}.yaml")]
    files += [str(bundle_dir(other) / "configs" / f"{stem}.yaml") for other, stem in overlays]
    root_logger = logging.getLogger()
    handlers, level = list(root_logger.handlers), root_logger.level
    try:  # the bundle's logging.conf replaces the root handlers; the caller's (e.g. the demo log file) come back after
        run(
            config_file=files if overlays else files[0],
            meta_file=str(root / "configs" / "metadata.json"),
            logging_file=str(root / "configs" / "logging.conf"),
            **overrides,
        )
    finally:
        for handler in list(root_logger.handlers):
            root_logger.removeHandler(handler)
        for handler in handlers:
            root_logger.addHandler(handler)
        root_logger.setLevel(level)


def train_bundle_once(
    name: str,
    run_dir: str | Path,
    overrides: dict[str, Any],
    *,
    config: str = "train",
    overlays: Sequence[tuple[str, str]] = (),
    model_file: str = "models/model.pt",
    inputs: dict[str, str] | None = None,
) -> bool:
    """Train bundle ``name`` into ``run_dir`` unless a finished run with the same settings is there.

    Returns True when it trained. ``train_settings.json`` (config, overlays, overrides, and ``inputs``: e.g.
    hashes of input files whose content may change under the same path) is written after the model, so it
    marks a complete run; a changed setting retrains. ``bundle_root`` is set to ``run_dir``.
    """
    run_dir = Path(run_dir)
    # compared as write_json stores it (NaN as null), or a setting holding NaN would never match its marker
    settings = _finite(
        json.loads(
            json.dumps(
                {
                    "config": config,
                    "overlays": [list(o) for o in overlays],
                    "overrides": {**overrides, "bundle_root": str(run_dir)},
                    "inputs": dict(inputs or {}),
                }
            )
        )
    )
    marker = run_dir / "train_settings.json"
    if (run_dir / model_file).exists() and marker.exists() and json.loads(marker.read_text()) == settings:
        return False
    run_bundle(name, config, overlays=overlays, **settings["overrides"])
    write_json(marker, settings)
    return True


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


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0", "")


def flag(value: Any) -> bool:
    """A bundle config's boolean, as given in YAML or on the command line.

    ``python -m monai.bundle run ... --amp true`` hands the config the *string* ``"true"`` (Fire reads only
    ``True`` as a bool), and ``--resume false`` would then be truthy. The configs pass every boolean
    switch through here: true/yes/on/1 and false/no/off/0 in any case, or a bool; anything else is an error.
    """
    if isinstance(value, bool) or value is None:
        return bool(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected a boolean (true or false), got {value!r}")
