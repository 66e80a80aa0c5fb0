"""The generator and discriminator of Komandur et al. (2023): parameter counts, shapes, ranges, clear errors."""

from __future__ import annotations

import pytest
import torch

from pipeline.nets import HarmonizationGenerator3D, PatchDiscriminator3D


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_generator_defaults_match_the_paper():
    net = HarmonizationGenerator3D()
    assert _count(net) == 5_036_156
    with torch.no_grad():
        out = net(torch.rand(1, 1, 64, 64, 64))
    assert out.shape == (1, 1, 64, 64, 64)
    assert out.min() >= 0 and out.max() <= 1


def test_discriminator_defaults_match_the_paper():
    net = PatchDiscriminator3D()
    assert _count(net) == 2_771_425
    with torch.no_grad():
        assert net(torch.rand(2, 1, 64, 64, 64)).shape == (2, 1, 6, 6, 6)


def test_narrow_nets_for_tests_and_cpu():
    g = HarmonizationGenerator3D(channels=8, n_residual=2)
    d = PatchDiscriminator3D(channels=8, activation="leakyrelu")
    x = torch.rand(2, 1, 32, 32, 32)
    y = g(x)
    assert y.shape == x.shape
    assert d(y).shape == (2, 1, 2, 2, 2)
    torch.testing.assert_close(y, x)  # the residual head starts as the identity map
    optimizer = torch.optim.SGD(g.parameters(), lr=1e-3)
    target = x**2
    for _ in range(2):  # the zero-initialised last conv passes gradient back once it has moved
        optimizer.zero_grad()
        (g(x) - target).abs().mean().backward()
        optimizer.step()
    assert g.stem[0].weight.grad.abs().sum() > 0 and not torch.allclose(g(x), x)
    sig = HarmonizationGenerator3D(channels=8, n_residual=2, output_activation="sigmoid")
    sig(x).mean().backward()  # a sigmoid head passes gradient to the first layer at once
    assert sig.stem[0].weight.grad.abs().sum() > 0 and 0 < float(sig(x).min()) and float(sig(x).max()) < 1


def test_bad_sizes_and_options():
    with pytest.raises(ValueError, match="divisible by 4"):
        HarmonizationGenerator3D(channels=4, n_residual=1)(torch.rand(1, 1, 30, 32, 32))
    with pytest.raises(ValueError, match="output_activation"):
        HarmonizationGenerator3D(output_activation="tanh")
    with pytest.raises(ValueError, match="strides"):
        PatchDiscriminator3D(strides=(2, 2))
