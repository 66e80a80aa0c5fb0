"""Traveling-subject fidelity: a harmonized image against the same subject's real image at the
site it was harmonized to, beside the identity baseline (the unharmonized image against it).

Metrics (:mod:`pipeline.evaluate.fidelity`): MAE, PSNR and SSIM inside the brain - the union of the
input image's and the real reference image's brain masks, the same mask for the harmonized image and
for the identity baseline - with the whole-cube values beside as ``*_cube`` columns. The CycleGAN
bundle's validation computes the same, so training logs and evaluations are comparable.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from pipeline.evaluate.fidelity import image_fidelity

__all__ = ["image_fidelity", "traveling_fidelity"]


def _load(path: str) -> torch.Tensor:
    return torch.from_numpy(np.asarray(nib.load(path).dataobj, dtype=np.float32))[None, None]


def _mask(path: str | float | None, image: torch.Tensor) -> torch.Tensor:
    """The brain mask file of a row, or the image's nonzero voxels when the row has none."""
    return _load(str(path)) > 0 if isinstance(path, str) and path else image != 0


def traveling_fidelity(
    harmonized: pd.DataFrame, *, output_site: str, subjects: list[str] | None = None
) -> pd.DataFrame:
    """One row per traveling subject: fidelity of the harmonized and of the original image.

    Args:
        harmonized: the table of ``mriharmony harmonize`` (harmonized rows carry ``source_image_cube``;
            the output site's rows are the real images).
        output_site: the site the images were harmonized to.
        subjects: restrict to these subjects (e.g. the test split); default all traveling subjects.

    Columns: subject, input_site, then ``harmonized_<metric>`` and ``identity_<metric>`` for mae,
    psnr, ssim (inside the brain) and mae_cube, psnr_cube, ssim_cube (whole cube).
    """
    done = harmonized[harmonized["harmonized"].astype(bool) & (harmonized["status"] == "ok")]
    real = harmonized[(harmonized["site"] == output_site) & ~harmonized["harmonized"].astype(bool)]
    real = real.drop_duplicates("subject").set_index("subject")
    rows = []
    for _, row in done.iterrows():
        if row["subject"] not in real.index or (subjects is not None and row["subject"] not in subjects):
            continue
        reference = _load(real.loc[row["subject"], "image_cube"])
        source = _load(row["source_image_cube"])
        mask = _mask(row.get("mask_cube"), source) | _mask(real.loc[row["subject"]].get("mask_cube"), reference)
        record = {"subject": row["subject"], "input_site": row["site"], "output_site": output_site}
        for name, image in (("harmonized", _load(row["image_cube"])), ("identity", source)):
            for metric, value in image_fidelity(image, reference, mask).items():
                record[f"{name}_{metric}"] = value
        rows.append(record)
    return pd.DataFrame(rows)
