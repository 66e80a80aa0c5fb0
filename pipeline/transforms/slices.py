"""Volume -> the three mid-slices as channels, for the three-view 2D classifier of Wang (2020).

The same slices as ``mriharmony slices --mode mid`` (views from the affine's orientation), stacked as
(axial, coronal, sagittal) channels; all three must have the same in-plane shape (true for the 64^3
cubes of ``mriharmony preprocess``).
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform

from pipeline.slices import VIEWS, view_axis

__all__ = ["ThreeViewMidSlicesd"]


class ThreeViewMidSlicesd(MapTransform):
    """Replace a channel-first volume (1, D, H, W) by its mid-slices (3, A, B) in ``VIEWS`` order.

    Args:
        keys: keys of the volumes (MetaTensors carrying their affine; RAS is assumed without one).
        allow_missing_keys: MONAI's usual option.
    """

    def __init__(self, keys: Sequence[Hashable] | Hashable, *, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping) -> dict:
        out = dict(data)
        for key in self.key_iterator(out):
            volume = out[key]
            affine = volume.affine.numpy() if isinstance(volume, MetaTensor) else np.eye(4)
            array = torch.as_tensor(volume)[0]
            planes = []
            for view in VIEWS:
                axis = view_axis(affine, view)
                planes.append(torch.select(array, axis, array.shape[axis] // 2))
            shapes = {tuple(p.shape) for p in planes}
            if len(shapes) != 1:
                raise ValueError(f"{key}: the three mid-slices differ in shape {sorted(shapes)}; use cubic volumes")
            out[key] = torch.stack([p.as_subclass(torch.Tensor) for p in planes])
        return out
