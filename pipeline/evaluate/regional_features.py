"""Image-derived regional measures for the biological-signal check and ComBat: mean intensity per region.

Preprocessed images are in MNI space, so the template's labels (the phantom's template:
lateral ventricles, hippocampus, grey and white matter; see :mod:`pipeline.phantom.template`) are mapped
into each image's grid through its affine and used as weights. Ventricle enlargement and hippocampal
atrophy replace tissue by CSF, which lowers the mean T1 intensity of those regions, so the measures carry
the age and AD effects; contrast differences between scanners shift them too, which is the site effect a
harmonizer must remove without removing the biology.
"""

from __future__ import annotations

from functools import lru_cache

import nibabel as nib
import numpy as np
import pandas as pd

__all__ = ["REGIONS", "region_weights", "regional_means", "regional_feature_table"]

REGIONS: tuple[str, ...] = ("ventricles", "hippocampus", "gm", "wm")


@lru_cache(maxsize=8)
def _weights(affine_bytes: bytes, shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    from pipeline.mni import resample_to_grid
    from pipeline.phantom.template import template_labels

    labels, template_affine = template_labels(2.0)
    affine = np.frombuffer(affine_bytes, dtype=np.float64).reshape(4, 4)
    codes = {"ventricles": [4], "hippocampus": [5], "gm": [2], "wm": [3]}
    return {
        name: resample_to_grid(np.isin(labels, values).astype(np.float32), template_affine, affine, shape)
        for name, values in codes.items()
    }


def region_weights(affine: np.ndarray, shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Template regions on the grid (affine, shape) as weights in [0, 1] (partial voxels at the edges)."""
    return _weights(np.asarray(affine, dtype=np.float64).tobytes(), tuple(int(s) for s in shape))


def regional_means(image: np.ndarray, affine: np.ndarray) -> dict[str, float]:
    """Weighted mean intensity of ``image`` in each of :data:`REGIONS`."""
    image = np.asarray(image, dtype=np.float32)
    out = {}
    for name, weight in region_weights(affine, image.shape).items():
        total = float(weight.sum())
        if total <= 0:
            raise ValueError(f"region {name} does not overlap the image grid (is the image in MNI space?)")
        out[f"{name}_mean"] = float((image * weight).sum() / total)
    return out


def regional_feature_table(table: pd.DataFrame, image_key: str = "image_cube") -> pd.DataFrame:
    """One row per image: the table's subject, session, site, age, sex, diagnosis and the regional means."""
    columns = [c for c in ("subject", "session", "site", "age", "sex", "diagnosis") if c in table.columns]
    rows = []
    for _, row in table.iterrows():
        img = nib.load(str(row[image_key]))
        rows.append(
            {**{c: row[c] for c in columns}, **regional_means(np.asarray(img.dataobj, dtype=np.float32), img.affine)}
        )
    return pd.DataFrame(rows)
