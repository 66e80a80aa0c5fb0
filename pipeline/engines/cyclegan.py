"""A MONAI trainer for the 3D CycleGAN of Komandur et al. (2023): two generators, two discriminators, one iteration
function, so that MONAI / Ignite handlers (StatsHandler, CheckpointSaver / CheckpointLoader,
LrScheduleHandler, ValidationHandler, TensorBoard, MLflow) work unchanged.

MONAI's ``GanTrainer`` drives one generator and one discriminator from latent noise and does not fit
CycleGAN; like the model-zoo generative bundles we subclass ``monai.engines.Trainer``.

Loss (Komandur et al. 2023, section "Loss"), with G_X: X -> Y and G_Y: Y -> X:

    L_G = LS(D_Y(G_X(x)), real) + LS(D_X(G_Y(y)), real)
          + lambda1 * (|G_Y(G_X(x)) - x| + |G_X(G_Y(y)) - y|)          cycle, lambda1 = 10
          + lambda2 * (|G_X(y) - y| + |G_Y(x) - x|)                    identity, lambda2 = 0.1
    L_D = 0.5 * [LS(D_Y(y), real) + LS(D_Y(fake y), fake)] + the same for D_X

LS is MONAI's ``PatchAdversarialLoss`` in least-squares mode with ``no_activation_leastsq=True``
(textbook LSGAN on raw patch scores; MONAI's default would squash them with a sigmoid first).
The discriminators see the generators' outputs detached, optionally drawn from a history pool
(Shrivastava et al. 2017) of earlier fakes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from monai.engines import Trainer
from monai.inferers import Inferer, SimpleInferer
from monai.losses import PatchAdversarialLoss
from torch import nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from pipeline.engines.precision import GANPrecision

__all__ = ["CycleGANLosses", "ImagePool", "CycleGANTrainer"]


@dataclass(frozen=True)
class CycleGANLosses:
    """Loss weights (the paper's lambda1 and lambda2)."""

    cycle: float = 10.0
    identity: float = 0.1


class ImagePool:
    """History of generated images: returns, for each new fake, either itself or (half the time,
    once the pool is full) a stored older fake that it replaces. ``size=0`` disables the pool."""

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.random = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.random.random() < 0.5:
                i = self.random.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, dim=0)


def _prepare_pair(batch: dict, device: torch.device, non_blocking: bool = False, **kwargs: Any) -> tuple:
    return (batch["x"].to(device, non_blocking=non_blocking), batch["y"].to(device, non_blocking=non_blocking))


def _unwrap(net: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or DataParallel) wrapper; the module itself otherwise."""
    return net.module if isinstance(net, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else net


class CycleGANTrainer(Trainer):
    """One CycleGAN step per iteration on batches ``{"x": site-X images, "y": site-Y images}``.

    Args:
        device: torch device.
        max_epochs: epochs to train.
        train_data_loader: yields dicts with ``x`` and ``y`` (N, 1, D, H, W) tensors.
        g_xy, g_yx: the generators G_X: X -> Y and G_Y: Y -> X.
        d_x, d_y: discriminators of domain X (real x vs G_Y(y)) and domain Y.
        g_optimizer: optimizer over both generators' parameters.
        d_optimizer: optimizer over both discriminators' parameters.
        losses: loss weights.
        pool_size: size of each fake-image history pool (0 = none).
        epoch_length: iterations per epoch (default: the loader's length).
        train_handlers: Ignite / MONAI handlers.
        seed: seed of the history pools.
        amp: mixed precision (autocast) for the forward passes; for GPUs.
        amp_dtype: ``"float16"`` (with a gradient scaler, CUDA only) or ``"bfloat16"``.
        channels_last: use the channels_last_3d memory format for inputs (and convert the
            networks before building the optimizers); for GPUs, where it speeds up cuDNN convolutions.
        inferer: how a generator runs on a batch (default ``SimpleInferer``: one forward pass).

    The engine's output per iteration is a dict of floats: ``g_loss``, ``d_loss``, ``adversarial``,
    ``cycle``, ``identity``, ``d_x``, ``d_y``, and ``loss`` (= ``g_loss``, the key MONAI's default
    tracking handlers read; use ``output_transform=lambda o: o["d_loss"]`` etc. in StatsHandler).
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: DataLoader,
        g_xy: nn.Module,
        g_yx: nn.Module,
        d_x: nn.Module,
        d_y: nn.Module,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        losses: CycleGANLosses = CycleGANLosses(),
        pool_size: int = 0,
        epoch_length: int | None = None,
        train_handlers: Sequence | None = None,
        prepare_batch: Callable = _prepare_pair,
        seed: int = 0,
        amp: bool = False,
        amp_dtype: str = "float16",
        channels_last: bool = False,
        inferer: Inferer | None = None,
    ):
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            prepare_batch=prepare_batch,
            handlers=train_handlers,
            decollate=False,
        )
        self.g_xy, self.g_yx, self.d_x, self.d_y = g_xy, g_yx, d_x, d_y
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.losses = losses
        self.adversarial = PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)
        self.l1 = nn.L1Loss()
        self.pool_x, self.pool_y = ImagePool(pool_size, seed), ImagePool(pool_size, seed + 1)
        self.precision = GANPrecision(device, amp=amp, amp_dtype=amp_dtype)
        self.channels_last = channels_last
        self.inferer = inferer or SimpleInferer()

    def _set_discriminators_trainable(self, flag: bool) -> None:
        for net in (self.d_x, self.d_y):
            for p in net.parameters():
                p.requires_grad_(flag)

    def _iteration(self, engine: "CycleGANTrainer", batchdata: dict) -> dict[str, float]:
        x, y = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
        if self.channels_last:
            x, y = x.to(memory_format=torch.channels_last_3d), y.to(memory_format=torch.channels_last_3d)
        for net in (self.g_xy, self.g_yx, self.d_x, self.d_y):
            net.train()

        # generators; the frozen discriminators run unwrapped (under DistributedDataParallel a wrapped module
        # would wait for gradients that this step does not compute)
        self._set_discriminators_trainable(False)
        d_x, d_y = _unwrap(self.d_x), _unwrap(self.d_y)
        with self.precision.autocast():
            g_xy, g_yx = (lambda t: self.inferer(t, self.g_xy)), (lambda t: self.inferer(t, self.g_yx))  # noqa: E731
            fake_y, fake_x = g_xy(x), g_yx(y)
            adversarial = self.adversarial(
                d_y(fake_y), target_is_real=True, for_discriminator=False
            ) + self.adversarial(d_x(fake_x), target_is_real=True, for_discriminator=False)
            cycle = self.l1(g_yx(fake_y), x) + self.l1(g_xy(fake_x), y)
            identity = self.l1(g_xy(y), y) + self.l1(g_yx(x), x)
            g_loss = adversarial + self.losses.cycle * cycle + self.losses.identity * identity
        self.precision.step(self.precision.g_scaler, self.g_optimizer, g_loss)
        self._set_discriminators_trainable(True)

        # discriminators, on detached (optionally pooled) fakes
        pooled_y, pooled_x = self.pool_y.query(fake_y.detach()), self.pool_x.query(fake_x.detach())
        with self.precision.autocast():
            d_y = 0.5 * (
                self.adversarial(self.d_y(y), target_is_real=True, for_discriminator=True)
                + self.adversarial(self.d_y(pooled_y), target_is_real=False, for_discriminator=True)
            )
            d_x = 0.5 * (
                self.adversarial(self.d_x(x), target_is_real=True, for_discriminator=True)
                + self.adversarial(self.d_x(pooled_x), target_is_real=False, for_discriminator=True)
            )
            d_loss = d_x + d_y
        self.precision.step(self.precision.d_scaler, self.d_optimizer, d_loss)
        return {
            "loss": g_loss.item(),
            "g_loss": g_loss.item(),
            "d_loss": d_loss.item(),
            "adversarial": adversarial.item(),
            "cycle": cycle.item(),
            "identity": identity.item(),
            "d_x": d_x.item(),
            "d_y": d_y.item(),
        }
