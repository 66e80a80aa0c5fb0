"""The many-to-one trainer: one step moves every network of every site, the site order is seeded, the reference
identity term switches off, and a resumed run ends where an uninterrupted one does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.handlers import CheckpointLoader, CheckpointSaver
from torch.utils.data import DataLoader

from pipeline.engines import ManyToOneDataset, ManyToOneLosses, ManyToOneTrainer, SetEpochHandler, UnpairedDataset
from pipeline.nets import ManyToOneNetworks
from tests.engines.test_cyclegan import _blobs

GAMMAS = {"dark": 2.0, "bright": 0.5}  # source-site contrasts; the reference site is gamma 1


def _site(items: list[dict], gamma: float) -> list[dict]:
    return [{**item, "image": item["image"] ** gamma} for item in items]


def _trainer(max_epochs: int, *, init_seed: int = 0, losses: ManyToOneLosses = ManyToOneLosses(), lr: float = 2e-3):
    torch.manual_seed(init_seed)
    nets = ManyToOneNetworks(list(GAMMAS), generator_channels=(4, 8, 8), discriminator_channels=(4, 8))
    generators = [*nets.universal.parameters(), *nets.backward.parameters()]
    discriminators = [*nets.reference_discriminators.parameters(), *nets.source_discriminators.parameters()]
    g_opt, d_opt = torch.optim.Adam(generators, lr=lr), torch.optim.Adam(discriminators, lr=lr)
    reference = _blobs(4, 9)
    pairs = {
        site: UnpairedDataset(_site(_blobs(3 + i, i), gamma), reference, seed=i, age_matched=True)
        for i, (site, gamma) in enumerate(GAMMAS.items())
    }
    data = ManyToOneDataset(pairs)
    loader = DataLoader(data, batch_size=2, shuffle=False)
    trainer = ManyToOneTrainer("cpu", max_epochs, loader, nets, g_opt, d_opt, losses=losses)
    SetEpochHandler(data).attach(trainer)
    return trainer, nets, (g_opt, d_opt)


def test_an_item_holds_one_pair_per_site_and_an_epoch_covers_the_largest_site():
    trainer, _, _ = _trainer(1)
    data = trainer.data_loader.dataset
    assert len(data) == 4 and data.sites == ["dark", "bright"]
    item = data[3]
    assert set(item) == {"dark", "bright"} and item["dark"]["x"].shape == (1, 16, 16, 16)


def test_one_iteration_moves_every_network_of_every_site():
    trainer, nets, _ = _trainer(1)
    trainer.state.max_epochs = 1
    before = {name: p.detach().clone() for name, p in nets.named_parameters()}
    outputs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(e.state.output) or e.terminate())
    trainer.run()
    moved = {
        name.split(".")[0] + "." + name.split(".")[1]
        for name, p in nets.named_parameters()
        if not torch.equal(p, before[name])
    }
    for site in GAMMAS:
        assert {f"backward.{site}", f"reference_discriminators.{site}", f"source_discriminators.{site}"} <= moved
    assert any(name.startswith("universal.") for name, p in nets.named_parameters() if not torch.equal(p, before[name]))
    out = outputs[0]
    assert {"loss", "g_loss", "d_loss", "cycle", "identity_reference", "g_loss_dark", "g_loss_bright"} <= set(out)
    assert all(np.isfinite(v) for v in out.values())
    assert all(p.requires_grad for p in nets.reference_discriminators.parameters())


def test_the_site_order_is_seeded_and_varies():
    trainer, _, _ = _trainer(1)
    orders = [tuple(trainer.site_order(i, ["c", "a", "b"])) for i in range(1, 30)]
    assert orders == [tuple(trainer.site_order(i, ["a", "b", "c"])) for i in range(1, 30)]
    assert all(sorted(o) == ["a", "b", "c"] for o in orders) and len(set(orders)) > 1


def _second_iteration(losses: ManyToOneLosses) -> dict:
    """The output of iteration 2 (at iteration 1 the identity-initialised generators have no identity loss)."""
    trainer, _, _ = _trainer(1, losses=losses)
    outputs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(e.state.output))
    trainer.run()
    return outputs[1]


def test_the_loss_weights_and_the_reference_identity_switch():
    on, off = _second_iteration(ManyToOneLosses()), _second_iteration(ManyToOneLosses(identity_reference=0.0))
    assert on["identity_reference"] > 0 and on["identity_source"] > 0
    expected = on["adversarial"] + 30 * on["cycle"] + 15 * (on["identity_reference"] + on["identity_source"])
    assert on["g_loss"] == pytest.approx(expected, rel=1e-5)
    assert off["identity_reference"] == 0.0
    assert off["g_loss"] == pytest.approx(
        off["adversarial"] + 30 * off["cycle"] + 15 * off["identity_source"], rel=1e-5
    )


def test_a_resumed_run_ends_where_the_uninterrupted_one_does(tmp_path):
    full, full_nets, _ = _trainer(3)
    full.run()

    def save_dict(trainer, nets, opts):
        return {"networks": nets, "g_opt": opts[0], "d_opt": opts[1], "trainer": trainer}

    first, nets, opts = _trainer(2)
    saver = CheckpointSaver(str(tmp_path), save_dict(first, nets, opts), save_final=True, final_filename="final.pt")
    saver.attach(first)
    first.run()
    resumed, nets2, opts2 = _trainer(3, init_seed=123)
    CheckpointLoader(str(tmp_path / "final.pt"), save_dict(resumed, nets2, opts2)).attach(resumed)
    iterations = []
    resumed.add_event_handler(Events.ITERATION_COMPLETED, lambda e: iterations.append(e.state.iteration))
    resumed.run()
    assert iterations == [5, 6]
    for (name, a), b in zip(full_nets.named_parameters(), nets2.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
