"""AD classifiers by name, for the ad_classification bundle.

- ``resnet3d``: MONAI's 3D ResNet (basic blocks, stage depths ``layers``, widths ``widths``) on 64^3
  (or smaller) volumes, random initialisation;
- ``three_view``: the three-view 2D network of Wang (2020) (:class:`ThreeViewClassifier`) on mid-slices.
"""

from __future__ import annotations

from typing import Any

from monai.networks.nets import ResNet
from torch import nn

from pipeline.nets.three_view import ThreeViewClassifier

__all__ = ["CLASSIFIERS", "build_classifier"]

CLASSIFIERS = ("resnet3d", "three_view")


def build_classifier(
    name: str,
    num_classes: int,
    *,
    widths: tuple[int, int, int, int] = (64, 128, 256, 512),
    layers: tuple[int, int, int, int] = (1, 1, 1, 1),
    depth: int = 18,
    dropout: float = 0.0,
    pretrained_path: str | None = None,
    **_: Any,
) -> nn.Module:
    """The classifier ``name`` with ``num_classes`` logits (ResNet-10-like 3D by default)."""
    if name == "resnet3d":
        return ResNet(
            block="basic",
            layers=list(layers),
            block_inplanes=list(widths),
            spatial_dims=3,
            n_input_channels=1,
            num_classes=num_classes,
        )
    if name == "three_view":
        return ThreeViewClassifier(
            num_classes=num_classes, depth=depth, widths=tuple(widths), dropout=dropout, pretrained_path=pretrained_path
        )
    raise ValueError(f"model must be one of {CLASSIFIERS}, got {name!r}")
