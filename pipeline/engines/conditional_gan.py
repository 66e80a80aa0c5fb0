"""A MONAI trainer for the class-conditional 3D GAN (``pipeline.nets.conditional_gan``).

MONAI's ``GanTrainer`` draws latents without the batch's labels, so it cannot condition on the class;
like :class:`~pipeline.engines.cyclegan.CycleGANTrainer` this subclasses ``monai.engines.Trainer`` and
keeps MONAI / Ignite handlers working. The recipe (documented as "stable" for small 3D data): hinge loss

    L_D = mean(relu(1 - D(x, y))) + mean(relu(1 + D(G(z, y), y)))
    L_G = -mean(D(G(z, y), y))

with the fakes drawn for the real batch's labels (the class balance of training), one D step then one
G step per iteration.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from monai.engines import Trainer
from monai.inferers import Inferer, SimpleInferer
from torch import nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from pipeline.engines.precision import GANPrecision

__all__ = ["ConditionalGANTrainer", "prepare_labelled_batch"]


def prepare_labelled_batch(
    batchdata: dict, device: torch.device | str | None = None, non_blocking: bool = False, **_: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, label) of a batch of ``{"image": ..., "label": ...}`` items, on ``device``."""
    image = torch.as_tensor(batchdata["image"]).to(device, non_blocking=non_blocking)
    label = torch.as_tensor(batchdata["label"]).long().to(device, non_blocking=non_blocking)
    return image, label


class ConditionalGANTrainer(Trainer):
    """One discriminator step and one generator step per batch (hinge loss)."""

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: DataLoader | Sequence,
        generator: nn.Module,
        discriminator: nn.Module,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        *,
        epoch_length: int | None = None,
        prepare_batch: Callable = prepare_labelled_batch,
        train_handlers: Sequence | None = None,
        seed: int = 0,
        amp: bool = False,
        amp_dtype: str = "float16",
        channels_last: bool = False,
        inferer: Inferer | None = None,
        **kwargs: Any,
    ):
        """``amp``: autocast (``amp_dtype`` float16 with gradient scalers on CUDA, or bfloat16) for GPUs;
        ``channels_last``: real batches in channels_last_3d (the networks' format is set by the config);
        ``inferer``: how the generator runs on noise and labels (default ``SimpleInferer``)."""
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            prepare_batch=prepare_batch,
            handlers=train_handlers,
            **kwargs,
        )
        self.generator, self.discriminator = generator, discriminator
        self.inferer = inferer or SimpleInferer()
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.noise = torch.Generator().manual_seed(seed)
        self.precision, self.channels_last = GANPrecision(device, amp=amp, amp_dtype=amp_dtype), channels_last

    def _iteration(self, engine: "ConditionalGANTrainer", batchdata: dict) -> dict[str, float]:
        image, label = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
        if self.channels_last:
            image = image.to(memory_format=torch.channels_last_3d)
        self.generator.train()
        self.discriminator.train()
        latent_dim = getattr(self.generator, "module", self.generator).latent_dim  # DDP hides attributes
        z = torch.randn(len(label), latent_dim, generator=self.noise).to(image.device)

        with self.precision.autocast():
            fake = self.inferer(z, self.generator, label)
            d_real = self.discriminator(image, label)
            d_fake = self.discriminator(fake.detach(), label)
            d_loss = torch.relu(1 - d_real).float().mean() + torch.relu(1 + d_fake).float().mean()
        self.precision.step(self.precision.d_scaler, self.d_optimizer, d_loss)

        with self.precision.autocast():
            g_loss = -self.discriminator(fake, label).float().mean()
        self.precision.step(self.precision.g_scaler, self.g_optimizer, g_loss)
        return {
            "loss": g_loss.item(),
            "g_loss": g_loss.item(),
            "d_loss": d_loss.item(),
            "d_real": d_real.mean().item(),
            "d_fake": d_fake.mean().item(),
        }
