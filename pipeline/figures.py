"""Figures: matplotlib drawings returned as PNG bytes (the report embeds them as data URIs; the benchmarks save them).

Each function draws one figure from numbers or files a run wrote; nothing here reads a run folder
layout (that is :mod:`pipeline.report.collect`).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = [
    "png_bytes",
    "data_uri",
    "qc_mosaic",
    "site_strip_plot",
    "confusion_figure",
    "gradcam_figure",
    "scatter_figure",
    "probe_dot_plot",
    "forest_plot",
    "penalty_bars",
]


def png_bytes(fig) -> bytes:
    """Render and close a matplotlib figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI, so the page needs no other file and no network."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def qc_mosaic(pictures: Sequence[tuple[str, str | Path]], columns: int = 4) -> bytes:
    """The preprocessing QC pictures (one per image, written by `mriharmony preprocess`) in a grid."""
    rows = max(1, -(-len(pictures) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 1.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, path) in zip(axes.flat, pictures):
        ax.imshow(plt.imread(str(path)))
        ax.set_title(label, fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def site_strip_plot(table: pd.DataFrame, column: str, label: str) -> bytes:
    """One dot per image, per site, with the site median: spots a site or an image out of line."""
    sites = sorted(table["site"].unique())
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(sites), 3))
    rng = np.random.default_rng(0)
    for i, site in enumerate(sites):
        values = table.loc[table["site"] == site, column].to_numpy(float)
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=10, alpha=0.7)
        ax.hlines(np.median(values), i - 0.3, i + 0.3, color="black")
    ax.set_xticks(range(len(sites)), sites)
    ax.set_ylabel(label)
    fig.tight_layout()
    return png_bytes(fig)


def site_strip_panels(table: pd.DataFrame, columns: Sequence[tuple[str, str]], per_row: int = 3) -> bytes:
    """:func:`site_strip_plot` for several columns side by side (e.g. the image quality metrics per site)."""
    sites = sorted(table["site"].unique())
    rows = -(-len(columns) // per_row)
    fig, axes = plt.subplots(rows, per_row, figsize=(per_row * (1.0 + 0.7 * len(sites)), 2.6 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    for ax in axes.flat[len(columns) :]:
        ax.axis("off")
    for ax, (column, label) in zip(axes.flat, columns):
        for i, site in enumerate(sites):
            values = pd.to_numeric(table.loc[table["site"] == site, column], errors="coerce").dropna().to_numpy(float)
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=8, alpha=0.7)
            if len(values):
                ax.hlines(np.median(values), i - 0.3, i + 0.3, color="black")
        ax.set_xticks(range(len(sites)), sites, fontsize=7)
        ax.set_title(label, fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)


def confusion_figure(matrices: dict[str, list[list[int]]], classes: Sequence[str]) -> bytes:
    """Confusion matrices (rows: true class, columns: predicted), one panel per model."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(2.6 * len(matrices), 2.6), squeeze=False)
    for ax, (name, matrix) in zip(axes[0], matrices.items()):
        m = np.asarray(matrix)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=max(1, m.max()))
        for (i, j), value in np.ndenumerate(m):
            ax.text(j, i, str(value), ha="center", va="center", color="black" if value <= m.max() / 2 else "white")
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes)
        ax.set(xlabel="predicted", ylabel="true", title=name)
    fig.tight_layout()
    return png_bytes(fig)


def gradcam_figure(maps: dict[str, str | Path], background: np.ndarray | None) -> bytes:
    """Mid-slices (sagittal, coronal, axial) of each class's mean Grad-CAM map over a mean image."""
    fig, axes = plt.subplots(len(maps), 3, figsize=(7.5, 2.6 * len(maps)), squeeze=False)
    for row, (name, path) in zip(axes, maps.items()):
        heat = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
        for axis, ax in enumerate(row):
            index = [slice(None)] * 3
            index[axis] = heat.shape[axis] // 2
            if background is not None and background.shape == heat.shape:
                ax.imshow(np.rot90(background[tuple(index)]), cmap="gray")
            ax.imshow(np.rot90(heat[tuple(index)]), cmap="jet", alpha=0.4, vmin=0, vmax=max(float(heat.max()), 1e-6))
            ax.axis("off")
            ax.set_title(f"{name}, {('sagittal', 'coronal', 'axial')[axis]}", fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)


def scatter_figure(table: pd.DataFrame, title: str) -> bytes:
    """Predicted vs true age, one colour per site, with the identity line."""
    fig, ax = plt.subplots(figsize=(3.6, 3.6))
    for site, part in table.groupby("site"):
        ax.scatter(part["age"], part["predicted_age"], s=12, alpha=0.7, label=site)
    values = np.concatenate([table["age"].to_numpy(float), table["predicted_age"].to_numpy(float)])
    lims = [float(values.min()) - 2, float(values.max()) + 2]
    ax.plot(lims, lims, color="grey", lw=1)
    ax.set(xlim=lims, ylim=lims, xlabel="true age (years)", ylabel="predicted age (years)", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def _conditions(records: Sequence[dict]) -> list[str]:
    return list(dict.fromkeys(r["condition"] for r in records))


def probe_dot_plot(records: Sequence[dict]) -> bytes:
    """Site probes: one panel per probe x adjustment, a dot and 95% interval per condition, chance dashed."""
    panels = list(dict.fromkeys((r["probe"], r.get("adjustment", "none")) for r in records))
    conditions = _conditions(records)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(2.3 * len(panels) + 1.2, 0.35 * len(conditions) + 1.2), squeeze=False, sharey=True
    )
    for ax, (probe, adjustment) in zip(axes[0], panels):
        part = {r["condition"]: r for r in records if (r["probe"], r.get("adjustment", "none")) == (probe, adjustment)}
        for i, condition in enumerate(conditions):
            if condition in part:
                r = part[condition]
                ax.errorbar(
                    r["balanced_accuracy"],
                    i,
                    xerr=[[r["balanced_accuracy"] - r["low"]], [r["high"] - r["balanced_accuracy"]]],
                    fmt="o",
                    ms=4,
                    color="C0" if condition != "identity" else "black",
                    capsize=2,
                )
        chance = next(iter(part.values()))["chance"]
        ax.axvline(chance, ls="--", color="grey", lw=1)
        ax.set_xlim(min(0.3, chance - 0.1), 1.02)
        ax.set_title(f"{probe}\n{adjustment}", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_yticks(range(len(conditions)), conditions)
    axes[0][0].invert_yaxis()
    fig.supxlabel("balanced accuracy of the site (lower = less site signal)", fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)


def forest_plot(records: Sequence[dict], effects: Sequence[str] = ("age", "AD")) -> bytes:
    """Biological effects: one panel per effect x measure, estimate and 95% interval per condition."""
    rows = [r for r in records if r["effect"] in effects and r.get("low") is not None]
    panels = list(dict.fromkeys((r["effect"], r["measure"]) for r in rows))
    conditions = _conditions(rows)
    columns = min(4, max(1, len(panels)))
    lines = -(-len(panels) // columns) if panels else 1
    fig, axes = plt.subplots(
        lines, columns, figsize=(2.6 * columns + 1.0, (0.28 * len(conditions) + 0.9) * lines), squeeze=False
    )
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (effect, measure) in zip(axes.flat, panels):
        part = {r["condition"]: r for r in rows if (r["effect"], r["measure"]) == (effect, measure)}
        for i, condition in enumerate(conditions):
            if condition in part:
                r = part[condition]
                ax.errorbar(
                    r["estimate"],
                    i,
                    xerr=[[r["estimate"] - r["low"]], [r["high"] - r["estimate"]]],
                    fmt="o",
                    ms=3,
                    color="black" if condition == "identity" else "C1",
                    capsize=2,
                )
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(range(len(conditions)), conditions if ax in axes[:, 0] else [""] * len(conditions), fontsize=7)
        ax.invert_yaxis()
        unit = next(iter(part.values()))["unit"]
        ax.set_title(f"{effect}: {measure.replace('_mean', '')}\n({unit})", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def penalty_bars(records: Sequence[dict]) -> bytes:
    """Cross-site brain-age penalty per route and condition: bars with the 95% interval of the mean."""
    rows = [r for r in records if r.get("penalty") is not None and r["train_site"] != r["test_site"]]
    routes = list(dict.fromkeys((r["train_site"], r["test_site"]) for r in rows))
    fig, axes = plt.subplots(
        1, max(1, len(routes)), figsize=(3.6 * max(1, len(routes)), 3.0), squeeze=False, sharey=True
    )
    for ax, route in zip(axes[0], routes):
        part = [r for r in rows if (r["train_site"], r["test_site"]) == route]
        x = np.arange(len(part))
        values = np.array([r["penalty"] for r in part], float)
        errors = np.array([[r["penalty"] - r["penalty_low"], r["penalty_high"] - r["penalty"]] for r in part], float).T
        ax.bar(x, values, yerr=errors, capsize=3, color=["black" if r["condition"] == "raw" else "C2" for r in part])
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(x, [r["condition"] for r in part], rotation=40, ha="right", fontsize=7)
        ax.set_title(f"trained on {route[0]}, tested on {route[1]}", fontsize=8)
    axes[0][0].set_ylabel("penalty (years of MAE)")
    fig.tight_layout()
    return png_bytes(fig)
