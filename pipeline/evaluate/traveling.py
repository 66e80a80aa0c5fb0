"""Traveling-subject fidelity: a harmonized image against the same subject's real image at the
site it was harmonized to, beside the identity baseline (the unharmonized image against it).

Metrics are MONAI's (MAE, PSNR with data range 1, SSIM with a Gaussian window of 11 and sigma
1.5) over the whole 64^3 volume in [0, 1], the same as the CycleGAN bundle's validation, so
numbers are comparable between training logs and evaluation.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from monai.metrics import MAEMetric, PSNRMetric, SSIMMetric

__all__ = ["image_fidelity", "traveling_fidelity"]


def _load(path: str) -> torch.Tensor:
    return torch.from_numpy(np.asarray(nib.load(path).dataobj, dtype=np.float32))[None, None]


def image_fidelity(image: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """MAE, PSNR and SSIM of ``image`` against ``reference`` (tensors N, 1, D, H, W in [0, 1])."""
    return {
        "mae": float(MAEMetric()(image, reference).mean()),
        "psnr": float(PSNRMetric(max_val=1.0)(image, reference).mean()),
        "ssim": float(SSIMMetric(spatial_dims=3, data_range=1.0)(image, reference).mean()),
    }


def traveling_fidelity(harmonized: pd.DataFrame, *, output_site: str, subjects: list[str] | None = None) -> pd.DataFrame:
    """One row per traveling subject: fidelity of the harmonized and of the original image.

    Args:
        harmonized: the table of ``mriharmony harmonize`` (harmonized rows carry ``source_image_cube``;
            the output site's rows are the real images).
        output_site: the site the images were harmonized to.
        subjects: restrict to these subjects (e.g. the test split); default all traveling subjects.

    Columns: subject, input_site, then ``harmonized_<metric>`` and ``identity_<metric>`` for mae,
    psnr, ssim.
    """
    done = harmonized[harmonized["harmonized"].astype(bool) & (harmonized["status"] == "ok")]
    real = harmonized[(harmonized["site"] == output_site) & ~harmonized["harmonized"].astype(bool)]
    real = real.drop_duplicates("subject").set_index("subject")
    rows = []
    for _, row in done.iterrows():
        if row["subject"] not in real.index or (subjects is not None and row["subject"] not in subjects):
            continue
        reference = _load(real.loc[row["subject"], "image_cube"])
        record = {"subject": row["subject"], "input_site": row["site"], "output_site": output_site}
        for name, path in (("harmonized", row["image_cube"]), ("identity", row["source_image_cube"])):
            for metric, value in image_fidelity(_load(path), reference).items():
                record[f"{name}_{metric}"] = value
        rows.append(record)
    return pd.DataFrame(rows)
