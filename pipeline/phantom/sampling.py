"""Trilinear sampling of multichannel volumes at arbitrary voxel coordinates (torch grid_sample)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["sample_volumes"]


def sample_volumes(volumes: np.ndarray, voxel_coords: np.ndarray) -> np.ndarray:
    """Sample ``volumes`` (C, X, Y, Z) at ``voxel_coords`` (3, ...) given in voxel indices.

    Trilinear interpolation; points outside the volume read 0.

    Returns:
        float32 array of shape (C, ...).
    """
    volumes = np.ascontiguousarray(volumes, dtype=np.float32)
    if volumes.ndim != 4 or voxel_coords.shape[0] != 3:
        raise ValueError(
            f"expected volumes (C, X, Y, Z) and coords (3, ...), got {volumes.shape} and {voxel_coords.shape}"
        )
    out_shape = voxel_coords.shape[1:]
    sizes = np.array(volumes.shape[1:], dtype=np.float32)
    coords = voxel_coords.reshape(3, -1).astype(np.float32)
    # grid_sample wants (x, y, z) = (W, H, D) order, normalised to [-1, 1] (align_corners=True)
    grid = (2.0 * coords / (sizes[:, None] - 1.0) - 1.0)[::-1].T.copy()
    grid_t = torch.from_numpy(grid).view(1, 1, 1, -1, 3)
    with torch.no_grad():
        out = F.grid_sample(
            torch.from_numpy(volumes)[None], grid_t, mode="bilinear", padding_mode="zeros", align_corners=True
        )
    return out.view(volumes.shape[0], *out_shape).numpy()
