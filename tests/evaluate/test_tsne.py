"""t-SNE: one point per image with its subject and site, the two sites of a site effect apart, a figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import silhouette_score

from pipeline.evaluate.tsne import tsne_figure, tsne_table

RNG = np.random.default_rng(0)
TABLE = pd.DataFrame(
    {
        "subject": [f"s{i:02d}" for i in range(30)],
        "session": "",
        "site": ["a"] * 15 + ["b"] * 15,
        "age": RNG.uniform(60, 90, 30),
    }
)


def test_one_point_per_image_with_its_labels_and_separated_sites(tmp_path):
    volumes = RNG.normal(0, 1, (30, 8, 8, 8))
    volumes[15:] += 1.5  # site b: a global offset, like a contrast difference
    raw = tsne_table(volumes, TABLE, condition="raw")
    assert list(raw["subject"]) == list(TABLE["subject"]) and list(raw["site"]) == list(TABLE["site"])
    assert (raw["condition"] == "raw").all() and np.isfinite(raw[["x", "y"]]).all().all()
    assert silhouette_score(raw[["x", "y"]], raw["site"]) > 0.5
    same = tsne_table(RNG.normal(0, 1, (30, 8, 8, 8)), TABLE, condition="harmonized")
    assert silhouette_score(same[["x", "y"]], same["site"]) < 0.2  # no site effect: sites mixed
    png = tsne_figure({"raw": raw, "harmonized": same}, tmp_path / "tsne.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_mismatched_or_tiny_inputs_are_refused():
    with pytest.raises(ValueError, match="3 volumes for 30 table rows"):
        tsne_table(np.zeros((3, 8, 8, 8)), TABLE, condition="raw")
    with pytest.raises(ValueError, match="at least 4 images, got 3"):
        tsne_table(np.zeros((3, 8, 8, 8)), TABLE.iloc[:3], condition="raw")
