"""The 3D CycleGAN generator of Komandur et al., "Unsupervised harmonization of brain MRI using 3D
CycleGANs and its effect on brain age prediction" (section "Generator").

Layout, with the paper's widths (``channels=32``, ``n_residual=5``); every convolution has kernel 3
and padding 1, and is followed by InstanceNorm3d + ReLU except the last one:

====================  ===================================================  =============
block                 layer                                                 resolution
====================  ===================================================  =============
stem                  conv 1 -> 32, stride 1                                 64^3
down                  conv 32 -> 64, stride 2; conv 64 -> 128, stride 2      32^3, 16^3
residual x 5          [conv 128 -> 128, conv 128 -> 128] + identity          16^3
up 1                  transposed conv 128 -> 64, stride 2                    32^3
up 2                  transposed conv [64 up + 64 down] -> 32, stride 2      64^3
out                   conv [32 up + 32 stem + 1 input] -> 1, output head     64^3
====================  ===================================================  =============

The paper says "like UNET, we concatenate the downsampling block's output with the upsampling
blocks' input" and "concatenate the output of the upsampling block with the input image". We read
this as U-Net skips at matching resolutions (the first down convolution's output joins the up path
before the second transposed convolution; the stem's output joins before the last convolution),
plus the input image before the last convolution. This reading gives 5,036,156 parameters, the
paper's "5M". Transposed convolutions use output_padding 1 so each doubles the size exactly.

Choices where the paper is silent: residual blocks are conv-norm-ReLU-conv-norm plus the identity
(He et al. 2016 / the CycleGAN ResnetBlock); InstanceNorm3d is not affine (PyTorch's default), as
the parameter count implies. The paper gives no output activation; the data are in [0, 1], so the
output must stay there. Our default is ``"residual"``: the last convolution predicts a correction
that is added to the input, and the sum is clipped to [0, 1]; that last convolution starts at zero,
so the untrained generator is exactly the identity map. Harmonization is a small change of
contrast, so the net starts at the identity map; in our trials a sigmoid (or clamped) output began
far worse than the identity and was still worse after minutes of training, while the residual head
beat the identity within seconds (bundles/cyclegan_harmonization/docs/README.md has the curves).
``"sigmoid"`` is kept as an option. Neither choice adds parameters.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["HarmonizationGenerator3D", "OUTPUT_ACTIVATIONS"]

OUTPUT_ACTIVATIONS = ("residual", "sigmoid", "none")


def _conv_block(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_ch, out_ch, 3, stride=stride, padding=1), nn.InstanceNorm3d(out_ch), nn.ReLU(inplace=True)
    )


def _up_block(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose3d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1),
        nn.InstanceNorm3d(out_ch),
        nn.ReLU(inplace=True),
    )


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(channels, channels, 3, padding=1),
            nn.InstanceNorm3d(channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels, channels, 3, padding=1),
            nn.InstanceNorm3d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class HarmonizationGenerator3D(nn.Module):
    """3D image-to-image generator: output shape = input shape, values in [0, 1].

    Args:
        in_channels: image channels (1 for T1w).
        channels: width of the first layer; the down path uses 2x and 4x (paper: 32).
        n_residual: residual blocks at the lowest resolution (paper: 5).
        output_activation: ``"residual"`` (input + correction, clipped to [0, 1]; default),
            ``"sigmoid"`` or ``"none"``.

    Example:
        >>> net = HarmonizationGenerator3D(channels=8, n_residual=1)
        >>> net(torch.rand(2, 1, 32, 32, 32)).shape
        torch.Size([2, 1, 32, 32, 32])
    """

    def __init__(
        self, *, in_channels: int = 1, channels: int = 32, n_residual: int = 5, output_activation: str = "residual"
    ):
        super().__init__()
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}, got {output_activation!r}")
        c = channels
        self.stem = _conv_block(in_channels, c)
        self.down1 = _conv_block(c, 2 * c, stride=2)
        self.down2 = _conv_block(2 * c, 4 * c, stride=2)
        self.residual = nn.Sequential(*[_ResidualBlock(4 * c) for _ in range(n_residual)])
        self.up1 = _up_block(4 * c, 2 * c)
        self.up2 = _up_block(4 * c, c)  # [up1 output, down1 output]
        self.out = nn.Conv3d(2 * c + in_channels, in_channels, 3, padding=1)  # [up2 output, stem output, input]
        self.output_activation = output_activation
        if output_activation == "residual":  # start as the identity map: the correction is 0 at initialisation
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for size in x.shape[2:]:
            if size % 4 != 0:
                raise ValueError(f"spatial size must be divisible by 4 (two stride-2 levels), got {x.shape[2:]}")
        stem = self.stem(x)
        d1 = self.down1(stem)
        d2 = self.down2(d1)
        u1 = self.up1(self.residual(d2))
        u2 = self.up2(torch.cat([u1, d1], dim=1))
        out = self.out(torch.cat([u2, stem, x], dim=1))
        if self.output_activation == "residual":
            return torch.clamp(x + out, 0.0, 1.0)
        if self.output_activation == "sigmoid":
            return torch.sigmoid(out)
        return out
