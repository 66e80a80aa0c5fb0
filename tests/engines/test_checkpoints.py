"""Resume helpers: the newest epoch checkpoint by number, and refusal of another run's folder."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine

from pipeline.engines import ResumeFromLatest, RunInfo, latest_checkpoint


def test_latest_checkpoint_is_numeric(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    for epoch in (2, 9, 10):
        torch.save({}, tmp_path / f"checkpoint_epoch={epoch}.pt")
    (tmp_path / "model.pt").write_bytes(b"")
    assert latest_checkpoint(tmp_path).name == "checkpoint_epoch=10.pt"  # not "9" (string order)


def test_resume_refuses_another_site_pair(tmp_path):
    saved = {
        "info": {"source_site": "ukb", "target_site": "oasis", "net_kwargs": {"channels": 8}, "spatial_size": [64] * 3}
    }
    torch.save(saved, tmp_path / "checkpoint_epoch=3.pt")
    other = RunInfo(source_site="ukb", target_site="adni", net_kwargs={"channels": 8}, spatial_size=[64] * 3)
    with pytest.raises(ValueError, match=r"target_site: checkpoint 'oasis', this run 'adni'"):
        ResumeFromLatest(tmp_path, {"info": other}).attach(Engine(lambda e, b: None))
    ResumeFromLatest(tmp_path, {"info": other}, enabled=False).attach(Engine(lambda e, b: None))  # fresh start allowed
    same = RunInfo(**saved["info"])
    handler = ResumeFromLatest(tmp_path, {"info": same})
    handler.attach(Engine(lambda e, b: None))
    assert handler.loaded.name == "checkpoint_epoch=3.pt"
