"""2D slices of preprocessed volumes, a derived view for 2D models.

Two modes:

- ``mid``: the middle slice of each requested view (axial, coronal, sagittal), as the three-view
  network of Wang 2020 ("MRI-based Diagnosis of Alzheimer's Disease using Deep
  Learning with CycleGAN for Data Augmentation") uses;
- ``range``: ``n`` neighbouring slices of each view around its centre (indices
  ``c - n // 2 ... c - n // 2 + n - 1``), as in the blog post "Detecting Alzheimer's
  disease with deep learning" (2019).

Views follow the image's orientation from its affine, not array order: sagittal slices cut the
left-right axis, coronal the anterior-posterior axis, axial the superior-inferior axis. Each slice is
written as ``.npy`` (float32, the volume's exact values, array axes in the volume's order) and as an
8-bit PNG for eyes: values clipped to [0, 1], scaled to 0-255 and rounded, transposed and flipped
vertically (``np.flipud(slice.T)``) so that, for RAS images, anterior (axial) or superior (coronal,
sagittal) is up. ``slices.tsv`` links every slice to its subject, session, site, labels and split, so
2D training keeps subject-level splits.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
import pandas as pd
from PIL import Image

from pipeline.atomic import atomic_path, write_table

__all__ = ["VIEWS", "VIEW_AXES", "view_axis", "slice_indices", "to_png_array", "extract_slices"]

#: the three views, in the order every output uses (slice files, the three-view channels, Grad-CAM panels)
VIEWS = ("axial", "coronal", "sagittal")
#: the anatomical axis each view slices across, as nibabel orientation codes
VIEW_AXES = {"axial": "SI", "coronal": "AP", "sagittal": "LR"}
LABEL_COLUMNS = ["subject", "session", "site", "age", "sex", "diagnosis", "split", "fold"]


def view_axis(affine: np.ndarray, view: str) -> int:
    """The array axis a ``view`` slices across, from the affine's orientation."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {sorted(VIEWS)}")
    codes = nib.aff2axcodes(affine)
    for axis, code in enumerate(codes):
        if code in VIEW_AXES[view]:
            return axis
    raise ValueError(f"affine orientation {codes} has no {view} axis")


def slice_indices(size: int, mode: str, n: int = 20) -> list[int]:
    """Indices along an axis of ``size`` voxels: the centre (``mid``) or ``n`` around it (``range``)."""
    centre = size // 2
    if mode == "mid":
        return [centre]
    if mode == "range":
        if not 1 <= n <= size:
            raise ValueError(f"--n must be between 1 and the axis size {size}, got {n}")
        start = centre - n // 2
        return list(range(start, start + n))
    raise ValueError(f"mode must be 'mid' or 'range', got {mode!r}")


def to_png_array(plane: np.ndarray) -> np.ndarray:
    """The 8-bit display image of a slice (see the module docstring)."""
    return np.flipud(np.rint(np.clip(plane, 0.0, 1.0) * 255).astype(np.uint8).T)


def extract_slices(
    table: pd.DataFrame,
    out: str | Path,
    *,
    views: Sequence[str] = ("axial", "coronal", "sagittal"),
    mode: str = "mid",
    n: int = 20,
    image_column: str = "image_cube",
    png: bool = True,
) -> pd.DataFrame:
    """Write the slices of every row's ``image_column`` volume under ``out``; returns (and writes) slices.tsv."""
    out = Path(os.path.abspath(out))  # workers get absolute paths; tables store them relative to themselves
    if image_column not in table.columns:
        raise ValueError(f"table has no column {image_column!r} (columns: {list(table.columns)})")
    for view in views:
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; expected some of {sorted(VIEWS)}")
    rows = []
    for _, row in table.iterrows():
        img = nib.load(row[image_column])
        volume = np.asarray(img.dataobj, dtype=np.float32)
        if volume.ndim != 3:
            raise ValueError(f"{row[image_column]}: expected a 3D volume, got shape {volume.shape}")
        session = str(row.get("session") or "")
        stem = f"sub-{row['subject']}" + (f"_ses-{session}" if session else "")
        labels = {c: row[c] for c in LABEL_COLUMNS if c in table.columns}
        for view in views:
            axis = view_axis(img.affine, view)
            for index in slice_indices(volume.shape[axis], mode, n):
                plane = np.take(volume, index, axis=axis)
                base = out / f"sub-{row['subject']}" / f"{stem}_view-{view}_slice-{index:03d}"
                npy = base.with_suffix(".npy")
                with atomic_path(npy) as tmp:
                    np.save(tmp, plane)
                record = {
                    **labels,
                    "view": view,
                    "axis": axis,
                    "index": index,
                    "npy": str(npy),
                    "source": row[image_column],
                }
                if png:
                    png_path = base.with_suffix(".png")
                    with atomic_path(png_path) as tmp:
                        Image.fromarray(to_png_array(plane)).save(tmp, format="PNG")
                    record["png"] = str(png_path)
                rows.append(record)
    result = pd.DataFrame(rows)
    write_table(out / "slices.tsv", result)
    return result
