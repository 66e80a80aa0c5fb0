"""The channels_last_3d switch of the supervised bundles: batches moved to the device in the network's memory format.

MONAI's ``to_kwargs`` would apply a memory format to every tensor of the batch, labels included, and
channels_last_3d exists only for 5D tensors; this ``prepare_batch`` converts the 5D image alone.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.engines.utils import default_prepare_batch

__all__ = ["MemoryFormatBatch"]


class MemoryFormatBatch:
    """``prepare_batch`` for MONAI engines: MONAI's default, then the 5D image in ``memory_format``."""

    def __init__(self, memory_format: torch.memory_format = torch.contiguous_format):
        self.memory_format = memory_format

    def __call__(self, batchdata: dict, device: Any = None, non_blocking: bool = False, **kwargs: Any):
        image, label = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
        if self.memory_format is not torch.contiguous_format and image.ndim == 5:
            image = image.to(memory_format=self.memory_format)
        return image, label
