"""The brain-age CNN of Komandur et al. (2023): parameter count by hand, shapes, layer order."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.nets import BrainAgeCNN3D


def test_parameter_count_and_shape_of_the_paper_network():
    net = BrainAgeCNN3D(spatial_size=64)
    widths = [1, 32, 64, 128, 256, 256]
    convs = sum(a * b * 27 + b for a, b in zip(widths[:-1], widths[1:]))
    norms = 2 * sum(widths[1:])
    linear = (256 * 8**3) * 128 + 128 + 128 + 1  # 64 / 2^3 = 8 per side after three max-pools
    assert sum(p.numel() for p in net.parameters()) == convs + norms + linear == 19_711_233
    assert net(torch.rand(2, 1, 64, 64, 64)).shape == (2, 1)


def test_layer_order_follows_the_paper():
    kinds = [type(m) for m in BrainAgeCNN3D(spatial_size=32).features]
    block = [nn.Conv3d, nn.LeakyReLU, nn.BatchNorm3d]
    assert kinds == block + [nn.MaxPool3d] + block + [nn.MaxPool3d] + block + [nn.MaxPool3d] + block + block
    with pytest.raises(ValueError, match="divisible by 8"):
        BrainAgeCNN3D(spatial_size=36)
