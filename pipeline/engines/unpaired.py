"""Unpaired sampling of site-X and site-Y images for CycleGAN training, deterministic per epoch.

Each item pairs one X image (in order) with a Y image drawn by a random stream seeded by
(seed, epoch, index), so a run is reproducible and a resumed run draws what the uninterrupted one
would have; random transforms (e.g. patch crops) are seeded per item the same way. With
``age_matched=True`` the Y image is drawn among the ``k`` Y subjects closest in age to the X subject,
so that the discriminator cannot tell the sites apart by age (site and age are confounded in real
cohorts).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from ignite.engine import Engine, Events
from monai.transforms import Compose, Randomizable, RandomizableTrait, Transform
from torch.utils.data import Dataset

__all__ = ["UnpairedDataset", "SetEpochHandler", "split_at_first_random"]


class UnpairedDataset(Dataset):
    """Items ``{"x": ..., "y": ...}`` from two lists of items (dicts with ``image``, and ``age`` if age-matched).

    Args:
        x_items, y_items: the training images of site X and site Y.
        transform: applied to each item dict (e.g. MONAI LoadImaged + EnsureChannelFirstd); its
            ``image`` entry becomes ``x`` or ``y``.
        seed: seed of the Y draws.
        age_matched: draw Y among the ``k`` nearest in age.
        k: neighbourhood size for age matching.
        cache: apply ``transform`` once to every item up front and keep the results in memory
            (small cohorts of 64^3 images: 1 MB each). As in MONAI's ``CacheDataset``, a ``Compose`` is cached up
            to its first random transform; the rest runs on every draw.
    """

    def __init__(
        self,
        x_items: Sequence[dict],
        y_items: Sequence[dict],
        transform: Callable | None = None,
        *,
        seed: int = 0,
        age_matched: bool = False,
        k: int = 3,
        cache: bool = False,
    ):
        if not x_items or not y_items:
            raise ValueError(f"UnpairedDataset needs images of both sites (got {len(x_items)} X and {len(y_items)} Y)")
        if age_matched and not all("age" in item for item in list(x_items) + list(y_items)):
            raise ValueError("age_matched=True needs an 'age' in every item")
        self.x_items, self.y_items = list(x_items), list(y_items)
        self.transform = transform
        self.seed, self.age_matched, self.k = seed, age_matched, max(1, min(k, len(self.y_items)))
        self.epoch = 0
        if cache and transform is not None:
            cached, self.transform = split_at_first_random(transform)
            self.x_items = [cached(dict(item)) for item in self.x_items]
            self.y_items = [cached(dict(item)) for item in self.y_items]
        if age_matched:
            y_ages = np.array([float(item["age"]) for item in self.y_items])
            self._neighbours = [
                np.argsort(np.abs(y_ages - float(item["age"])), kind="stable")[: self.k] for item in self.x_items
            ]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.x_items)

    def y_index(self, index: int) -> int:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.age_matched:
            return int(self._neighbours[index][rng.integers(self.k)])
        return int(rng.integers(len(self.y_items)))

    def _transform(self, item: dict, seed: int) -> dict:
        if self.transform is None:
            return item
        if isinstance(self.transform, Randomizable):
            self.transform.set_random_state(seed=seed)
        return self.transform(dict(item))

    def __getitem__(self, index: int) -> dict:
        x_item, y_item = self.x_items[index], self.y_items[self.y_index(index)]
        # the transform seeds: a stream of their own, so the Y draw stays what it was without random transforms
        x_seed, y_seed = np.random.default_rng([self.seed, self.epoch, index, 1]).integers(2**31, size=2)
        return {"x": self._transform(x_item, int(x_seed))["image"], "y": self._transform(y_item, int(y_seed))["image"]}


def split_at_first_random(transform: Callable) -> tuple[Callable, Callable | None]:
    """``(deterministic part, random part or None)`` of a transform, split where MONAI's ``CacheDataset`` splits a
    ``Compose``: at its first random (or non-MONAI) transform. Any other callable is deterministic unless it is
    itself random."""
    if isinstance(transform, Compose):
        first = transform.get_index_of_first(lambda t: isinstance(t, RandomizableTrait) or not isinstance(t, Transform))
        if first is None:
            return transform, None
        return Compose(transform.transforms[:first]), Compose(transform.transforms[first:])
    if isinstance(transform, RandomizableTrait):
        return (lambda item: item), transform
    return transform, None


class SetEpochHandler:
    """Ignite handler: tell the dataset the epoch at each epoch start (like DistributedSampler.set_epoch)."""

    def __init__(self, dataset: UnpairedDataset):
        self.dataset = dataset

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.dataset.set_epoch(engine.state.epoch)
