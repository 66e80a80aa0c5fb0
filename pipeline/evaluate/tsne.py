"""t-SNE of 8^3-resized volumes before and after harmonization (Komandur et al. 2023, Figure 2), coloured by site.

One point per image (a traveling subject scanned at two sites gives two points, one per site). The
embedding is scikit-learn's TSNE (PCA initialisation, a fixed seed, perplexity capped for small sets);
the figure puts the conditions side by side with the same site colours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from sklearn.manifold import TSNE

from pipeline.atomic import atomic_path

__all__ = ["tsne_table", "tsne_figure"]


def tsne_table(
    volumes: np.ndarray, table: pd.DataFrame, *, condition: str, seed: int = 0, perplexity: float = 30.0
) -> pd.DataFrame:
    """Embed ``volumes`` (N, ...) in 2D; returns ``table``'s subject, session, site with x, y and condition.

    The perplexity is capped at (N - 1) / 3 so small test sets embed too.
    """
    if len(volumes) != len(table):
        raise ValueError(f"t-SNE: {len(volumes)} volumes for {len(table)} table rows")
    if len(volumes) < 4:
        raise ValueError(f"t-SNE needs at least 4 images, got {len(volumes)}")
    flat = np.asarray(volumes, dtype=np.float64).reshape(len(volumes), -1)
    embedding = TSNE(
        n_components=2, perplexity=min(perplexity, (len(flat) - 1) / 3), init="pca", random_state=seed
    ).fit_transform(flat)
    columns = [c for c in ("subject", "session", "site", "diagnosis", "age") if c in table.columns]
    out = table[columns].reset_index(drop=True).copy()
    out["x"], out["y"], out["condition"] = embedding[:, 0], embedding[:, 1], condition
    return out


def tsne_figure(tables: Mapping[str, pd.DataFrame], path: str | Path, *, title: str = "t-SNE of 8^3 volumes") -> Path:
    """One panel per condition (e.g. raw, cyclegan, histogram), points coloured by site; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sites = sorted({s for t in tables.values() for s in t["site"]})
    colours = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(sites)}
    fig, axes = plt.subplots(1, len(tables), figsize=(4 * len(tables), 4), squeeze=False)
    for ax, (condition, table) in zip(axes[0], tables.items()):
        for site in sites:
            part = table[table["site"] == site]
            ax.scatter(part["x"], part["y"], s=14, color=colours[site], label=site, alpha=0.8)
        ax.set_title(condition)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
