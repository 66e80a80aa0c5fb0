"""The brain-age 3D CNN of Komandur et al., "Unsupervised harmonization of brain MRI using 3D CycleGANs
and its effect on brain age prediction" (section 4.2).

"A model with 5 3D-convolutional layers (output sizes: 32, 64, 128, 256 and 256), with a max pool in
the first 3 layers. These layers were followed by LeakyReLU non-linearity and batch normalization.
The last conv layer's output was flattened and passed through 2 linear layers."

Each block is conv (kernel 3, padding 1) -> LeakyReLU -> BatchNorm3d, in the paper's order, then a
2x max-pool in the first three blocks. Choices where the paper is silent: kernel 3 with padding 1,
LeakyReLU slope 0.01 (PyTorch's default), a hidden linear width of 128 with LeakyReLU between the two
linear layers, and optional dropout before them (0 by default). The output is one number: the head's
output times ``target_scale`` plus ``target_mean`` (buffers saved with the weights, set from the
training ages), so the net learns a standardised target but predicts years, and a checkpoint needs
nothing else to be used.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BrainAgeCNN3D"]


class BrainAgeCNN3D(nn.Module):
    """3D CNN regressor: (N, 1, D, H, W) -> (N, 1).

    Args:
        spatial_size: input size (cube side or (D, H, W)); sets the flattened width.
        channels: conv widths (paper: 32, 64, 128, 256, 256).
        n_pool: blocks followed by a 2x max-pool (paper: the first 3).
        hidden: width of the first linear layer.
        dropout: dropout before each linear layer.
        in_channels: image channels.
        target_mean, target_scale: the output is ``head * target_scale + target_mean``.

    Example:
        >>> net = BrainAgeCNN3D(spatial_size=32, channels=(4, 4, 8, 8, 8), hidden=16)
        >>> net(torch.rand(2, 1, 32, 32, 32)).shape
        torch.Size([2, 1])
    """

    def __init__(
        self,
        *,
        spatial_size: int | tuple[int, int, int] = 64,
        channels: tuple[int, ...] = (32, 64, 128, 256, 256),
        n_pool: int = 3,
        hidden: int = 128,
        dropout: float = 0.0,
        in_channels: int = 1,
        target_mean: float = 0.0,
        target_scale: float = 1.0,
    ):
        super().__init__()
        size = (spatial_size,) * 3 if isinstance(spatial_size, int) else tuple(spatial_size)
        if any(s % (2**n_pool) for s in size):
            raise ValueError(f"spatial_size {size} must be divisible by {2**n_pool} ({n_pool} max-pools)")
        layers: list[nn.Module] = []
        previous = in_channels
        for i, width in enumerate(channels):
            layers += [nn.Conv3d(previous, width, 3, padding=1), nn.LeakyReLU(inplace=True), nn.BatchNorm3d(width)]
            if i < n_pool:
                layers.append(nn.MaxPool3d(2))
            previous = width
        self.features = nn.Sequential(*layers)
        flat = previous * int(torch.tensor(size).prod()) // (8**n_pool)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(flat, hidden),
            nn.LeakyReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_scale", torch.tensor(float(target_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)) * self.target_scale + self.target_mean
