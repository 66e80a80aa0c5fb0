"""Applying a generator to a cohort table: known answer, mask, resume, safe loading, clear errors."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.harmonize import harmonize_table, load_generator
from pipeline.nets import HarmonizationGenerator3D

KW = {"channels": 4, "n_residual": 1}


@pytest.fixture()
def table(tmp_path: Path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    affine = np.diag([3.4, 3.4, 3.4, 1.0])
    rows = []
    for i, site in enumerate(["a", "a", "b"]):
        image, mask = rng.random((64, 64, 64)).astype(np.float32), np.zeros((64, 64, 64), np.uint8)
        mask[10:50, 12:52, 8:56] = 1
        paths = {k: tmp_path / f"{k}{i}.nii.gz" for k in ("img", "mask")}
        nib.save(nib.Nifti1Image(image * mask, affine), paths["img"])
        nib.save(nib.Nifti1Image(mask, affine), paths["mask"])
        rows.append({"subject": f"s{i}", "session": "", "site": site, "age": 70.0, "image_cube": str(paths["img"]),
                     "mask_cube": str(paths["mask"])})
    return pd.DataFrame(rows)


def test_harmonize_known_answer_and_resume(table, tmp_path):
    torch.manual_seed(0)
    net = HarmonizationGenerator3D(**KW)
    checkpoint = tmp_path / "ckpt.pt"
    torch.save({"g_xy": net.state_dict(), "epoch": 3}, checkpoint)  # a training checkpoint
    out = tmp_path / "harm"
    result = harmonize_table(table, checkpoint, out, target="b", progress=False, **KW)
    assert list(result["harmonized"]) == [True, True, False]
    assert result.loc[2, "image_cube"] == table.loc[2, "image_cube"]  # the target site passes through
    src = nib.load(table.loc[0, "image_cube"])
    mask = nib.load(table.loc[0, "mask_cube"]).get_fdata() > 0
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(src.get_fdata().astype(np.float32))[None, None])[0, 0].numpy() * mask
    harmonized = nib.load(result.loc[0, "image_cube"])
    np.testing.assert_allclose(harmonized.get_fdata(), expected, atol=1e-6)
    np.testing.assert_allclose(harmonized.affine, src.affine)
    assert harmonized.get_fdata()[~mask].max() == 0 and "desc-harmonizedtob" in result.loc[0, "image_cube"]
    assert pd.read_csv(out / "harmonized.tsv", sep="\t")["harmonized"].sum() == 2

    mtime = Path(result.loc[0, "image_cube"]).stat().st_mtime_ns
    harmonize_table(table, checkpoint, out, target="b", progress=False, **KW)  # same checkpoint: skipped
    assert Path(result.loc[0, "image_cube"]).stat().st_mtime_ns == mtime


def test_generator_loading_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_generator(tmp_path / "none.pt")
    path = tmp_path / "wide.pt"
    torch.save(HarmonizationGenerator3D(channels=8, n_residual=1).state_dict(), path)
    with pytest.raises(ValueError, match="do not fit a generator"):
        load_generator(path, **KW)
    pickled = tmp_path / "pickled.pt"
    torch.save({"g_xy": HarmonizationGenerator3D(**KW)}, pickled)  # a whole module, not weights
    with pytest.raises(Exception):
        load_generator(pickled, **KW)  # weights_only=True refuses arbitrary pickled objects


def test_harmonize_command(table, tmp_path, capsys):
    from pipeline.cli import main

    path = tmp_path / "table.tsv"
    table.to_csv(path, sep="\t", index=False)
    checkpoint = tmp_path / "g.pt"
    torch.save(HarmonizationGenerator3D(**KW).state_dict(), checkpoint)
    args = ["harmonize", str(path), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "h"), "--quiet",
            "--channels", "4", "--n-residual", "1"]
    assert main(args + ["--target", "b"]) == 0
    assert "harmonized 2 of 3 images to b" in capsys.readouterr().out
    assert main(args + ["--target", "z"]) == 2
    assert "--target 'z' is not a site" in capsys.readouterr().err
