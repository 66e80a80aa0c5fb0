"""Atomic writes: a failure leaves the old file intact and no temporary file behind."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.atomic import atomic_path, write_json, write_table, write_text


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "table.tsv"
    write_table(target, pd.DataFrame({"a": [1, None]}))
    assert target.read_text() == "a\n1.0\nn/a\n"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "a\n1.0\nn/a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.tsv"]


def test_json_numpy_values(tmp_path):
    import numpy as np

    path = write_json(tmp_path / "x.json", {"n": np.int64(3), "f": np.float32(0.5), "a": np.arange(2)})
    assert path.read_text() == '{\n  "n": 3,\n  "f": 0.5,\n  "a": [\n    0,\n    1\n  ]\n}\n'


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    """Outputs on shared clusters / Docker volumes must be readable by the group like any other file."""
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    path = write_text(tmp_path / "a.txt", "x")
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_json_is_strict_nan_and_infinity_become_null(tmp_path):
    """report.json and every other JSON output must parse in strict readers (JavaScript, jq): no NaN."""
    path = write_json(
        tmp_path / "x.json",
        {"a": float("nan"), "b": [np.float32(1.5), np.inf], "c": np.array([np.nan, 2.0]), "d": (1, "x")},
    )
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": [None, 2.0], "d": [1, "x"]}
