"""The conditional GAN trainer learns a class-dependent image in a few hundred CPU steps."""

from __future__ import annotations

import torch
from monai.data import DataLoader

from pipeline.engines.conditional_gan import ConditionalGANTrainer
from pipeline.nets.conditional_gan import ConditionalDiscriminator3D, ConditionalGenerator3D


def _toy(n: int = 32, size: int = 16) -> list[dict]:
    """Class 0: a dark ball, class 1: a bright ball (plus noise), in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, size)] * 3, indexing="ij")).pow(2).sum(0).sqrt()
    ball = (grid < 0.7).float()
    items = []
    for i in range(n):
        level = 0.25 if i % 2 == 0 else 0.85
        image = (ball * level + 0.03 * torch.randn(size, size, size, generator=g)).clamp(0, 1)
        items.append({"image": image[None], "label": i % 2})
    return items


def test_generated_classes_differ_the_way_the_data_do():
    torch.manual_seed(0)
    gen = ConditionalGenerator3D(spatial_size=16, channels=8, latent_dim=16)
    disc = ConditionalDiscriminator3D(spatial_size=16, channels=8)
    trainer = ConditionalGANTrainer(
        "cpu", 40, DataLoader(_toy(), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0)),
        gen, disc, torch.optim.Adam(gen.parameters(), 1e-3, betas=(0.0, 0.9)),
        torch.optim.Adam(disc.parameters(), 4e-3, betas=(0.0, 0.9)))
    trainer.run()
    assert set(trainer.state.output) >= {"loss", "g_loss", "d_loss"}
    gen.eval()
    with torch.no_grad():
        samples = gen.sample(torch.tensor([0] * 8 + [1] * 8), torch.Generator().manual_seed(1))
    centre = samples[:, 0, 5:11, 5:11, 5:11].mean(dim=(1, 2, 3))
    dark, bright = centre[:8].mean().item(), centre[8:].mean().item()
    assert bright - dark > 0.3, (dark, bright)  # the data: 0.25 vs 0.85


def test_bf16_autocast_and_channels_last_reach_the_steps():
    """--amp true --amp_dtype bfloat16 --channels_last true run on a CPU too (autocast is real there for bf16):
    the losses stay finite, the weights move, the batches arrive in channels_last_3d, and a bad dtype is refused."""
    import pytest

    torch.manual_seed(0)
    gen = ConditionalGenerator3D(spatial_size=16, channels=8, latent_dim=16).to(memory_format=torch.channels_last_3d)
    disc = ConditionalDiscriminator3D(spatial_size=16, channels=8).to(memory_format=torch.channels_last_3d)
    before = [p.detach().clone() for p in gen.parameters()]
    seen = []
    original = disc.forward
    disc.forward = lambda x, y: (seen.append((x.dtype, x.is_contiguous(memory_format=torch.channels_last_3d))),
                                 original(x, y))[1]
    trainer = ConditionalGANTrainer(
        "cpu", 1, DataLoader(_toy(8), batch_size=4), gen, disc, torch.optim.Adam(gen.parameters(), 1e-3),
        torch.optim.Adam(disc.parameters(), 1e-3), amp=True, amp_dtype="bfloat16", channels_last=True)
    trainer.run()
    assert all(torch.isfinite(torch.tensor(v)) for v in trainer.state.output.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, gen.parameters()))
    assert seen[0] == (torch.float32, True)  # the real batch: channels_last_3d (autocast casts inside the layers)
    with pytest.raises(ValueError, match="amp_dtype must be 'float16' or 'bfloat16'"):
        ConditionalGANTrainer("cpu", 1, [], gen, disc, trainer.g_optimizer, trainer.d_optimizer, amp_dtype="int8")
