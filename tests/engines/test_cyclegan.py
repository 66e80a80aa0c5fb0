"""The CycleGAN trainer learns, works with MONAI's checkpoint handlers, and resumes the same schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.handlers import CheckpointLoader, CheckpointSaver
from monai.transforms import Compose, Lambdad, RandSpatialCropd, ScaleIntensityd
from scipy import ndimage as ndi
from torch.utils.data import DataLoader

from pipeline.engines import CycleGANTrainer, SetEpochHandler, UnpairedDataset
from pipeline.engines.unpaired import split_at_first_random
from pipeline.nets import HarmonizationGenerator3D, PatchDiscriminator3D

SIZE = 16


def _blobs(n: int, seed: int) -> list[dict]:
    """Smooth random 'anatomy' in [0, 1], one item per subject, with an age."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        vol = ndi.gaussian_filter(rng.random((SIZE, SIZE, SIZE)), 2.0)
        vol = (vol - vol.min()) / (vol.max() - vol.min())
        items.append({"image": torch.from_numpy(vol[None].astype(np.float32)), "age": 50.0 + 5 * i})
    return items


def _site_y(items: list[dict]) -> list[dict]:
    """Site Y renders the same kind of anatomy with another contrast (a gamma)."""
    return [{**item, "image": item["image"] ** 0.5} for item in items]


def _trainer(max_epochs: int, handlers=None, init_seed: int = 0):
    torch.manual_seed(init_seed)
    nets = [
        HarmonizationGenerator3D(channels=4, n_residual=1),
        HarmonizationGenerator3D(channels=4, n_residual=1),
        PatchDiscriminator3D(channels=4, strides=(2, 1, 1, 1, 1)),
        PatchDiscriminator3D(channels=4, strides=(2, 1, 1, 1, 1)),
    ]
    g_opt = torch.optim.Adam(list(nets[0].parameters()) + list(nets[1].parameters()), lr=2e-3)
    d_opt = torch.optim.Adam(list(nets[2].parameters()) + list(nets[3].parameters()), lr=2e-3)
    data = UnpairedDataset(_blobs(4, 1), _site_y(_blobs(4, 2)), seed=0)  # same draws whatever the init
    loader = DataLoader(data, batch_size=2, shuffle=False)
    trainer = CycleGANTrainer("cpu", max_epochs, loader, *nets, g_opt, d_opt, train_handlers=handlers)
    SetEpochHandler(data).attach(trainer)
    return trainer, nets, (g_opt, d_opt)


# a learning measurement (the cycle loss must fall below 0.6 x its start): in the slow set, which CI runs too
@pytest.mark.slow
def test_trainer_learns_the_cycle():
    trainer, nets, _ = _trainer(max_epochs=15)
    history = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: history.append(e.state.output))
    trainer.run()
    assert len(history) == 30 and all(np.isfinite(list(h.values())).all() for h in history)
    first = np.mean([h["cycle"] for h in history[:3]])
    last = np.mean([h["cycle"] for h in history[-3:]])
    assert last < 0.6 * first  # the generators learn to invert each other
    assert all(p.requires_grad for p in nets[2].parameters())  # discriminators trainable again after the G step


def test_checkpoint_resume_continues_the_same_schedule(tmp_path):
    full, full_nets, _ = _trainer(max_epochs=3)
    full.run()

    def save_dict(trainer, nets, opts):
        return {
            "g_xy": nets[0],
            "g_yx": nets[1],
            "d_x": nets[2],
            "d_y": nets[3],
            "g_opt": opts[0],
            "d_opt": opts[1],
            "trainer": trainer,
        }

    first, nets, opts = _trainer(max_epochs=2)
    CheckpointSaver(str(tmp_path), save_dict(first, nets, opts), save_final=True, final_filename="final.pt").attach(
        first
    )
    first.run()  # "killed" after epoch 2

    resumed, nets2, opts2 = _trainer(max_epochs=3, init_seed=123)  # fresh weights, different init
    CheckpointLoader(str(tmp_path / "final.pt"), save_dict(resumed, nets2, opts2)).attach(resumed)
    iterations = []
    resumed.add_event_handler(Events.ITERATION_COMPLETED, lambda e: iterations.append(e.state.iteration))
    resumed.run()
    assert iterations == [5, 6] and resumed.state.epoch == 3  # only the missing epoch ran
    for a, b in zip(full_nets, nets2):
        for pa, pb in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_unpaired_sampling_deterministic_and_age_matched():
    x, y = _blobs(5, 0), _blobs(6, 1)
    data = UnpairedDataset(x, y, seed=3)
    first = [data.y_index(i) for i in range(5)]
    assert first == [data.y_index(i) for i in range(5)]
    data.set_epoch(1)
    assert first != [data.y_index(i) for i in range(5)]
    matched = UnpairedDataset(x, y, seed=3, age_matched=True, k=2)
    y_ages = np.array([item["age"] for item in y])
    for i, item in enumerate(x):
        nearest = set(np.argsort(np.abs(y_ages - item["age"]), kind="stable")[:2])
        assert all(matched.y_index(i) in nearest for _ in range(3))
    with pytest.raises(ValueError, match="needs images of both sites"):
        UnpairedDataset(x, [])


def test_split_at_first_random_like_cache_dataset():
    scale, crop = ScaleIntensityd(keys="image"), RandSpatialCropd(keys="image", roi_size=8, random_size=False)
    cached, rest = split_at_first_random(Compose([scale, crop, scale]))
    assert cached.transforms == (scale,) and rest.transforms == (crop, scale)
    cached, rest = split_at_first_random(Compose([scale, scale]))
    assert rest is None and cached.transforms == (scale, scale)
    # a plain function may do anything, so like CacheDataset it is not cached
    plain = Lambdad(keys="image", func=lambda t: t)
    assert split_at_first_random(Compose([scale, lambda d: d, plain]))[0].transforms == (scale,)
    assert split_at_first_random(crop)[1] is crop and split_at_first_random(scale) == (scale, None)


def test_cached_dataset_with_random_crops_is_reproducible_per_epoch():
    """Cached images, crops drawn per (seed, epoch, index): the same on a re-run, new every epoch."""
    x, y = _blobs(3, 0), _blobs(4, 1)
    crop = Compose([ScaleIntensityd(keys="image"), RandSpatialCropd(keys="image", roi_size=8, random_size=False)])
    data = UnpairedDataset(x, y, seed=3, transform=crop, cache=True)
    again = UnpairedDataset(x, y, seed=3, transform=crop, cache=True)
    first = [data[i] for i in range(3)]
    assert all(item[k].shape == (1, 8, 8, 8) for item in first for k in ("x", "y"))
    for a, b in zip(first, (again[i] for i in range(3))):
        torch.testing.assert_close(a["x"], b["x"])
        torch.testing.assert_close(a["y"], b["y"])
    # every crop is a window of the scaled source image (the cached part ran once, the crop on the draw)
    full = x[0]["image"] / x[0]["image"].max()
    windows = full.unfold(1, 8, 1).unfold(2, 8, 1).unfold(3, 8, 1).reshape(-1, 8, 8, 8)
    assert torch.isclose(windows, first[0]["x"][0]).flatten(1).all(1).any()
    data.set_epoch(1)
    assert any(not torch.equal(a["x"], data[i]["x"]) for i, a in enumerate(first))
    # the Y draw does not depend on whether there are random transforms
    plain = UnpairedDataset(x, y, seed=3)
    plain.set_epoch(1)
    assert [data.y_index(i) for i in range(3)] == [plain.y_index(i) for i in range(3)]
