"""Tables store paths relative to their own folder (or absolute outside it) and read back from any folder."""

from __future__ import annotations

import pandas as pd

from pipeline.atomic import write_table
from pipeline.table_paths import read_table


def test_paths_are_stored_relative_to_the_table_and_resolve_from_anywhere(tmp_path, monkeypatch):
    run = tmp_path / "run" / "preprocessed"
    inside = run / "sub-01" / "anat" / "x.nii.gz"
    outside = tmp_path / "raw" / "sub-01_T1w.nii.gz"
    table = pd.DataFrame(
        {
            "subject": ["01", "02"],
            "image_cube": [str(inside), "n/a"],
            "source": [str(outside), ""],
            "site": ["/not/a/path/column", "ukb"],
            "path": ["sub-01/anat/y.nii.gz", "n/a"],
        }
    )
    write_table(run / "preprocessed.tsv", table)
    stored = pd.read_csv(run / "preprocessed.tsv", sep="\t", keep_default_na=False, dtype=str)
    assert stored["image_cube"].tolist() == ["sub-01/anat/x.nii.gz", "n/a"]
    assert stored["source"].tolist() == [str(outside), ""]  # outside the table's folder: absolute
    assert stored["site"].tolist() == ["/not/a/path/column", "ukb"]  # not a path column: untouched
    assert stored["path"].tolist() == ["sub-01/anat/y.nii.gz", "n/a"]  # relative as written: kept
    # the run folder moved, read from another working folder
    moved = tmp_path / "moved"
    (tmp_path / "run").rename(moved)
    monkeypatch.chdir(tmp_path / "raw" if (tmp_path / "raw").exists() else tmp_path)
    back = read_table(moved / "preprocessed" / "preprocessed.tsv", keep_default_na=False, dtype=str)
    assert back["image_cube"].tolist() == [str(moved / "preprocessed" / "sub-01" / "anat" / "x.nii.gz"), "n/a"]
    assert back["source"].tolist() == [str(outside), ""]
