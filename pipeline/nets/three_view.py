"""The three-view 2D classifier of S. Wang, "MRI-based Diagnosis of Alzheimer's Disease using Deep
Learning with CycleGAN for Data Augmentation" (2020): one ResNet branch per view (axial,
coronal, sagittal mid-slice), features concatenated, a fully connected head.

Input: (N, 3, H, W), channel i = view i (``mriharmony slices`` of a 64^3 cube gives three 64x64
mid-slices; ``ThreeViewClassifier.views`` is the channel order). Each branch is MONAI's 2D ResNet
without its classification layer (``feed_forward=False``), randomly initialised: no ImageNet weights
are downloaded. ``pretrained_path`` loads a local state dict of the whole network instead.
"""

from __future__ import annotations

from pathlib import Path

import torch
from monai.networks.nets import ResNet, ResNetBlock
from torch import nn

__all__ = ["ThreeViewClassifier"]

_DEPTHS = {10: [1, 1, 1, 1], 18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}


class ThreeViewClassifier(nn.Module):
    """Three 2D ResNet branches, concatenated features, linear head.

    Args:
        num_classes: output logits.
        depth: ResNet depth per branch (10, 18 or 34; Wang (2020) used ResNet-style branches, we default to 18).
        widths: the four stage widths (ResNet: 64, 128, 256, 512; narrow for CPU tests).
        dropout: dropout before the head.
        pretrained_path: optional local state dict of this network.
    """

    views = ("axial", "coronal", "sagittal")

    def __init__(
        self,
        *,
        num_classes: int = 2,
        depth: int = 18,
        widths: tuple[int, int, int, int] = (64, 128, 256, 512),
        dropout: float = 0.0,
        pretrained_path: str | None = None,
    ):
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"depth must be one of {sorted(_DEPTHS)}, got {depth}")
        self.branches = nn.ModuleList(
            [
                ResNet(
                    block=ResNetBlock,
                    layers=_DEPTHS[depth],
                    block_inplanes=list(widths),
                    spatial_dims=2,
                    n_input_channels=1,
                    num_classes=num_classes,
                    feed_forward=False,
                )
                for _ in self.views
            ]
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(3 * widths[-1], num_classes))
        if pretrained_path:
            path = Path(pretrained_path)
            if not path.exists():
                raise FileNotFoundError(f"pretrained_path {path} does not exist (no weights are downloaded)")
            self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3:
            raise ValueError(f"expected 3 channels (axial, coronal, sagittal), got {x.shape[1]}")
        features = [branch(x[:, i : i + 1]) for i, branch in enumerate(self.branches)]
        return self.head(torch.cat(features, dim=1))
