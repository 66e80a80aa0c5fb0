"""Validation of a site-to-site CycleGAN, as a MONAI ``Evaluator`` (so ValidationHandler,
CheckpointSaver on the key metric, StatsHandler and TensorBoard work unchanged).

Per batch it computes ``fake = G_X(x)`` and the cycle reconstruction ``G_Y(G_X(x))``. Metrics
(:class:`~pipeline.evaluate.fidelity.MaskedFidelityMetric` through ``IgniteMetricHandler``), all on [0, 1]
images and inside the brain (the nonzero voxels: preprocessing zeroes the background, which would
otherwise shrink MAE and inflate SSIM):

- with traveling pairs (``y`` = the same subject's real site-Y image), inside the union of x's and y's
  brains: ``travel_mae``, ``travel_ssim``, ``travel_psnr`` of G_X(x) against y, and beside them the
  identity baseline ``identity_mae``, ``identity_ssim``, ``identity_psnr`` of x itself against y; the
  whole-cube ``travel_mae_cube`` and ``identity_mae_cube`` for comparison with older logs;
- with a reverse generator: ``cycle_mae``, ``cycle_ssim`` of the reconstruction against x, inside x's brain (a
  one-way harmonizer, the many-to-one universal generator, has none: it is validated on traveling pairs alone).

The key metric (checkpoint selection) is ``travel_mae`` when pairs exist, else ``cycle_mae``;
lower is better, so the evaluator compares with ``<`` and CheckpointSaver needs
``key_metric_negative_sign=True``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from monai.engines import Evaluator
from monai.handlers import IgniteMetricHandler, MeanAbsoluteError
from monai.inferers import Inferer, SimpleInferer
from torch import nn

from pipeline.evaluate.fidelity import MaskedFidelityMetric, brain_mask

__all__ = ["CycleGANEvaluator", "cyclegan_metrics", "key_metric_name"]


def key_metric_name(paired: bool) -> str:
    return "travel_mae" if paired else "cycle_mae"


def _pick(a: str, b: str) -> Callable[[dict], tuple]:
    return lambda output: (output[a], output[b])


def _pick_masked(a: str, b: str, mask: str) -> Callable[[dict], tuple]:
    """(prediction, reference with the mask as its second channel), as MaskedFidelityMetric expects."""
    return lambda output: (output[a], torch.cat([output[b], output[mask].float()], dim=1))


def cyclegan_metrics(paired: bool, cycle: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """(key metric, additional metrics) as Ignite metrics, for a paired or unpaired validation set, with or
    without the cycle through a reverse generator."""

    def masked(metric: str, pred: str, ref: str, mask: str) -> IgniteMetricHandler:
        return IgniteMetricHandler(
            metric_fn=MaskedFidelityMetric(metric), output_transform=_pick_masked(pred, ref, mask)
        )

    if not (paired or cycle):
        raise ValueError("a one-way harmonizer (no reverse generator) is validated on traveling pairs: none given")
    metrics: dict[str, Any] = {}
    if cycle:
        metrics["cycle_mae"] = masked("mae", "cycle", "x", "mask_x")
        metrics["cycle_ssim"] = masked("ssim", "cycle", "x", "mask_x")
    if paired:
        for name, pred in (("travel", "fake"), ("identity", "x")):
            for metric in ("mae", "ssim", "psnr"):
                metrics[f"{name}_{metric}"] = masked(metric, pred, "y", "mask_xy")
            metrics[f"{name}_mae_cube"] = MeanAbsoluteError(output_transform=_pick(pred, "y"))
    key = key_metric_name(paired)
    return {key: metrics.pop(key)}, metrics


def _lower_is_better(current: float, prev_best: float) -> bool:
    return current < prev_best


class CycleGANEvaluator(Evaluator):
    """Evaluate G_X (and the cycle through G_Y) on batches ``{"x": ..., ["y": ...]}``.

    Args:
        device: torch device.
        val_data_loader: yields dicts with ``x`` and, for traveling pairs, ``y``.
        g_xy, g_yx: the generators being trained; ``g_yx=None`` for a one-way harmonizer (no cycle metrics).
        paired: whether the batches carry ``y`` (sets the metrics).
        val_handlers: handlers (e.g. StatsHandler, CheckpointSaver on the key metric).
        amp: autocast the forward passes.
        inferer: how a generator runs on a batch (default ``SimpleInferer``; a ``SlidingWindowInferer`` for
            volumes larger than the training cubes).
    """

    def __init__(
        self,
        device: str | torch.device,
        val_data_loader: Any,
        g_xy: nn.Module,
        g_yx: nn.Module | None,
        *,
        paired: bool,
        val_handlers: Sequence | None = None,
        amp: bool = False,
        inferer: Inferer | None = None,
    ):
        key, additional = cyclegan_metrics(paired, cycle=g_yx is not None)
        super().__init__(
            device=device,
            val_data_loader=val_data_loader,
            key_val_metric=key,
            additional_metrics=additional,
            metric_cmp_fn=_lower_is_better,
            val_handlers=val_handlers,
            amp=amp,
            decollate=False,
        )
        self.g_xy, self.g_yx, self.paired = g_xy, g_yx, paired
        self.inferer = inferer or SimpleInferer()

    def _iteration(self, engine: "CycleGANEvaluator", batchdata: dict) -> dict[str, torch.Tensor]:
        device = engine.state.device
        x = batchdata["x"].to(device).float()
        self.g_xy.eval()
        if self.g_yx is not None:
            self.g_yx.eval()
        with torch.no_grad(), torch.autocast(torch.device(device).type, enabled=self.amp):
            fake = self.inferer(x, self.g_xy)
            cycle = self.inferer(fake, self.g_yx) if self.g_yx is not None else None
        output = {"x": x, "fake": fake.float(), "mask_x": brain_mask(x)}
        if cycle is not None:
            output["cycle"] = cycle.float()
        if self.paired:
            output["y"] = batchdata["y"].to(device).float()
            output["mask_xy"] = brain_mask(x, output["y"])
        return output
