"""A class-conditional 3D DCGAN (after Islam and Zhang 2020, conditioned on the class instead of one GAN per class).

Generator: the noise vector and a learned class embedding, concatenated, go through a linear layer to
a 4^3 feature map, then transposed 3D convolutions (kernel 4, stride 2) with batch norm and ReLU
double the side until ``spatial_size`` (32^3: 3 stages, 64^3: 4), a final 3^3 convolution and a sigmoid
give an image in [0, 1] like the preprocessed cubes.

Discriminator: strided 3D convolutions (kernel 4, stride 2) with spectral normalisation and LeakyReLU
down to 4^3, global sum pooling, a linear score plus the projection term <embed(y), features> of
Miyato & Koyama 2018 (conditioning without concatenating label maps).

The stable recipe these are trained with (``pipeline.engines.conditional_gan``): hinge loss, spectral
norm in the discriminator only, Adam betas (0, 0.9), two time-scale learning rates (G 1e-4, D 4e-4).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["ConditionalGenerator3D", "ConditionalDiscriminator3D"]


def _stages(spatial_size: int) -> int:
    stages = math.log2(spatial_size / 4)
    if spatial_size < 8 or stages != int(stages):
        raise ValueError(f"spatial_size must be 4 x a power of two (8, 16, 32, 64, ...), got {spatial_size}")
    return int(stages)


class ConditionalGenerator3D(nn.Module):
    """(z: (B, latent_dim), label: (B,) long) -> image (B, 1, S, S, S) in [0, 1]."""

    def __init__(
        self,
        *,
        num_classes: int = 2,
        latent_dim: int = 64,
        spatial_size: int = 32,
        channels: int = 32,
        embed_dim: int = 16,
    ):
        super().__init__()
        self.latent_dim, self.num_classes, self.spatial_size = latent_dim, num_classes, spatial_size
        n = _stages(spatial_size)
        widths = [channels * 2 ** (n - i) for i in range(n + 1)]  # e.g. 256, 128, 64, 32 for n=3, channels 32
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.project = nn.Sequential(nn.Linear(latent_dim + embed_dim, widths[0] * 4**3), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        for i in range(n):
            layers += [
                nn.ConvTranspose3d(widths[i], widths[i + 1], 4, stride=2, padding=1, bias=False),
                nn.BatchNorm3d(widths[i + 1]),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.Conv3d(widths[-1], 1, 3, padding=1), nn.Sigmoid()]
        self.decode = nn.Sequential(*layers)
        self.first_width = widths[0]

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(label)], dim=1))
        return self.decode(h.view(-1, self.first_width, 4, 4, 4))

    def sample(self, label: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images of the given classes from fresh noise (reproducible with ``generator``)."""
        z = torch.randn(len(label), self.latent_dim, generator=generator).to(label.device)
        return self(z, label)


class ConditionalDiscriminator3D(nn.Module):
    """(image (B, 1, S, S, S), label (B,)) -> realness score (B,), with projection conditioning."""

    def __init__(self, *, num_classes: int = 2, spatial_size: int = 32, channels: int = 32):
        super().__init__()
        n = _stages(spatial_size)
        widths = [1] + [channels * 2**i for i in range(n)]
        layers: list[nn.Module] = []
        for i in range(n):
            layers += [
                spectral_norm(nn.Conv3d(widths[i], widths[i + 1], 4, stride=2, padding=1)),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.score = spectral_norm(nn.Linear(widths[-1], 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, widths[-1]))

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        h = self.features(image).sum(dim=(2, 3, 4))
        return self.score(h).squeeze(1) + (self.embed(label) * h).sum(dim=1)
