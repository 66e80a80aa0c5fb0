"""Class-conditional 3D GAN networks: shapes, output range, conditioning, spectral norm, size checks."""

from __future__ import annotations

import pytest
import torch

from pipeline.nets.conditional_gan import ConditionalDiscriminator3D, ConditionalGenerator3D


@pytest.mark.parametrize("size", [16, 32, 64])
def test_shapes_and_range(size):
    g = ConditionalGenerator3D(spatial_size=size, channels=4, latent_dim=8)
    d = ConditionalDiscriminator3D(spatial_size=size, channels=4)
    label = torch.tensor([0, 1])
    image = g(torch.randn(2, 8), label)
    assert image.shape == (2, 1, size, size, size) and 0 <= image.min() and image.max() <= 1
    assert d(image, label).shape == (2,)


def test_the_class_changes_the_image_and_the_score():
    torch.manual_seed(0)
    g, d = ConditionalGenerator3D(channels=4, latent_dim=8).eval(), ConditionalDiscriminator3D(channels=4)
    z = torch.randn(1, 8).repeat(2, 1)
    a, b = g(z, torch.tensor([0, 1]))
    assert (a - b).abs().max() > 1e-4
    x = torch.rand(1, 1, 32, 32, 32).repeat(2, 1, 1, 1, 1)
    with torch.no_grad():
        scores = d(x, torch.tensor([0, 1]))
    assert abs(float(scores[0] - scores[1])) > 1e-6
    assert any("parametrizations" in name for name, _ in d.named_modules())  # spectral norm


def test_sample_is_reproducible_and_sizes_are_checked():
    g = ConditionalGenerator3D(spatial_size=16, channels=4, latent_dim=8).eval()
    label = torch.tensor([1, 1, 0])
    one = g.sample(label, torch.Generator().manual_seed(3))
    assert torch.equal(one, g.sample(label, torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="spatial_size must be 4 x a power of two"):
        ConditionalGenerator3D(spatial_size=48)
