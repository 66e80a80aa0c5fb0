"""Image quality metrics (IQMs) of one T1w image, as MRIQC defines them (Esteban et al. 2017, "MRIQC: Advancing
the automatic prediction of image quality in MRI from unseen sites").

Site effects show here first: contrast, noise and ghosting differ between scanners before any model sees them.

* ``snr_wm``: mean / standard deviation of the white matter (MRIQC ``snr_wm``);
* ``cnr``: |mu_WM - mu_GM| / sqrt(sigma_air^2 + sigma_WM^2 + sigma_GM^2) (MRIQC ``cnr``);
* ``cjv``: (sigma_WM + sigma_GM) / |mu_WM - mu_GM|, the coefficient of joint variation (lower is better);
* ``efc``: the entropy focus criterion, Shannon entropy of the voxel intensities normalised by its maximum
  (ghosting and blur raise it);
* ``fber``: mean energy of the head over mean energy of the air (NaN when the air is exactly zero, as in
  images whose background was blanked);
* ``wm_gm_ratio``: mu_WM / mu_GM, above 1 for T1 contrast, below 1 for an inverted (T2-like) image.

MRIQC segments the tissues with FSL FAST; here the white and grey matter come from the template's tissue
priors (probability >= 0.9 and >= 0.7, inside the image's own brain mask) on the 2 mm MNI box after the rigid
registration, a cheaper approximation that needs no extra segmentation. The head and the air come from Otsu's
threshold on the native image, subsampled to about 2 million voxels (every second voxel of a 1 mm head): air is
everything outside the head mask grown by 2 (subsampled) voxels; EFC and FBER are computed on the same voxels.

Example:
    >>> import numpy as np
    >>> round(entropy_focus_criterion(np.ones((10, 10, 10))), 6)  # every voxel equal: maximal entropy
    1.0
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from pipeline.mni import MNI_BOX_AFFINE, MNI_BOX_SHAPE, nilearn_template_maps, resample_to_grid

__all__ = ["IQM_NAMES", "image_quality_metrics", "entropy_focus_criterion", "tissue_priors_on_box"]

IQM_NAMES: tuple[str, ...] = ("snr_wm", "cnr", "cjv", "efc", "fber", "wm_gm_ratio")


@lru_cache(maxsize=1)
def tissue_priors_on_box() -> dict[str, np.ndarray]:
    """White- and grey-matter masks from the template's priors on the 2 mm MNI box (WM >= 0.9, GM >= 0.7)."""
    affine, maps = nilearn_template_maps()
    wm = resample_to_grid(maps["wm"], affine, MNI_BOX_AFFINE, MNI_BOX_SHAPE)
    gm = resample_to_grid(maps["gm"], affine, MNI_BOX_AFFINE, MNI_BOX_SHAPE)
    return {"wm": wm >= 0.9, "gm": gm >= 0.7}


def entropy_focus_criterion(data: np.ndarray) -> float:
    """MRIQC's EFC: sum of -(x/x_max) ln(x/x_max) with x_max = sqrt(sum x^2), over its value for a flat image."""
    x = np.abs(np.asarray(data, dtype=np.float64)).ravel()
    n = x.size
    x_max = np.sqrt(np.sum(x**2))
    if x_max == 0:
        return float("nan")
    p = x[x > 0] / x_max
    efc_max = n * (1.0 / np.sqrt(n)) * np.log(np.sqrt(n))
    return float(np.sum(-p * np.log(p)) / efc_max)


def _head_and_air(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.SetInsideValue(0)
    otsu.SetOutsideValue(1)
    otsu.Execute(sitk.GetImageFromArray(np.ascontiguousarray(raw, dtype=np.float32)))
    head = raw > otsu.GetThreshold()
    head = ndi.binary_fill_holes(ndi.binary_closing(head, iterations=1))
    air = ~ndi.binary_dilation(head, iterations=2)
    return head, air


def _subsampled(raw: np.ndarray, voxels: int = 2_000_000) -> np.ndarray:
    """Every k-th voxel along each axis so that about ``voxels`` remain: the native-space statistics (air noise,
    FBER, EFC) change little, and a 1 mm head costs a tenth of the time."""
    step = max(1, int(np.ceil((raw.size / voxels) ** (1 / 3))))
    return raw[::step, ::step, ::step]


def image_quality_metrics(raw: np.ndarray, image_2mm: np.ndarray, mask_2mm: np.ndarray) -> dict[str, float]:
    """The IQMs of one image.

    Args:
        raw: the input image as loaded (native grid, before bias correction).
        image_2mm: the bias-corrected brain on the 2 mm MNI box, in the input's intensity units (before [0, 1]).
        mask_2mm: its brain mask on the box.
    """
    priors = tissue_priors_on_box()
    wm, gm = image_2mm[priors["wm"] & mask_2mm], image_2mm[priors["gm"] & mask_2mm]
    raw = _subsampled(np.asarray(raw, dtype=np.float32))
    head, air = _head_and_air(raw)
    sigma_air = float(raw[air].std()) if air.any() else 0.0
    if len(wm) < 10 or len(gm) < 10:
        tissue = dict.fromkeys(("snr_wm", "cnr", "cjv", "wm_gm_ratio"), float("nan"))
    else:
        mu_wm, mu_gm, sd_wm, sd_gm = float(wm.mean()), float(gm.mean()), float(wm.std(ddof=1)), float(gm.std(ddof=1))
        gap = abs(mu_wm - mu_gm)
        tissue = {
            "snr_wm": mu_wm / sd_wm if sd_wm else float("nan"),
            "cnr": gap / float(np.sqrt(sigma_air**2 + sd_wm**2 + sd_gm**2)),
            "cjv": (sd_wm + sd_gm) / gap if gap else float("inf"),
            "wm_gm_ratio": mu_wm / mu_gm if mu_gm else float("nan"),
        }
    background_energy = float(np.mean(raw[air].astype(np.float64) ** 2)) if air.any() else 0.0
    fber = (
        float(np.mean(raw[head].astype(np.float64) ** 2)) / background_energy if background_energy > 0 else float("nan")
    )
    metrics = {**tissue, "efc": entropy_focus_criterion(raw), "fber": fber}
    return {name: round(float(metrics[name]), 4) for name in IQM_NAMES}
