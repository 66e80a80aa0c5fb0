"""Quality of synthetic images: fidelity to real ones, diversity, distribution distance, memorization.

- Fidelity: SSIM and PSNR of each synthetic image to its nearest real training image (nearest by SSIM),
  inside the brain - the union of both images' nonzero voxels (:mod:`pipeline.evaluate.fidelity`), since
  the zero background of a preprocessed cube would inflate SSIM.
- Diversity: mean pairwise MS-SSIM among synthetic images beside the same among real images (MONAI
  MultiScaleSSIMMetric; fewer scales on small volumes). Lower = more diverse; a collapsed generator is
  near 1.
- Distribution distance on the features of a pluggable 3D encoder (:class:`LayerFeatures`, default the
  last pooling layer of our own trained classifier, since no pretrained medical weights can be
  downloaded): FID (MONAI's ``get_fid_score``) and a Gaussian-kernel MMD^2 (biased estimator, median
  bandwidth; written out here because MONAI's MMDMetric is the unbiased linear-kernel statistic, which is
  not zero for identical sets and needs equal sample sizes).
- Memorization: a synthetic image whose nearest-real SSIM exceeds the largest nearest-neighbour SSIM
  between two real training images *of different subjects* is flagged as a likely copy (the same anatomy
  scanned at two sites - a traveling subject - would otherwise raise the threshold).

:func:`quality_report` gathers all of them per generator and class from a synthetic.tsv and the real
training images.
"""

from __future__ import annotations

from typing import Callable, Sequence

import nibabel as nib
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from monai.metrics import MultiScaleSSIMMetric
from monai.metrics.fid import get_fid_score

from pipeline.evaluate.fidelity import brain_mask, masked_fidelity

__all__ = [
    "nearest_real",
    "real_nearest_neighbour_ssim",
    "pairwise_ms_ssim",
    "gaussian_mmd",
    "fid",
    "LayerFeatures",
    "memorization_flags",
    "quality_report",
]


def _pairwise(metric: Callable, a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """metric(a[i], b[j]) for all i, j: (len(a), len(b)); one batched call per row."""
    out = np.empty((len(a), len(b)))
    for i in range(len(a)):
        out[i] = metric(a[i : i + 1].expand_as(b), b).reshape(-1).cpu().numpy()
    return out


def _brain_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return masked_fidelity(a, b, brain_mask(a, b))["ssim"]


def nearest_real(synthetic: torch.Tensor, real: torch.Tensor) -> dict[str, np.ndarray]:
    """For each synthetic image (N, 1, *spatial), its nearest real image by in-brain SSIM: index, SSIM and PSNR."""
    ssim = _pairwise(_brain_ssim, synthetic, real)
    index = ssim.argmax(axis=1)
    nearest = real[index]
    psnr = masked_fidelity(synthetic, nearest, brain_mask(synthetic, nearest))["psnr"].reshape(-1).cpu().numpy()
    return {"index": index, "ssim": ssim[np.arange(len(synthetic)), index], "psnr": psnr}


def real_nearest_neighbour_ssim(real: torch.Tensor, subjects: Sequence[str] | None = None) -> np.ndarray:
    """For each real image, the in-brain SSIM to its nearest real image of *another subject* (the
    memorization reference); ``subjects``: each image's subject (default: every image its own subject)."""
    ssim = _pairwise(_brain_ssim, real, real)
    owner = np.asarray(subjects).astype(str) if subjects is not None else np.arange(len(real)).astype(str)
    ssim[owner[:, None] == owner[None, :]] = -np.inf  # itself, and the same anatomy scanned elsewhere
    return ssim.max(axis=1)


def memorization_flags(nearest_ssim: np.ndarray, real_nn_ssim: np.ndarray) -> np.ndarray:
    """True where a synthetic image is closer to a real image than any two real images are to each other."""
    return np.asarray(nearest_ssim) > float(np.max(real_nn_ssim))


def pairwise_ms_ssim(images: torch.Tensor) -> float:
    """Mean MS-SSIM over distinct pairs of a set (N >= 2); scales reduced to fit small volumes."""
    size = min(images.shape[2:])
    kernel = 11 if size >= 64 else 7
    # MONAI needs every side > (kernel - 1) * 2^(levels - 1): keep the most scales (up to 5) that fit
    levels = max([n for n in range(1, 6) if (kernel - 1) * 2 ** (n - 1) < size], default=1)
    weights = np.array((0.0448, 0.2856, 0.3001, 0.2363, 0.1333)[:levels])
    metric = MultiScaleSSIMMetric(
        spatial_dims=images.ndim - 2, data_range=1.0, kernel_size=kernel, weights=tuple(weights / weights.sum())
    )
    values = _pairwise(metric, images, images)
    return float(values[~np.eye(len(images), dtype=bool)].mean())


def gaussian_mmd(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """Biased MMD^2 between feature sets (n, d) and (m, d), Gaussian kernel; 0 for identical sets.

    ``bandwidth``: the kernel's sigma; default the median pairwise distance of the pooled features.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    pooled = np.concatenate([x, y])
    distances = np.sum((pooled[:, None] - pooled[None]) ** 2, axis=-1)
    if bandwidth is None:
        positive = distances[distances > 0]
        bandwidth = float(np.sqrt(np.median(positive) / 2)) if positive.size else 1.0
    kernel = np.exp(-distances / (2 * bandwidth**2))
    n = len(x)
    return float(kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean())


def fid(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between feature sets (MONAI ``get_fid_score``)."""
    return float(get_fid_score(torch.as_tensor(np.asarray(x, float)), torch.as_tensor(np.asarray(y, float))))


class LayerFeatures:
    """A pluggable encoder: the flattened output of one named layer of a network (a forward hook).

    Example: ``LayerFeatures(classifier, "avgpool")`` for a MONAI ResNet, or
    ``LayerFeatures(brain_age_net, "features")`` for :class:`~pipeline.nets.BrainAgeCNN3D`.
    """

    def __init__(self, network: torch.nn.Module, layer: str) -> None:
        self.network = network.eval()
        self.layer = dict(network.named_modules())[layer]

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 8) -> np.ndarray:
        captured: list[torch.Tensor] = []
        handle = self.layer.register_forward_hook(lambda _m, _i, out: captured.append(out.flatten(1).cpu()))
        try:
            for start in range(0, len(images), batch_size):
                self.network(images[start : start + batch_size])
        finally:
            handle.remove()
        return torch.cat(captured).double().numpy()


def _load(paths: list[str], size: int) -> torch.Tensor:
    volumes = []
    for path in paths:
        x = torch.from_numpy(np.asarray(nib.load(path).dataobj, dtype=np.float32))[None, None]
        volumes.append(F.interpolate(x, size=(size,) * 3, mode="area") if x.shape[2:] != (size,) * 3 else x)
    return torch.cat(volumes)


def quality_report(
    synthetic: pd.DataFrame, real: pd.DataFrame, *, encoder: Callable | None = None, size: int = 32
) -> pd.DataFrame:
    """One row per (generator, class): fidelity, diversity, distances and memorization of its images.

    Args:
        synthetic: rows with ``image``, ``diagnosis``, ``generator`` (a synthetic.tsv).
        real: the real *training* rows with ``image``, ``diagnosis`` and ``subject`` (what the generator saw;
            images of one subject are never each other's memorization reference).
        encoder: images -> features (N, F) for FID and MMD, e.g. :class:`LayerFeatures`; None skips them.
        size: the cube side images are compared at (area resize).
    """
    rows = []
    for (generator, name), part in synthetic.groupby(["generator", "diagnosis"], sort=True):
        reference = real[real["diagnosis"] == name]
        if len(reference) < 2 or len(part) < 2:
            continue
        fake, true = _load(list(part["image"]), size), _load(list(reference["image"]), size)
        nearest = nearest_real(fake, true)
        real_nn = real_nearest_neighbour_ssim(true, reference["subject"].to_numpy() if "subject" in reference else None)
        # one subject only: no pair of different subjects, no threshold (memorization undefined, NaN)
        flags = memorization_flags(nearest["ssim"], real_nn) if np.isfinite(real_nn).any() else None
        row = {
            "generator": generator,
            "diagnosis": name,
            "n_synthetic": len(part),
            "n_real": len(reference),
            "nearest_ssim_mean": float(nearest["ssim"].mean()),
            "nearest_psnr_mean": float(nearest["psnr"].mean()),
            "ms_ssim_synthetic": pairwise_ms_ssim(fake),
            "ms_ssim_real": pairwise_ms_ssim(true),
            "real_nn_ssim_max": float(real_nn.max()) if flags is not None else float("nan"),
            "memorized": int(flags.sum()) if flags is not None else float("nan"),
            "memorized_fraction": float(flags.mean()) if flags is not None else float("nan"),
        }
        if encoder is not None:
            a, b = encoder(fake), encoder(true)
            row.update({"fid": fid(a, b), "mmd": gaussian_mmd(a, b)})
        rows.append(row)
    return pd.DataFrame(rows)
