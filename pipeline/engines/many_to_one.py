"""A MONAI trainer for many-to-one harmonization after IGUANe (Roca et al., Medical Image Analysis, 2025).

One iteration visits every source site once, in a seeded random order. For site s with source images x and
age-matched reference images y, and the networks of :class:`pipeline.nets.ManyToOneNetworks` (universal generator
U: any site -> reference; backward generator B_s: reference -> s; discriminators D_ref,s and D_s):

    L_D = 0.5 * [LS(D_ref,s(y), real) + LS(D_ref,s(U(x)), fake)] + 0.5 * [LS(D_s(x), real) + LS(D_s(B_s(y)), fake)]
    L_G = LS(D_ref,s(U(x)), real) + LS(D_s(B_s(y)), real)
          + cycle * (|B_s(U(x)) - x| + |U(B_s(y)) - y|)
          + identity_reference * |U(y) - y| + identity_source * |B_s(x) - x|

first the discriminators' step, then the generators' (the order of the paper's code). The universal generator is
updated at every site's step, so it learns from all sites; each backward generator and discriminator only from
its own. Loss weights default to the paper's code (cycle 30, identity 15 for both generators); setting
``identity_reference`` to 0 switches off the identity term on the reference site, ``identity_source`` the
backward generators' one. LS is MONAI's least-squares ``PatchAdversarialLoss`` on raw patch scores, as in
:mod:`pipeline.engines.cyclegan`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from monai.engines import Trainer
from monai.inferers import Inferer, SimpleInferer
from monai.losses import PatchAdversarialLoss
from torch import nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader, Dataset

from pipeline.engines.precision import GANPrecision
from pipeline.engines.unpaired import UnpairedDataset

__all__ = ["ManyToOneLosses", "ManyToOneDataset", "ManyToOneTrainer"]


@dataclass(frozen=True)
class ManyToOneLosses:
    """Loss weights (IGUANe's code: cycle 30, identity 0.5 x 30 for each generator)."""

    cycle: float = 30.0
    identity_reference: float = 15.0
    identity_source: float = 15.0


class ManyToOneDataset(Dataset):
    """Items ``{site: {"x": source image, "y": reference image}}``: one pair per source site.

    Each site's pairs come from its own :class:`UnpairedDataset` (source images in order, a reference image drawn per
    item, age-matched if that dataset is); item ``i`` takes pair ``i mod n_s`` of site s, so an epoch of the largest
    site's length visits every image of every site at least once.

    Args:
        pairs: per source site, its unpaired dataset against the reference site.
    """

    def __init__(self, pairs: Mapping[str, UnpairedDataset]):
        if not pairs:
            raise ValueError("ManyToOneDataset needs at least one source site")
        self.pairs = dict(pairs)

    @classmethod
    def from_data(
        cls,
        data: Any,
        *,
        transform: Callable | None = None,
        seed: int = 0,
        age_matched: bool = True,
        cache: bool = False,
    ) -> "ManyToOneDataset":
        """One :class:`UnpairedDataset` per source site of a :class:`pipeline.data.ManyToOneData` (its
        ``train_x`` against the reference site's ``train_y``); site ``k`` draws with seed ``seed + k``."""
        return cls(
            {
                site: UnpairedDataset(
                    pair.train_x, pair.train_y, transform=transform, seed=seed + k, age_matched=age_matched, cache=cache
                )
                for k, (site, pair) in enumerate(data.pairs.items())
            }
        )

    @property
    def sites(self) -> list[str]:
        return list(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        for dataset in self.pairs.values():
            dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return max(len(d) for d in self.pairs.values())

    def __getitem__(self, index: int) -> dict[str, dict]:
        return {site: d[index % len(d)] for site, d in self.pairs.items()}


def _prepare_sites(batch: Mapping[str, Mapping], device: torch.device, non_blocking: bool = False, **kwargs: Any):
    return {
        site: (pair["x"].to(device, non_blocking=non_blocking), pair["y"].to(device, non_blocking=non_blocking))
        for site, pair in batch.items()
    }


class ManyToOneTrainer(Trainer):
    """Many-to-one harmonization steps on batches from a :class:`ManyToOneDataset`.

    Args:
        device: torch device.
        max_epochs: epochs to train.
        train_data_loader: yields ``{site: {"x": (N, 1, D, H, W), "y": (N, 1, D, H, W)}}``.
        networks: the :class:`pipeline.nets.ManyToOneNetworks` (or an equivalent module with ``universal``,
            ``backward``, ``reference_discriminators`` and ``source_discriminators``).
        g_optimizer: optimizer over every generator's parameters (the universal and the backward ones).
        d_optimizer: optimizer over every discriminator's parameters.
        losses: loss weights.
        epoch_length: iterations per epoch (default: the loader's length).
        train_handlers: Ignite / MONAI handlers.
        seed: seed of the order in which the sites are visited.
        amp: autocast the forward passes (``amp_dtype`` float16 with gradient scalers on CUDA, or bfloat16).
        channels_last: move batches to the channels_last_3d memory format.
        inferer: how a generator runs on a batch (default ``SimpleInferer``: one forward pass).

    The output per iteration is a dict of floats: ``loss`` (= ``g_loss``), ``g_loss``, ``d_loss``, ``adversarial``,
    ``cycle``, ``identity_reference``, ``identity_source``, each the mean over the sites, and ``g_loss_<site>``.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: DataLoader,
        networks: nn.Module,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        losses: ManyToOneLosses = ManyToOneLosses(),
        epoch_length: int | None = None,
        train_handlers: Sequence | None = None,
        prepare_batch: Callable = _prepare_sites,
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
        self.networks, self.g_optimizer, self.d_optimizer = networks, g_optimizer, d_optimizer
        self.losses, self.seed = losses, seed
        self.adversarial = PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)
        self.l1 = nn.L1Loss()
        self.precision, self.channels_last = GANPrecision(device, amp=amp, amp_dtype=amp_dtype), channels_last
        self.inferer = inferer or SimpleInferer()

    def site_order(self, iteration: int, sites: Sequence[str]) -> list[str]:
        """The seeded order of the sites at one iteration (the same on a resumed run)."""
        order = sorted(sites)
        random.Random(f"{self.seed}-{iteration}").shuffle(order)
        return order

    def _iteration(self, engine: "ManyToOneTrainer", batchdata: dict) -> dict[str, float]:
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
        nets, adv, w = self.networks, self.adversarial, self.losses
        nets.train()

        def universal(t: torch.Tensor) -> torch.Tensor:
            return self.inferer(t, nets.universal)

        totals = {"g_loss": 0.0, "d_loss": 0.0, "adversarial": 0.0, "cycle": 0.0}
        totals.update(identity_reference=0.0, identity_source=0.0)
        out: dict[str, float] = {}
        for site in self.site_order(engine.state.iteration, list(batch)):
            x, y = batch[site]
            if self.channels_last:
                x, y = x.to(memory_format=torch.channels_last_3d), y.to(memory_format=torch.channels_last_3d)
            backward_net, d_ref, d_src = (
                nets.backward[site],
                nets.reference_discriminators[site],
                nets.source_discriminators[site],
            )

            def backward(t: torch.Tensor, net: nn.Module = backward_net) -> torch.Tensor:
                return self.inferer(t, net)

            # discriminators, on the generators' current (detached) outputs
            with self.precision.autocast():
                with torch.no_grad():
                    fake_ref, fake_src = universal(x), backward(y)
                d_loss = 0.5 * (
                    adv(d_ref(y), target_is_real=True, for_discriminator=True)
                    + adv(d_ref(fake_ref), target_is_real=False, for_discriminator=True)
                ) + 0.5 * (
                    adv(d_src(x), target_is_real=True, for_discriminator=True)
                    + adv(d_src(fake_src), target_is_real=False, for_discriminator=True)
                )
            self.precision.step(self.precision.d_scaler, self.d_optimizer, d_loss)
            # generators, against frozen discriminators
            for p in (*d_ref.parameters(), *d_src.parameters()):
                p.requires_grad_(False)
            with self.precision.autocast():
                fake_ref, fake_src = universal(x), backward(y)
                adversarial = adv(d_ref(fake_ref), target_is_real=True, for_discriminator=False) + adv(
                    d_src(fake_src), target_is_real=True, for_discriminator=False
                )
                cycle = self.l1(backward(fake_ref), x) + self.l1(universal(fake_src), y)
                g_loss = adversarial + w.cycle * cycle
                identity_reference = self.l1(universal(y), y) if w.identity_reference else torch.zeros(())
                identity_source = self.l1(backward(x), x) if w.identity_source else torch.zeros(())
                g_loss = g_loss + w.identity_reference * identity_reference + w.identity_source * identity_source
            self.precision.step(self.precision.g_scaler, self.g_optimizer, g_loss)
            for p in (*d_ref.parameters(), *d_src.parameters()):
                p.requires_grad_(True)
            values = {
                "g_loss": g_loss,
                "d_loss": d_loss,
                "adversarial": adversarial,
                "cycle": cycle,
                "identity_reference": identity_reference,
                "identity_source": identity_source,
            }
            for key, value in values.items():
                totals[key] += float(value.item()) / len(batch)
            out[f"g_loss_{site}"] = float(g_loss.item())
        return {"loss": totals["g_loss"], **totals, **out}
