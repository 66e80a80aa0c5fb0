"""Which images a many-to-one harmonizer trains on: every source site against one reference site.

The rules of :mod:`pipeline.data.site_pairs` hold for each source site, and one more across the cohort: a subject
scanned at more than one site (a traveling subject) is never trained on, whichever sites those are, so that every
traveling subject stays ground truth for the seen and the unseen sites alike. Sites of the cohort that are neither
the reference nor a source site are unseen: the harmonizer never sees them, and they are what it is tested on for
generalisation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from pipeline.cohort import attach_splits, find_splits_file, read_splits
from pipeline.data.site_pairs import SitePairData, site_pair_data
from pipeline.preprocess.batch import read_preprocessed

__all__ = ["ManyToOneData", "many_to_one_data"]

log = logging.getLogger("mriharmony.many_to_one")


@dataclass
class ManyToOneData:
    """Per source site, its training items against the reference site's (``train_x``: the source site's images,
    ``train_y``: the reference site's), and the cohort's sites left unseen."""

    reference_site: str
    pairs: dict[str, SitePairData] = field(default_factory=dict)
    unseen_sites: list[str] = field(default_factory=list)

    @property
    def source_sites(self) -> list[str]:
        return list(self.pairs)

    def summary(self) -> str:
        seen = ", ".join(f"{s} {len(p.train_x)}" for s, p in self.pairs.items())
        reference = len(next(iter(self.pairs.values())).train_y)
        unseen = ", ".join(self.unseen_sites) or "none"
        return f"to {self.reference_site} ({reference} images): {seen} training images; unseen sites: {unseen}"


def many_to_one_data(
    dataset_dir: str | Path,
    reference_site: str,
    source_sites: Sequence[str] | None = None,
    *,
    splits_file: str | Path | None = None,
    image_key: str = "image_cube",
) -> ManyToOneData:
    """Build the training items of a many-to-one harmonizer.

    Args:
        dataset_dir: preprocessing derivatives folder (with ``preprocessed.tsv``).
        reference_site: the site every image is harmonized to.
        source_sites: the sites to train on (default: every other site of the cohort); the rest are unseen.
        splits_file: the subject-level split table (default: ``splits.tsv`` in or beside ``dataset_dir``).
        image_key: table column of the images.
    """
    table = read_preprocessed(dataset_dir)
    sites = sorted(set(table["site"].astype(str)))
    if reference_site not in sites:
        raise ValueError(f"reference_site {reference_site!r} is not a site of {dataset_dir} (sites: {sites})")
    others = [s for s in sites if s != reference_site]
    chosen = list(others if source_sites is None else [str(s) for s in source_sites])
    unknown = [s for s in chosen if s not in others]
    if unknown or not chosen:
        raise ValueError(
            f"source_sites {chosen}: expected one or more sites of {dataset_dir} other than the reference "
            f"{reference_site!r} (sites: {sites})"
        )
    table = attach_splits(table, read_splits(find_splits_file(dataset_dir, splits_file)))
    n_sites = table.groupby("subject")["site"].nunique()
    traveling = set(n_sites[n_sites > 1].index)
    data = ManyToOneData(reference_site, unseen_sites=[s for s in others if s not in chosen])
    for site in chosen:
        pair = site_pair_data(dataset_dir, site, reference_site, splits_file=splits_file, image_key=image_key)
        pair.train_x = [item for item in pair.train_x if item["subject"] not in traveling]
        pair.train_y = [item for item in pair.train_y if item["subject"] not in traveling]
        if not pair.train_x or not pair.train_y:
            raise ValueError(
                f"{dataset_dir}: no training images of {site} or {reference_site} without traveling subjects"
            )
        data.pairs[site] = pair
    log.info("many-to-one: %s", data.summary())
    return data
