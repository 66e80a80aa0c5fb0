"""Applying a trained generator to a cohort: known answer, both directions, mask, affine, resume,
bad images, Dask, safe loading and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.harmonize import harmonize_cohort, load_generator, read_harmonized, save_harmonizer
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
    return save_harmonizer(
        tmp_path / "models", _generator(1), _generator(2), {"source_site": "a", "target_site": "b", "net_kwargs": KW}
    )


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
        rows.append(
            {
                "subject": f"s{i}",
                "session": "",
                "site": site,
                "age": 70.0,
                "status": "ok",
                "source": f"raw{i}",
                "image_cube": str(paths["img"]),
                "mask_cube": str(paths["mask"]),
            }
        )
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
    np.testing.assert_allclose(
        nib.load(back.loc[2, "image_cube"]).get_fdata(), _expected(_generator(2), table.loc[2]), atol=1e-6
    )


def test_bfloat16_is_close_recorded_and_resumed_only_in_its_own_precision(table, checkpoint, tmp_path):
    out = tmp_path / "harm"
    exact = harmonize_cohort(table, checkpoint, out, progress=False)  # float32, the library default
    fp32 = nib.load(exact.loc[0, "image_cube"]).get_fdata()
    fast = harmonize_cohort(table, checkpoint, out, amp="bfloat16", progress=False)
    assert not fast["resumed"].any()  # another precision: rewritten, not resumed
    sidecar = json.loads(Path(fast.loc[0, "image_cube"].replace(".nii.gz", ".json")).read_text())
    assert sidecar["Precision"] == "bfloat16"
    mask = nib.load(table.loc[0, "mask_cube"]).get_fdata() > 0
    difference = np.abs(nib.load(fast.loc[0, "image_cube"]).get_fdata() - fp32)[mask]
    # autocast did run; bfloat16 keeps 8 mantissa bits (0.4% per rounding). This random generator on noise errs
    # 2.5e-3; the trained generator on real images 3e-4 (python -m pipeline.performance.cyclegan --harmonizer ...)
    assert 0 < difference.mean() < 1e-2
    assert harmonize_cohort(table, checkpoint, out, amp="bfloat16", progress=False)["resumed"].sum() == 2
    with pytest.raises(ValueError, match="amp must be one of"):
        harmonize_cohort(table, checkpoint, out, amp="int8", progress=False)


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
    bare = tmp_path / "bare" / "model.pt"
    bare.parent.mkdir()
    torch.save(HarmonizationGenerator3D(**KW).state_dict(), bare)
    with pytest.raises(FileNotFoundError, match=r"run_info.json does not exist: the weights .* need the run record"):
        load_generator(bare)  # weights without the run's record
    info = {"source_site": "a", "target_site": "b", "net_kwargs": KW}
    old = tmp_path / "old"
    save_harmonizer(old, _generator(1), _generator(2), info)
    torch.save({"g_xy": _generator(1).state_dict(), "g_yx": _generator(2).state_dict(), "info": info}, old / "model.pt")
    with pytest.raises(ValueError, match="expected the state dict of a generator"):
        load_generator(old / "model.pt")  # a combined checkpoint of an older bundle version
    wide = save_harmonizer(tmp_path / "wide", HarmonizationGenerator3D(channels=8), _generator(2), info)
    with pytest.raises(ValueError, match="do not fit a generator"):
        load_generator(wide)
    (wide.parent / "model_to_source.pt").unlink()
    with pytest.raises(FileNotFoundError, match="the to_source generator of .* is missing"):
        load_generator(wide, "to_source")
    pickled = save_harmonizer(tmp_path / "pickled", _generator(1), _generator(2), info)
    torch.save(HarmonizationGenerator3D(**KW), pickled)  # a module, not weights
    with pytest.raises(Exception):
        load_generator(pickled)  # weights_only=True refuses arbitrary pickled objects


def test_harmonize_command(table, checkpoint, tmp_path, capsys):
    from pipeline.cli import main

    path = tmp_path / "table.tsv"
    table.to_csv(path, sep="\t", index=False)
    args = [
        "harmonize",
        str(path),
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(tmp_path / "h"),
        "--quiet",
        "--workers",
        "0",
    ]
    assert main(args + ["--direction", "to_target"]) == 0
    assert "harmonized 2 images (0 failed)" in capsys.readouterr().out
    assert main(args + ["--site", "z"]) == 2
    assert "it was not trained on other sites" in capsys.readouterr().err
    bundle = tmp_path / "bundle"
    shutil.copytree(checkpoint.parent, bundle / "models")  # model.pt, model_to_source.pt, run_info.json
    assert (
        main(
            [
                "harmonize",
                str(path),
                "--bundle",
                str(bundle),
                "--direction",
                "to_source",
                "--out",
                str(tmp_path / "h2"),
                "--quiet",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    assert "harmonized 1 images" in capsys.readouterr().out
