"""The many-to-one networks (after IGUANe): shapes, parameter counts, the identity start, the zero background."""

from __future__ import annotations

import pytest
import torch

from pipeline.nets import ManyToOneNetworks, ResidualUNetGenerator3D, SiteDiscriminator3D


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_default_sizes_at_64():
    generator, discriminator = ResidualUNetGenerator3D(), SiteDiscriminator3D()
    assert _count(generator) == 6_532_098 and _count(discriminator) == 2_633_281
    x = torch.rand(1, 1, 64, 64, 64)
    with torch.no_grad():
        assert generator(x).shape == x.shape
        assert discriminator(x).shape == (1, 1, 8, 8, 8)


def test_starts_at_the_identity_and_keeps_the_background_at_zero():
    torch.manual_seed(0)
    net = ResidualUNetGenerator3D(channels=(4, 8, 16))
    x = torch.rand(2, 1, 16, 16, 16)
    x[:, :, :4] = 0  # background
    assert torch.equal(net(x), x)
    with torch.no_grad():
        net.head.bias.fill_(0.5)  # a trained head changes the brain, never the background
    out = net(x)
    assert torch.all(out[:, :, :4] == 0) and torch.all(out[:, :, 4:] > x[:, :, 4:])
    unmasked = ResidualUNetGenerator3D(channels=(4, 8, 16), mask_background=False)
    unmasked.load_state_dict(net.state_dict())
    assert torch.all(unmasked(x)[:, :, :4] > 0)


def test_gradients_reach_every_layer_once_the_head_moves():
    torch.manual_seed(0)
    net = ResidualUNetGenerator3D(channels=(4, 8, 16))
    torch.nn.init.normal_(net.head.weight, std=0.1)
    net(torch.rand(1, 1, 16, 16, 16) + 0.1).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_sizes_that_the_levels_cannot_halve_are_refused():
    with pytest.raises(ValueError, match="divisible by 16"):
        ResidualUNetGenerator3D()(torch.rand(1, 1, 24, 24, 24))


def test_one_backward_generator_and_two_discriminators_per_source_site():
    nets = ManyToOneNetworks(["adni", "oasis", "aibl"], generator_channels=(4, 8), discriminator_channels=(4, 8))
    per_site = _count(nets.backward["adni"]) + 2 * _count(nets.reference_discriminators["adni"])
    assert _count(nets) == _count(nets.universal) + 3 * per_site
    assert nets.backward["adni"] is not nets.backward["oasis"]
    x = torch.rand(1, 1, 16, 16, 16)
    assert torch.equal(nets(x), nets.universal(x))
    with pytest.raises(ValueError, match="distinct"):
        ManyToOneNetworks(["adni", "adni"])
