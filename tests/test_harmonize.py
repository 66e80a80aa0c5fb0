"""Applying a trained generator to a cohort: known answer, both directions, mask, affine, resume,
bad images, Dask, safe loading and clear errors."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.harmonize import harmonize_cohort, load_generator, read_harmonized
from pipeline.nets import HarmonizationGenerator3D

KW = {"channels": 4, "n_residual": 1, "output_activation": "residual"}
SIZE = 32


def _generator(seed: int) -> HarmonizationGenerator3D:
    torch.manual_seed(seed)
    net = HarmonizationGenerator3D(**KW)
    torch.nn.init.normal_(net.out.weight, std=0.05)  # not the identity it starts as
    return net.eval()


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    torch.save({"g_xy": _generator(1).state_dict(), "g_yx": _generator(2).state_dict(),
                "info": {"source_site": "a", "target_site": "b", "net_kwargs": KW}}, path)
    return path


@pytest.fixture()
def table(tmp_path: Path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    affine = np.diag([3.4, 3.4, 3.4, 1.0])
    affine[:3, 3] = [-90, -126, -72]
    rows = []
    for i, site in enumerate(["a", "a", "b"]):
        image, mask = rng.random((SIZE,) * 3).astype(np.float32), np.zeros((SIZE,) * 3, np.uint8)
        mask[5:25, 6:26, 4:28] = 1
        paths = {k: tmp_path / f"{k}{i}.nii.gz" for k in ("img", "mask")}
        nib.save(nib.Nifti1Image(image * mask, affine), paths["img"])
        nib.save(nib.Nifti1Image(mask, affine), paths["mask"])
        rows.append({"subject": f"s{i}", "session": "", "site": site, "age": 70.0, "status": "ok", "source": f"raw{i}",
                     "image_cube": str(paths["img"]), "mask_cube": str(paths["mask"])})
    return pd.DataFrame(rows)


def _expected(net: HarmonizationGenerator3D, row: pd.Series) -> np.ndarray:
    x = torch.from_numpy(nib.load(row["image_cube"]).get_fdata().astype(np.float32))[None, None]
    mask = nib.load(row["mask_cube"]).get_fdata() > 0
    with torch.no_grad():
        return net(x)[0, 0].numpy() * mask


def test_known_answer_both_directions_and_resume(table, checkpoint, tmp_path):
    out = tmp_path / "harm"
    result = harmonize_cohort(table, checkpoint, out, direction="to_target", progress=False)
    assert list(result["harmonized"]) == [True, True, False] and (result["status"] == "ok").all()
    assert result.loc[2, "image_cube"] == table.loc[2, "image_cube"]  # the target site passes through
    harmonized = nib.load(result.loc[0, "image_cube"])
    np.testing.assert_allclose(harmonized.get_fdata(), _expected(_generator(1), table.loc[0]), atol=1e-6)
    np.testing.assert_allclose(harmonized.affine, nib.load(table.loc[0, "image_cube"]).affine)
    mask = nib.load(table.loc[0, "mask_cube"]).get_fdata() > 0
    assert harmonized.get_fdata()[~mask].max() == 0 and "desc-harmonizedtob" in result.loc[0, "image_cube"]
    assert np.abs(harmonized.get_fdata() - nib.load(table.loc[0, "image_cube"]).get_fdata()).max() > 0.01
    again = read_harmonized(out)
    assert list(again["subject"]) == ["s0", "s1", "s2"] and again["harmonized"].sum() == 2

    mtime = Path(result.loc[0, "image_cube"]).stat().st_mtime_ns
    resumed = harmonize_cohort(table, checkpoint, out, direction="to_target", progress=False)
    assert Path(result.loc[0, "image_cube"]).stat().st_mtime_ns == mtime and resumed["resumed"].sum() == 2

    back = harmonize_cohort(table, checkpoint, tmp_path / "back", direction="to_source", progress=False)
    assert list(back["harmonized"]) == [False, False, True] and "desc-harmonizedtoa" in back.loc[2, "image_cube"]
    np.testing.assert_allclose(nib.load(back.loc[2, "image_cube"]).get_fdata(),
                               _expected(_generator(2), table.loc[2]), atol=1e-6)


def test_bad_image_is_recorded_and_others_finish(table, checkpoint, tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti")
    table.loc[1, "image_cube"] = str(broken)
    result = harmonize_cohort(table, checkpoint, tmp_path / "harm", progress=False)
    assert list(result["status"]) == ["ok", "failed", "ok"] and result.loc[1, "step"] == "load"
    failures = pd.read_csv(tmp_path / "harm" / "failures.tsv", sep="\t")
    assert list(failures["subject"]) == ["s1"] and str(broken) in failures.loc[0, "source"]
    assert broken.read_bytes() == b"not a nifti"  # inputs are never modified


def test_dask_workers_give_the_same_images(table, checkpoint, tmp_path):
    here = harmonize_cohort(table, checkpoint, tmp_path / "here", workers=0, progress=False)
    dask = harmonize_cohort(table, checkpoint, tmp_path / "dask", workers=2, progress=False)
    for a, b in zip(here.loc[:1, "image_cube"], dask.loc[:1, "image_cube"]):
        np.testing.assert_allclose(nib.load(a).get_fdata(), nib.load(b).get_fdata(), atol=1e-6)


def test_errors_are_clear(table, checkpoint, tmp_path):
    with pytest.raises(ValueError, match=r"maps a -> b; it was not trained on other sites"):
        harmonize_cohort(table, checkpoint, tmp_path / "x", sites=["b"], progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_generator(tmp_path / "none.pt")
    bare = tmp_path / "bare.pt"
    torch.save(HarmonizationGenerator3D(**KW).state_dict(), bare)
    with pytest.raises(ValueError, match="expected a cyclegan_harmonization checkpoint"):
        load_generator(bare)
    wide = tmp_path / "wide.pt"
    torch.save({"g_xy": HarmonizationGenerator3D(channels=8).state_dict(), "g_yx": {},
                "info": {"source_site": "a", "target_site": "b", "net_kwargs": KW}}, wide)
    with pytest.raises(ValueError, match="do not fit a generator"):
        load_generator(wide)
    pickled = tmp_path / "pickled.pt"
    torch.save({"g_xy": HarmonizationGenerator3D(**KW), "g_yx": {}, "info": {}}, pickled)  # a module, not weights
    with pytest.raises(Exception):
        load_generator(pickled)  # weights_only=True refuses arbitrary pickled objects


def test_harmonize_command(table, checkpoint, tmp_path, capsys):
    from pipeline.cli import main

    path = tmp_path / "table.tsv"
    table.to_csv(path, sep="\t", index=False)
    args = ["harmonize", str(path), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "h"), "--quiet",
            "--workers", "0"]
    assert main(args + ["--direction", "to_target"]) == 0
    assert "harmonized 2 images (0 failed)" in capsys.readouterr().out
    assert main(args + ["--site", "z"]) == 2
    assert "it was not trained on other sites" in capsys.readouterr().err
    bundle = tmp_path / "bundle"
    (bundle / "models").mkdir(parents=True)
    (bundle / "models" / "model.pt").write_bytes(checkpoint.read_bytes())
    assert main(["harmonize", str(path), "--bundle", str(bundle), "--direction", "to_source", "--out",
                 str(tmp_path / "h2"), "--quiet", "--workers", "0"]) == 0
    assert "harmonized 1 images" in capsys.readouterr().out
