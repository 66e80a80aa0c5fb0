"""2D slice extraction: exact values at the right indices per view, labels carried, PNG agrees with .npy."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.slices import extract_slices, slice_indices, to_png_array, view_axis
from pipeline.table_paths import read_table


@pytest.fixture()
def table(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    # one RAS volume and one LPI-like volume (axes permuted and flipped) of the same shape class
    ras = np.diag([2.0, 2.0, 2.0, 1.0])
    pir = np.array([[0, 0, -2, 0], [-2, 0, 0, 0], [0, -2, 0, 0], [0, 0, 0, 1.0]])  # axes: P, I, R -> A/P, S/I, L/R
    for i, affine in enumerate([ras, pir]):
        volume = rng.random((8, 10, 12)).astype(np.float32)
        path = tmp_path / f"v{i}.nii.gz"
        nib.save(nib.Nifti1Image(volume, affine), path)
        rows.append(
            {
                "subject": f"s{i}",
                "session": "",
                "site": "a",
                "age": 60.0 + i,
                "diagnosis": "CN",
                "split": "train" if i == 0 else "test",
                "image_cube": str(path),
            }
        )
    return pd.DataFrame(rows)


def test_view_axes_follow_the_affine():
    ras = np.eye(4)
    assert [view_axis(ras, v) for v in ("sagittal", "coronal", "axial")] == [0, 1, 2]
    pir = np.array([[0, 0, -1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1.0]])
    assert [view_axis(pir, v) for v in ("sagittal", "coronal", "axial")] == [2, 0, 1]
    with pytest.raises(ValueError, match="unknown view"):
        view_axis(ras, "oblique")


def test_indices():
    assert slice_indices(64, "mid") == [32]
    assert slice_indices(64, "range", 4) == [30, 31, 32, 33]
    assert slice_indices(64, "range", 5) == [30, 31, 32, 33, 34]
    with pytest.raises(ValueError, match="--n must be between"):
        slice_indices(8, "range", 9)


def test_mid_slices_are_exact_and_labelled(table, tmp_path):
    result = extract_slices(table, tmp_path / "slices", mode="mid")
    assert len(result) == 2 * 3
    for _, row in result.iterrows():
        src = table[table["subject"] == row["subject"]].iloc[0]
        img = nib.load(src["image_cube"])
        volume = img.get_fdata(dtype=np.float32)
        axis = view_axis(img.affine, row["view"])
        assert row["axis"] == axis and row["index"] == volume.shape[axis] // 2
        expected = np.take(volume, row["index"], axis=axis)
        saved = np.load(row["npy"])
        np.testing.assert_array_equal(saved, expected)
        png = np.asarray(Image.open(row["png"]))
        np.testing.assert_array_equal(png, to_png_array(saved))
        assert np.abs(np.flipud(png).T / 255.0 - np.clip(saved, 0, 1)).max() <= 0.5 / 255 + 1e-7
        assert row["split"] == src["split"] and row["age"] == src["age"] and row["diagnosis"] == "CN"
    # the PIR volume's sagittal view cuts its third array axis
    pir_sag = result[(result["subject"] == "s1") & (result["view"] == "sagittal")].iloc[0]
    assert pir_sag["axis"] == 2 and np.load(pir_sag["npy"]).shape == (8, 10)
    written = read_table(tmp_path / "slices" / "slices.tsv")
    assert len(written) == 6 and set(written["subject"]) == {"s0", "s1"}


def test_range_mode_one_view(table, tmp_path):
    result = extract_slices(table.iloc[:1], tmp_path / "r", views=["axial"], mode="range", n=4)
    assert list(result["index"]) == [4, 5, 6, 7] and (result["view"] == "axial").all()
    volume = nib.load(table.loc[0, "image_cube"]).get_fdata(dtype=np.float32)
    np.testing.assert_array_equal(np.load(result.loc[2, "npy"]), volume[:, :, 6])
