"""Fidelity of an image (harmonized or synthetic) to a real one, inside the brain.

Preprocessed images are zero outside the brain, so most of a 64^3 cube is background that any method
reproduces exactly: over the whole cube the MAE shrinks and the SSIM grows with the background's share.
The primary metrics are therefore computed inside the brain mask - the union of both images' masks
(by default their nonzero voxels) - and the whole-cube values are kept beside them as ``*_cube``:

- ``mae``: mean absolute difference over the mask's voxels;
- ``psnr``: 10 log10(1 / MSE), the MSE over the mask's voxels (data range 1);
- ``ssim``: MONAI's local SSIM map (Gaussian window 11, sigma 1.5, ``compute_ssim_and_cs``) averaged over
  the mask's voxels where the map is defined (it is a "valid" convolution: half a window is cut off at
  each side).

:class:`MaskedFidelityMetric` is the same computation as a MONAI metric for Ignite handlers (the CycleGAN's
validation), so training logs and evaluations report the same numbers.
"""

from __future__ import annotations

import torch
from monai.metrics import CumulativeIterationMetric, MAEMetric, PSNRMetric, SSIMMetric
from monai.metrics.regression import compute_ssim_and_cs

__all__ = ["FIDELITY_METRICS", "brain_mask", "masked_fidelity", "image_fidelity", "MaskedFidelityMetric"]

FIDELITY_METRICS = ("mae", "psnr", "ssim")
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5


def brain_mask(*images: torch.Tensor) -> torch.Tensor:
    """The union of the images' nonzero voxels (preprocessing zeroes everything outside the brain)."""
    mask = torch.zeros_like(images[0], dtype=torch.bool)
    for image in images:
        mask |= image != 0
    return mask


def masked_fidelity(image: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """MAE, PSNR and SSIM inside ``mask`` per batch item (tensors N, 1, *spatial in [0, 1]); NaN for an empty mask."""
    mask = mask.to(torch.bool)
    weight = mask.float()
    dims = tuple(range(1, image.ndim))
    count = weight.sum(dims)
    error = image.float() - reference.float()
    mae = (error.abs() * weight).sum(dims) / count
    mse = (error**2 * weight).sum(dims) / count
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-12))
    spatial = image.ndim - 2
    ssim_map, _ = compute_ssim_and_cs(
        image.float(),
        reference.float(),
        spatial_dims=spatial,
        kernel_size=[SSIM_WINDOW] * spatial,
        kernel_sigma=[SSIM_SIGMA] * spatial,
        data_range=1.0,
    )
    cut = SSIM_WINDOW // 2
    inner = weight[(slice(None), slice(None)) + (slice(cut, -cut),) * spatial]
    ssim = (ssim_map * inner).sum(dims) / inner.sum(dims)
    nan = torch.full_like(mae, float("nan"))
    return {
        "mae": torch.where(count > 0, mae, nan),
        "psnr": torch.where(count > 0, psnr, nan),
        "ssim": torch.where(inner.sum(dims) > 0, ssim, nan),
    }


def image_fidelity(image: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, float]:
    """In-mask ``mae``, ``psnr``, ``ssim`` and whole-cube ``mae_cube``, ``psnr_cube``, ``ssim_cube`` of ``image``
    against ``reference`` (tensors N, 1, D, H, W in [0, 1], mean over N).

    ``mask``: the brain mask; default :func:`brain_mask` of both images.
    """
    mask = brain_mask(image, reference) if mask is None else mask
    inside = {name: float(value.mean()) for name, value in masked_fidelity(image, reference, mask).items()}
    cube = {
        "mae_cube": float(MAEMetric()(image, reference).mean()),
        "psnr_cube": float(PSNRMetric(max_val=1.0)(image, reference).mean()),
        "ssim_cube": float(SSIMMetric(spatial_dims=image.ndim - 2, data_range=1.0)(image, reference).mean()),
    }
    return {**inside, **cube}


class MaskedFidelityMetric(CumulativeIterationMetric):
    """One of :data:`FIDELITY_METRICS` inside a mask, for ``IgniteMetricHandler``.

    ``y`` carries the reference as channel 0 and the mask as channel 1 (an output transform such as
    ``lambda o: (o["fake"], torch.cat([o["y"], o["mask"]], 1))``), since Ignite passes two tensors.
    """

    def __init__(self, metric: str) -> None:
        super().__init__()
        if metric not in FIDELITY_METRICS:
            raise ValueError(f"metric must be one of {FIDELITY_METRICS}, got {metric!r}")
        self.metric = metric

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None or y.shape[1] != 2:
            raise ValueError("MaskedFidelityMetric: y must hold the reference (channel 0) and the mask (channel 1)")
        return masked_fidelity(y_pred, y[:, :1], y[:, 1:] > 0)[self.metric][:, None]

    def aggregate(self) -> torch.Tensor:
        values = self.get_buffer()
        return torch.nanmean(values.float()) if isinstance(values, torch.Tensor) else torch.tensor(float("nan"))
