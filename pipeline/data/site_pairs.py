"""Which images a site-to-site CycleGAN trains and validates on, from a preprocessed cohort.

Rules (honest evaluation):

- Training uses only subjects of the ``train`` split, and only subjects scanned at one site:
  traveling subjects (scanned at both sites) are never trained on, because they are the ground
  truth for harmonization fidelity.
- Validation (checkpoint selection) uses traveling subjects of the ``train`` and ``val`` splits when
  there are any: the pair (site-X image, same subject's site-Y image). Traveling subjects of the
  ``test`` split are kept for the final evaluation. Without traveling subjects, validation uses
  the site-X images of the ``val`` split (cycle-reconstruction error only).

The two domains are sites by default; ``domain_key="diagnosis"`` makes them classes (the CN <-> AD
translation of Wang (2020) for synthetic augmentation: no subject has both, so validation is cycle error only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.cohort import attach_splits, find_splits_file, read_splits
from pipeline.preprocess.batch import read_preprocessed

__all__ = ["SitePairData", "site_pair_data"]

log = logging.getLogger("mriharmony.cyclegan")


@dataclass
class SitePairData:
    """Item lists (dicts with ``image`` path, ``subject``, ``session``, ``age``) for one site pair."""

    source_site: str
    target_site: str
    train_x: list[dict] = field(default_factory=list)
    train_y: list[dict] = field(default_factory=list)
    val_x: list[dict] = field(default_factory=list)
    val_pairs: list[dict] = field(default_factory=list)  # {"x": path, "y": path, "subject": ...}

    def summary(self) -> str:
        return (
            f"{self.source_site} -> {self.target_site}: train {len(self.train_x)} x {len(self.train_y)} images, "
            f"validation {len(self.val_pairs)} traveling pairs, {len(self.val_x)} val images"
        )


def _item(row: pd.Series, image_key: str) -> dict:
    return {
        "image": row[image_key],
        "subject": row["subject"],
        "session": row["session"],
        "age": float(row["age"]) if str(row.get("age", "")) not in ("", "nan") else float("nan"),
    }


def site_pair_data(
    dataset_dir: str | Path,
    source_site: str,
    target_site: str,
    *,
    splits_file: str | Path | None = None,
    image_key: str = "image_cube",
    domain_key: str = "site",
) -> SitePairData:
    """Build the training and validation items of a ``source_site`` -> ``target_site`` CycleGAN.

    Args:
        dataset_dir: preprocessing derivatives folder (with ``preprocessed.tsv``), or a harmonized one.
        source_site: domain X.
        target_site: domain Y.
        splits_file: the subject-level split table (default: ``splits.tsv`` in or beside ``dataset_dir``).
        image_key: table column of the images (``image_cube``: the 64^3 images).
        domain_key: the column whose values are the two domains (``site``, or ``diagnosis``).
    """
    table = read_preprocessed(dataset_dir)
    if domain_key not in table.columns:
        raise ValueError(f"domain_key {domain_key!r} is not a column of {dataset_dir}")
    table = table.assign(site=table[domain_key].astype(str))  # the domains play the role of sites below
    sites = sorted(set(table["site"]))
    for name, site in (("source_site", source_site), ("target_site", target_site)):
        if site not in sites:
            raise ValueError(f"{name} {site!r} is not a {domain_key} of {dataset_dir} ({domain_key} values: {sites})")
    if source_site == target_site:
        raise ValueError(f"source_site and target_site are both {source_site!r}")
    splits_path = find_splits_file(dataset_dir, splits_file)
    table = attach_splits(table, read_splits(splits_path))
    log.info("splits: %s", splits_path)
    table = table[table["site"].isin([source_site, target_site])]
    n_sites = table.groupby("subject")["site"].nunique()
    traveling = set(n_sites[n_sites > 1].index)

    data = SitePairData(source_site, target_site)
    single = table[~table["subject"].isin(traveling)]
    for _, row in single[single["split"] == "train"].iterrows():
        (data.train_x if row["site"] == source_site else data.train_y).append(_item(row, image_key))
    for _, row in single[(single["split"] == "val") & (single["site"] == source_site)].iterrows():
        data.val_x.append(_item(row, image_key))
    pairs = table[table["subject"].isin(traveling) & (table["split"] != "test")]
    for subject, rows in pairs.groupby("subject", sort=True):
        x = rows[rows["site"] == source_site].iloc[0]
        y = rows[rows["site"] == target_site].iloc[0]
        data.val_pairs.append({"x": x[image_key], "y": y[image_key], "subject": subject})
    if not data.train_x or not data.train_y:
        raise ValueError(
            f"{dataset_dir}: no training images for {source_site} ({len(data.train_x)}) or "
            f"{target_site} ({len(data.train_y)}) in the train split of {splits_path}"
        )
    log.info("%s", data.summary())
    return data
