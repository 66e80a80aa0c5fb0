"""The three-view 2D classifier of Wang (2020): shapes, one branch per view, local weights only."""

from __future__ import annotations

import pytest
import torch

from pipeline.nets.three_view import ThreeViewClassifier

NARROW = {"depth": 10, "widths": (8, 16, 32, 64)}


def test_shapes_and_branches():
    torch.manual_seed(0)
    net = ThreeViewClassifier(num_classes=3, **NARROW).eval()
    x = torch.rand(2, 3, 64, 64)
    assert net(x).shape == (2, 3)
    assert len(net.branches) == 3 and net.head[-1].in_features == 3 * 64
    with torch.no_grad():  # each view goes through its own branch: swapping views changes the output
        assert not torch.allclose(net(x), net(x[:, [1, 0, 2]]))
    with pytest.raises(ValueError, match="expected 3 channels"):
        net(torch.rand(2, 1, 64, 64))


def test_local_weights_only(tmp_path):
    net = ThreeViewClassifier(**NARROW)
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)
    again = ThreeViewClassifier(pretrained_path=str(path), **NARROW)
    for a, b in zip(net.parameters(), again.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(FileNotFoundError, match="no weights are downloaded"):
        ThreeViewClassifier(pretrained_path=str(tmp_path / "missing.pt"), **NARROW)
