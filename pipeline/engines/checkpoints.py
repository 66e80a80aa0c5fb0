"""Checkpoint helpers for bundle training: resume from the newest epoch checkpoint, and a small
record of how the networks were built, saved inside every training checkpoint and beside the exported
weights.

The bundles follow the model-zoo layout: ``models/model.pt`` is the state dict of the config's
``network_def`` alone (so ``python -m monai.bundle ckpt_export`` works with its default arguments), the
full training state lives in ``models/checkpoint_epoch=N.pt``, and :class:`RunInfoWriter` writes the
run's facts (sites or classes, architecture, training subjects) to ``models/run_info.json``, which the
GAN bundles' loaders need to rebuild the network and to refuse the wrong input.

MONAI's ``CheckpointSaver(save_interval=1, n_saved=1)`` writes ``checkpoint_epoch=N.pt`` after each
epoch; a killed run is resumed by :class:`ResumeFromLatest`, which hands the newest of those files
to MONAI's ``CheckpointLoader`` (networks, optimizers, schedulers and the trainer's epoch and
iteration), so the run continues the same schedule. With no checkpoint it does nothing.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from ignite.engine import Engine
from monai.handlers import CheckpointLoader

__all__ = [
    "RunInfo",
    "RUN_INFO_FILE",
    "RunInfoWriter",
    "read_run_info",
    "check_trained_architecture",
    "latest_checkpoint",
    "ResumeFromLatest",
]

log = logging.getLogger("mriharmony.checkpoints")
_EPOCH_FILE = re.compile(r"checkpoint_epoch=(\d+)\.pt$")
#: the run's facts, beside ``models/model.pt``
RUN_INFO_FILE = "run_info.json"


class RunInfo:
    """Plain facts about a training run (sites, architecture), stored in checkpoints as ``info``.

    Only strings, numbers and lists, so checkpoints load with ``torch.load(weights_only=True)``.
    """

    def __init__(self, **facts: Any):
        self.facts = dict(facts)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.facts)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.facts = dict(state)


class RunInfoWriter:
    """Ignite handler: write ``info`` to ``folder/run_info.json`` when training starts (rank 0 only).

    Written before any weights, so every ``model.pt`` of the folder has its record beside it; a re-run with
    other facts rewrites it (and :class:`ResumeFromLatest` refuses to resume another run's checkpoints).
    """

    def __init__(self, folder: str | Path, info: RunInfo):
        self.path, self.info = Path(folder) / RUN_INFO_FILE, info

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        import ignite.distributed as idist

        from pipeline.atomic import write_json

        if idist.get_rank() == 0:
            write_json(self.path, self.info.state_dict())


def read_run_info(weights: str | Path) -> dict[str, Any]:
    """The ``run_info.json`` beside a bundle's weights file, or a clear error naming what is missing."""
    import json

    path = Path(weights).with_name(RUN_INFO_FILE)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: the weights {weights} need the run record that bundle "
            f"training writes beside them (models/{RUN_INFO_FILE})"
        )
    return json.loads(path.read_text())


def check_trained_architecture(weights: str | Path, net_kwargs: dict[str, Any]) -> None:
    """Refuse an inference config whose ``net_kwargs`` differ from those the weights were trained with (read
    from ``run_info.json``), naming the overrides that fit."""
    trained = dict(read_run_info(weights)["net_kwargs"])
    if dict(net_kwargs) != trained:
        overrides = " ".join(f"--net_kwargs#{k} {v}" for k, v in trained.items())
        raise ValueError(
            f"{weights}: trained with net_kwargs {trained}, this config builds {dict(net_kwargs)}; pass {overrides}"
        )


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The ``checkpoint_epoch=N.pt`` file of ``folder`` with the highest N, or None."""
    folder = Path(folder)
    found = [(int(m.group(1)), p) for p in folder.glob("checkpoint_epoch=*.pt") if (m := _EPOCH_FILE.search(p.name))]
    return max(found)[1] if found else None


class ResumeFromLatest:
    """Ignite handler: load the newest epoch checkpoint of ``folder`` into ``load_dict`` at start.

    Args:
        folder: where the training CheckpointSaver writes.
        load_dict: the same objects as the saver's ``save_dict``.
        enabled: set False to start from scratch even if checkpoints exist.
        match_keys: ``info`` entries that must be equal in the checkpoint and in ``load_dict["info"]``
            (a folder holding another site pair or architecture is refused, not silently resumed).
    """

    def __init__(
        self,
        folder: str | Path,
        load_dict: dict[str, Any],
        enabled: bool = True,
        match_keys: tuple[str, ...] = ("source_site", "target_site", "domain_key", "net_kwargs", "spatial_size"),
    ):
        self.folder, self.load_dict, self.enabled = Path(folder), load_dict, enabled
        self.match_keys = match_keys
        self.loaded: Path | None = None

    def _check_info(self, path: Path) -> None:
        import torch

        info = self.load_dict.get("info")
        if info is None:
            return
        saved = torch.load(path, map_location="cpu", weights_only=True).get("info", {})
        current = info.state_dict()
        defaults = {"domain_key": "site"}  # checkpoints written before domain_key existed are site pairs
        different = {k: (saved.get(k, defaults.get(k)), current.get(k, defaults.get(k))) for k in self.match_keys}
        different = {k: v for k, v in different.items() if v[0] != v[1]}
        if different:
            detail = "; ".join(f"{k}: checkpoint {a!r}, this run {b!r}" for k, (a, b) in different.items())
            raise ValueError(
                f"{path} belongs to another run ({detail}); use another bundle_root / ckpt_dir, "
                f"or --resume false to start over there"
            )

    def attach(self, engine: Engine) -> None:
        path = latest_checkpoint(self.folder) if self.enabled else None
        if path is None:
            return
        self._check_info(path)
        log.info("resuming from %s", path)
        self.loaded = path
        CheckpointLoader(load_path=str(path), load_dict=self.load_dict, map_location="cpu").attach(engine)
