"""The conditional GAN trainer learns a class-dependent image in a few hundred CPU steps."""

from __future__ import annotations

import pytest
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


def _class_gap(seed: int, lr: float = 1e-3) -> float:
    """Bright-class minus dark-class mean in the ball's centre of 8 + 8 samples after 40 epochs (data: 0.60)."""
    torch.manual_seed(seed)
    gen = ConditionalGenerator3D(spatial_size=16, channels=8, latent_dim=16)
    disc = ConditionalDiscriminator3D(spatial_size=16, channels=8)
    trainer = ConditionalGANTrainer(
        "cpu",
        40,
        DataLoader(_toy(), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(seed)),
        gen,
        disc,
        torch.optim.Adam(gen.parameters(), lr, betas=(0.0, 0.9)),
        torch.optim.Adam(disc.parameters(), 4 * lr, betas=(0.0, 0.9)),
        seed=seed,
    )
    trainer.run()
    assert set(trainer.state.output) >= {"loss", "g_loss", "d_loss"}
    gen.eval()
    with torch.no_grad():
        samples = gen.sample(torch.tensor([0] * 8 + [1] * 8), torch.Generator().manual_seed(1))
    centre = samples[:, 0, 5:11, 5:11, 5:11].mean(dim=(1, 2, 3))
    return centre[8:].mean().item() - centre[:8].mean().item()


# a learning measurement (3 seeds and a broken control, about 2 min): in the slow set, which CI runs too
@pytest.mark.slow
def test_generated_classes_differ_the_way_the_data_do():
    """The median over 3 seeds of the class gap is far from the untrained generator's.

    One seed's path depends on the CPU's rounding (an AVX-512 machine gave a gap of 0.25 where this one gave
    0.30 for the same seed); measured here over seeds 0-4: 0.19-0.30, with lr = 0 (learning broken): 0.01.
    The bound 0.12 sits between them, and the control runs in the test so a broken trainer fails it.
    """
    gaps = sorted(_class_gap(seed) for seed in range(3))
    broken = _class_gap(0, lr=0.0)
    assert abs(broken) < 0.06, broken  # an untrained generator does not tell the classes apart
    assert gaps[1] > 0.12, gaps  # the data's gap is 0.60: the brighter class is generated brighter


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
    disc.forward = lambda x, y: (
        seen.append((x.dtype, x.is_contiguous(memory_format=torch.channels_last_3d))),
        original(x, y),
    )[1]
    trainer = ConditionalGANTrainer(
        "cpu",
        1,
        DataLoader(_toy(8), batch_size=4),
        gen,
        disc,
        torch.optim.Adam(gen.parameters(), 1e-3),
        torch.optim.Adam(disc.parameters(), 1e-3),
        amp=True,
        amp_dtype="bfloat16",
        channels_last=True,
    )
    trainer.run()
    assert all(torch.isfinite(torch.tensor(v)) for v in trainer.state.output.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, gen.parameters()))
    assert seen[0] == (torch.float32, True)  # the real batch: channels_last_3d (autocast casts inside the layers)
    with pytest.raises(ValueError, match="amp_dtype must be 'float16' or 'bfloat16'"):
        ConditionalGANTrainer("cpu", 1, [], gen, disc, trainer.g_optimizer, trainer.d_optimizer, amp_dtype="int8")
