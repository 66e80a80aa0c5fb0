"""QC picture: three orthogonal views of the preprocessed image, brain-mask outline (red) and
template brain edges (cyan), so a misregistration or a bad mask is seen at a glance."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.atomic import atomic_path  # noqa: E402
from pipeline.mni import template_on_box  # noqa: E402

__all__ = ["qc_figure"]


def qc_figure(image: np.ndarray, mask: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Write the QC PNG for a 2 mm MNI-box image (x, y, z in RAS) and its mask."""
    template = template_on_box()["brain"]
    centre = [int(round(c)) for c in np.argwhere(template).mean(0)]
    views = [
        ("sagittal", lambda a: a[centre[0], :, :]),
        ("coronal", lambda a: a[:, centre[1], :]),
        ("axial", lambda a: a[:, :, centre[2]]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), facecolor="black")
    for ax, (name, cut) in zip(axes, views):
        ax.imshow(cut(image).T, origin="lower", cmap="gray", vmin=0, vmax=1)
        ax.contour(cut(mask.astype(float)).T, levels=[0.5], colors="red", linewidths=0.8)
        ax.contour(cut(template.astype(float)).T, levels=[0.5], colors="cyan", linewidths=0.6, linestyles="dashed")
        ax.set_title(name, color="white", fontsize=9)
        ax.axis("off")
    fig.suptitle(title, color="white", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, facecolor="black", format="png")
    plt.close(fig)
    return Path(path)
