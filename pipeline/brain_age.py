"""Brain-age prediction with a trained BrainAgeCNN3D (the brain_age bundle's inference)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from pipeline.atomic import write_table
from pipeline.bundles import load_bundle_weights
from pipeline.downstream import task_table

__all__ = ["load_brain_age_model", "predict_ages"]


def load_brain_age_model(network: torch.nn.Module, ckpt_path: str | Path) -> torch.nn.Module:
    """Load weights (and the target mean/scale buffers) saved by the bundle's CheckpointSaver."""
    return load_bundle_weights(network, ckpt_path, "brain_age")


def predict_ages(network: torch.nn.Module, ckpt_path: str | Path, dataset_dir: str | Path, output_file: str | Path, *,
                 split: str | None = "test", splits_file: str | Path | None = None, sites: list[str] | None = None,
                 spatial_size: tuple[int, int, int] | None = None, device: str = "cpu") -> pd.DataFrame:
    """Predicted age of every control of ``split`` (all splits if None or ``"all"``); writes and returns the table."""
    net = load_brain_age_model(network, ckpt_path).to(device)
    table = task_table(dataset_dir, "brain_age", splits_file=splits_file, sites=sites)
    if split not in (None, "all"):
        table = table[table["split"] == split]
    if spatial_size is None:
        spatial_size = _input_size(net)
    predictions = []
    with torch.no_grad():
        for path in table["image"]:
            x = torch.from_numpy(np.asarray(nib.load(path).dataobj, dtype=np.float32))[None, None]
            if tuple(x.shape[2:]) != tuple(spatial_size):
                x = F.interpolate(x, size=tuple(spatial_size), mode="area")
            predictions.append(float(net(x.to(device)).item()))
    result = table[["subject", "session", "site", "age", "split"]].copy()
    result["predicted_age"] = predictions
    result["gap"] = result["predicted_age"] - result["age"]
    write_table(output_file, result)
    return result.reset_index(drop=True)


def _input_size(net: torch.nn.Module) -> tuple[int, int, int]:
    """The cube size a BrainAgeCNN3D was built for, from its first linear layer's width."""
    linear = next(m for m in net.head if isinstance(m, torch.nn.Linear))
    last_conv = [m for m in net.features if isinstance(m, torch.nn.Conv3d)][-1]
    n_pool = sum(isinstance(m, torch.nn.MaxPool3d) for m in net.features)
    side = round((linear.in_features / last_conv.out_channels) ** (1 / 3)) * 2 ** n_pool
    return (side, side, side)
