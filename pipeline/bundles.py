"""Run the repository's MONAI bundles from Python, exactly as ``python -m monai.bundle run`` does.

The demo and the benchmark commands use this, so they exercise the same configs users run.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

from pipeline.run import StageMarker

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
    config_file = files if overlays else files[0]
    with _bundle_logs_to_root(), _trusted_config_files(config_file):
        run(
            config_file=config_file,
            meta_file=str(root / "configs" / "metadata.json"),
            logging_file=False,
            **overrides,
        )


@contextlib.contextmanager
def _trusted_config_files(config_file: str | list[str]) -> Iterator[None]:
    """Silence MONAI's config-security warning about ``config_file`` while it runs, only when every file lies in
    this repository's ``bundles/`` folder; any other config keeps the warning.

    Why: ``monai.bundle`` warns each time it parses a config file (GHSA-873f-pvrv-4x83: a ``_target_`` or ``$``
    value runs code), so every bundle run of the demo printed it. The project's own configs are this repository's
    code, versioned and reviewed like its Python modules, and call only its own and MONAI's functions; the
    warning is meant for a config from elsewhere (a user's, a downloaded bundle), which still gets it. The filter
    matches only this message, for these exact files, from ``monai.bundle.scripts``, and is removed after the run
    (not :class:`warnings.catch_warnings`, which would also undo the filters of modules the run imports).
    """
    files = [config_file] if isinstance(config_file, str) else list(config_file)
    if not all(Path(f).resolve().is_relative_to(BUNDLES_DIR) for f in files):
        yield
        return
    warnings.filterwarnings(
        "ignore",
        message=re.escape(f"parsing config_file {config_file}: "),
        category=UserWarning,
        module=r"monai\.bundle\.scripts",
    )
    entry = warnings.filters[0]
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # already gone: something reset the filters during the run
            warnings.filters.remove(entry)


class _DropMessage(logging.Filter):
    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.start)


@contextlib.contextmanager
def _bundle_logs_to_root() -> Iterator[None]:
    """Send a bundle's log lines through the caller's root handlers (its console and log file) instead of MONAI's
    own stdout handlers, for the length of one run.

    The bundle's ``logging.conf`` (used by ``python -m monai.bundle run``) is skipped here: it would replace the
    caller's handlers with a stdout one at INFO, one line per iteration on the console. The caller's handlers decide
    instead (``mriharmony``'s console shows warnings, its log file everything).
    """
    saved = {}
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("monai") and isinstance(logger, logging.Logger):
            saved[name] = (list(logger.handlers), logger.propagate)
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
    skipped = _DropMessage("Logging file is set to False")  # the one line skipping logging.conf prints
    workflows = logging.getLogger("monai.bundle.workflows")
    workflows.addFilter(skipped)
    try:
        yield
    finally:
        workflows.removeFilter(skipped)
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            for handler in handlers:
                logger.addHandler(handler)
            logger.propagate = propagate


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

    Returns True when it trained. The run's :class:`pipeline.run.StageMarker`, ``train_settings.json`` (config,
    overlays, overrides, and ``inputs``: digests of input files whose content may change under the same path), is
    written after the model, so it marks a complete run; a changed setting retrains. ``bundle_root`` is set to
    ``run_dir``.
    """
    run_dir = Path(run_dir)
    settings = {
        "config": config,
        "overlays": [list(o) for o in overlays],
        "overrides": {**overrides, "bundle_root": str(run_dir)},
    }
    marker = StageMarker(run_dir / "train_settings.json", settings, digests=dict(inputs or {}))
    if marker.is_complete(run_dir / model_file):
        return False
    run_bundle(name, config, overlays=overlays, **marker.record()["settings"]["overrides"])
    marker.mark_complete()
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
