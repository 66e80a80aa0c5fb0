"""The networks of many-to-one harmonization after IGUANe (Roca et al., "IGUANe: a 3D generalizable CycleGAN for
multicenter harmonization of brain MR images", Medical Image Analysis, 2025).

One universal generator maps an image of any site to the reference site; each source site keeps its own backward
generator (reference -> that site) and two discriminators (one judging reference-site images, one judging that
site's images). Only the universal generator is needed after training: it is the bundle's ``models/model.pt``, and it
serves sites it never saw, since nothing in it depends on the site.

Defaults follow the paper's public code (TensorFlow, 1 mm, 160 x 192 x 160 crops):

- generator: a residual U-Net after DeepHarmony: per level a 3^3 convolution, ReLU and instance normalisation, then a
  4^3 stride-2 convolution down; widths 16, 32, 64, 128 and 256 at the bottom; 4^3 stride-2 transposed convolutions
  up with skip concatenations; the input image joins before a 1^3 convolution, tanh, and the sum with the input;
- discriminator: a PatchGAN of three 4^3 stride-2 convolutions (64, 128, 256; instance normalisation but on the
  first; LeakyReLU 0.2) and a 3^3 convolution to one score per patch.

Differences, each a choice where our data differ: our images are in [0, 1] with a zero background (theirs are
median-normalised with -1 outside the brain), so the generator keeps the background at zero (``mask_background``)
and the discriminator pads with zero; instance normalisation is PyTorch's (standard deviation, affine), not their
mean-absolute-deviation variant; the last convolution starts at zero, so the untrained generator is exactly the
identity map (as our pairwise generator). At 64^3 the U-Net's four halvings reach 4^3.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["ResidualUNetGenerator3D", "SiteDiscriminator3D", "ManyToOneNetworks"]


def _conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True), nn.InstanceNorm3d(out_ch, affine=True)
    )


def _down(ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(ch, ch, 4, stride=2, padding=1), nn.ReLU(inplace=True), nn.InstanceNorm3d(ch, affine=True)
    )


def _up(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose3d(in_ch, out_ch, 4, stride=2, padding=1),
        nn.ReLU(inplace=True),
        nn.InstanceNorm3d(out_ch, affine=True),
    )


class ResidualUNetGenerator3D(nn.Module):
    """Residual U-Net generator: (N, 1, D, H, W) -> (N, 1, D, H, W), with D, H, W divisible by 2^(levels).

    Args:
        channels: widths of the levels, the last one the bottom (IGUANe: 16, 32, 64, 128, 256).
        mask_background: keep the output at zero wherever the input is zero (outside the brain).

    Examples:
        >>> net = ResidualUNetGenerator3D(channels=(4, 8, 16))
        >>> x = torch.rand(2, 1, 16, 16, 16)
        >>> torch.equal(net(x), x)  # the untrained generator is the identity
        True
        >>> sum(p.numel() for p in ResidualUNetGenerator3D().parameters())
        6532098
    """

    def __init__(self, *, channels: Sequence[int] = (16, 32, 64, 128, 256), mask_background: bool = True):
        super().__init__()
        channels = [int(c) for c in channels]
        if len(channels) < 2:
            raise ValueError(f"channels: expected at least two levels, got {channels}")
        self.levels, self.mask_background = len(channels) - 1, mask_background
        widths = [1, *channels]
        self.encoders = nn.ModuleList(_conv(widths[i], widths[i + 1]) for i in range(self.levels))
        self.downs = nn.ModuleList(_down(c) for c in channels[:-1])
        self.bottom = _conv(channels[-2], channels[-1])
        self.ups = nn.ModuleList(_up(channels[i + 1], channels[i]) for i in reversed(range(self.levels)))
        self.decoders = nn.ModuleList(_conv(2 * channels[i], channels[i]) for i in reversed(range(self.levels)))
        self.head = nn.Conv3d(channels[0] + 1, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2**self.levels
        for size in x.shape[2:]:
            if size % factor != 0:
                raise ValueError(f"input size {x.shape[2:]} must be divisible by {factor} ({self.levels} halvings)")
        skips: list[torch.Tensor] = []
        h = x
        for encode, down in zip(self.encoders, self.downs):
            h = encode(h)
            skips.insert(0, h)  # the deepest first, as the up path meets them
            h = down(h)
        h = self.bottom(h)
        for i, (up, decode) in enumerate(zip(self.ups, self.decoders)):
            h = decode(torch.cat([up(h), skips[i]], dim=1))
        out = x + torch.tanh(self.head(torch.cat([h, x], dim=1)))
        return torch.where(x > 0, out, torch.zeros_like(out)) if self.mask_background else out


class SiteDiscriminator3D(nn.Module):
    """PatchGAN discriminator: (N, 1, D, H, W) -> (N, 1, D/8, H/8, W/8) raw scores (least-squares loss).

    Args:
        channels: widths of the three stride-2 convolutions (IGUANe: 64, 128, 256).

    Examples:
        >>> SiteDiscriminator3D(channels=(4, 8, 16))(torch.rand(1, 1, 32, 32, 32)).shape
        torch.Size([1, 1, 4, 4, 4])
    """

    def __init__(self, *, channels: Sequence[int] = (64, 128, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        widths = [1, *[int(c) for c in channels]]
        for i in range(len(channels)):
            layers.append(nn.Conv3d(widths[i], widths[i + 1], 4, stride=2, padding=1, bias=i == 0))
            if i > 0:
                layers.append(nn.InstanceNorm3d(widths[i + 1], affine=True))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers.append(nn.Conv3d(widths[-1], 1, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ManyToOneNetworks(nn.Module):
    """The universal generator and, per source site, a backward generator and two discriminators.

    Args:
        sites: the source sites seen in training (not the reference site).
        generator_channels: widths of every generator (:class:`ResidualUNetGenerator3D`).
        discriminator_channels: widths of every discriminator (:class:`SiteDiscriminator3D`).
        mask_background: passed to every generator.

    Examples:
        >>> nets = ManyToOneNetworks(["adni", "oasis"], generator_channels=(4, 8), discriminator_channels=(4, 8))
        >>> sorted(nets.backward), sorted(nets.reference_discriminators)
        (['adni', 'oasis'], ['adni', 'oasis'])
    """

    def __init__(
        self,
        sites: Sequence[str],
        *,
        generator_channels: Sequence[int] = (16, 32, 64, 128, 256),
        discriminator_channels: Sequence[int] = (64, 128, 256),
        mask_background: bool = True,
    ):
        super().__init__()
        sites = [str(s) for s in sites]
        if not sites or len(set(sites)) != len(sites):
            raise ValueError(f"sites: expected distinct source sites, got {sites}")
        self.sites = sites

        def generator() -> ResidualUNetGenerator3D:
            return ResidualUNetGenerator3D(channels=generator_channels, mask_background=mask_background)

        def discriminator() -> SiteDiscriminator3D:
            return SiteDiscriminator3D(channels=discriminator_channels)

        self.universal = generator()
        self.backward = nn.ModuleDict({s: generator() for s in sites})
        self.reference_discriminators = nn.ModuleDict({s: discriminator() for s in sites})
        self.source_discriminators = nn.ModuleDict({s: discriminator() for s in sites})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Harmonize to the reference site (the universal generator)."""
        return self.universal(x)

    @property
    def universal_generator(self) -> nn.Module:
        """The universal generator without a DistributedDataParallel wrapper (what is exported and validated)."""
        return getattr(self.universal, "module", self.universal)

    def distributed(self, **ddp_kwargs) -> "ManyToOneNetworks":
        """Wrap every generator and discriminator in DistributedDataParallel, in place (multi-GPU training: each
        is called on its own by the trainer, so each all-reduces its own gradients); returns ``self``."""
        ddp = torch.nn.parallel.DistributedDataParallel
        self.universal = ddp(self.universal, **ddp_kwargs)
        for group in (self.backward, self.reference_discriminators, self.source_discriminators):
            for site in list(group):
                group[site] = ddp(group[site], **ddp_kwargs)
        return self
