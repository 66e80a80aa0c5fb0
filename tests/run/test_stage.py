"""StageMarker: a stage is reused only with the same settings, the same input content and every output present."""

from __future__ import annotations

import json

import pytest

from pipeline.run import StageMarker


@pytest.fixture
def stage(tmp_path):
    source = tmp_path / "input.tsv"
    source.write_text("a\tb\n1\t2\n")
    output = tmp_path / "out" / "result.json"
    output.parent.mkdir()
    output.write_text("{}")
    marker = StageMarker(tmp_path / "out" / "settings.json", {"seed": 0, "epochs": [1, 2]}, inputs={"table": source})
    marker.mark_complete()
    return marker, source, output


def test_the_same_settings_inputs_and_outputs_are_complete(stage):
    marker, source, output = stage
    assert marker.is_complete(output)
    again = StageMarker(marker.path, {"epochs": (1, 2), "seed": 0}, inputs={"table": source})  # tuple = list
    assert again.is_complete(output)


def test_changed_settings_input_content_or_a_missing_output_redo_the_stage(stage):
    marker, source, output = stage
    assert not StageMarker(marker.path, {"seed": 1, "epochs": [1, 2]}, inputs={"table": source}).is_complete(output)
    assert not marker.is_complete(output, output.with_name("absent.json"))
    source.write_text("a\tb\n1\t3\n")  # same path, other content
    assert not marker.is_complete(output)


def test_a_cut_marker_is_no_marker(stage):
    marker, _, output = stage
    marker.path.write_text('{"settings": {"se')
    assert not marker.is_complete(output)


def test_an_embedded_marker_lives_in_the_stage_sidecar(tmp_path):
    sidecar = tmp_path / "image.json"
    marker = StageMarker(sidecar, {"generator": "g"}, digests={"checkpoint": "abc"}, key="Resume")
    sidecar.write_text(json.dumps({"Sources": ["x"], "Resume": marker.record()}))
    assert marker.is_complete()
    assert not StageMarker(sidecar, {"generator": "g"}, digests={"checkpoint": "abd"}, key="Resume").is_complete()
    with pytest.raises(ValueError, match="Resume"):
        marker.mark_complete()
