"""The 3D PatchGAN discriminator of Komandur et al., "Unsupervised harmonization of brain MRI using 3D
CycleGANs and its effect on brain age prediction" (section "Discriminator").

Five convolutions with kernel 4 and padding 1: 1 -> 32 -> 64 -> 128 -> 256 -> 1 channels,
InstanceNorm3d after all but the first and the last, ReLU after all but the last (the paper's
text; ``activation="leakyrelu"`` gives the usual PatchGAN LeakyReLU(0.2)).

Strides: the paper's text ("all layers except the first ... have a stride of 2") is inconsistent
with its own 6x6x6 output for a 64^3 input. We use the standard PatchGAN strides (2, 2, 2, 1, 1):
64 -> 32 -> 16 -> 8 -> 7 -> 6, a 6^3 patch map, 2,771,425 parameters (the paper's "3M").
The paper ends in a sigmoid; with the least-squares loss we return raw patch scores.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PatchDiscriminator3D"]


class PatchDiscriminator3D(nn.Module):
    """Patch discriminator: (N, 1, D, H, W) -> (N, 1, D/8 - 2, H/8 - 2, W/8 - 2) raw scores.

    Args:
        in_channels: image channels.
        channels: width of the first layer, doubled at each of the next three (paper: 32).
        strides: stride of each of the five convolutions.
        activation: ``"relu"`` (the paper) or ``"leakyrelu"`` (slope 0.2).

    Example:
        >>> PatchDiscriminator3D()(torch.rand(1, 1, 64, 64, 64)).shape
        torch.Size([1, 1, 6, 6, 6])
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        channels: int = 32,
        strides: tuple[int, ...] = (2, 2, 2, 1, 1),
        activation: str = "relu",
    ):
        super().__init__()
        if len(strides) != 5:
            raise ValueError(f"strides: expected 5 values, got {strides}")
        if activation not in ("relu", "leakyrelu"):
            raise ValueError(f"activation must be 'relu' or 'leakyrelu', got {activation!r}")
        widths = [in_channels, channels, 2 * channels, 4 * channels, 8 * channels, 1]
        layers: list[nn.Module] = []
        for i in range(5):
            layers.append(nn.Conv3d(widths[i], widths[i + 1], 4, stride=strides[i], padding=1))
            if i == 4:
                break
            if i > 0:
                layers.append(nn.InstanceNorm3d(widths[i + 1]))
            layers.append(nn.ReLU(inplace=True) if activation == "relu" else nn.LeakyReLU(0.2, inplace=True))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
