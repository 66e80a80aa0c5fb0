"""The cyclegan_harmonization bundle through `python -m monai.bundle` (offline): train, resume,
inference, verify_metadata, verify_net_in_out, ckpt_export, and that learning is real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from pipeline.data import site_pair_data
from pipeline.harmonize import harmonize_cohort, load_generator, read_harmonizer_info
from pipeline.nets import HarmonizationGenerator3D
from pipeline.preprocess.batch import read_preprocessed
from pipeline.table_paths import read_table
from tests.bundles.model_zoo import check_bundle, stage

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "cyclegan_harmonization"
TRAIN = str(BUNDLE / "configs" / "train.yaml")
INFER = str(BUNDLE / "configs" / "inference.yaml")
META = str(BUNDLE / "configs" / "metadata.json")
NARROW = [
    "--spatial_size",
    "[64,64,64]",
    "--net_kwargs#channels",
    "8",
    "--net_kwargs#n_residual",
    "1",
    "--disc_kwargs#channels",
    "8",
]


def bundle(*args: str, cwd: Path = REPO, threads: int = 2) -> str:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    # the whole of stderr: a traceback's tail is long and grows with the checkout's path, and the error
    # a test matches sits at its start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def trained(contrast_pair, tmp_path_factory) -> Path:
    """Two epochs of two iterations of a narrow CycleGAN, dark -> bright."""
    root = tmp_path_factory.mktemp("bundle_run")
    bundle(
        "run",
        "--config_file",
        TRAIN,
        "--bundle_root",
        str(root),
        "--dataset_dir",
        str(contrast_pair / "preprocessed"),
        "--source_site",
        "dark",
        "--target_site",
        "bright",
        "--epochs",
        "2",
        "--batch_size",
        "4",
        "--epoch_length",
        "2",
        *NARROW,
    )
    return root


def test_train_writes_checkpoints_and_resume_continues(trained, contrast_pair):
    models = trained / "models"
    assert (models / "model.pt").exists() and (models / "checkpoint_epoch=2.pt").exists()
    per_epoch = 2  # --epoch_length
    state = torch.load(models / "checkpoint_epoch=2.pt", weights_only=True)
    assert {
        "g_xy",
        "g_yx",
        "d_x",
        "d_y",
        "g_optimizer",
        "d_optimizer",
        "g_scheduler",
        "d_scheduler",
        "trainer",
        "info",
    } <= set(state)
    assert state["trainer"]["iteration"] == 2 * per_epoch and state["g_scheduler"]["last_epoch"] == 2
    assert state["info"]["source_site"] == "dark" and state["info"]["net_kwargs"]["channels"] == 8
    # the model-zoo layout: model.pt is network_def's state dict (G_X), G_Y beside it, the run's facts in JSON
    to_target, to_source = (torch.load(models / n, weights_only=True) for n in ("model.pt", "model_to_source.pt"))
    assert set(to_target) == set(to_source) == set(HarmonizationGenerator3D(channels=8, n_residual=1).state_dict())
    assert read_harmonizer_info(models / "model.pt") == state["info"]

    log = bundle(
        "run",
        "--config_file",
        TRAIN,
        "--bundle_root",
        str(trained),
        "--dataset_dir",
        str(contrast_pair / "preprocessed"),
        "--source_site",
        "dark",
        "--target_site",
        "bright",
        "--epochs",
        "3",
        "--batch_size",
        "4",
        "--epoch_length",
        "2",
        *NARROW,
    )
    assert "Epoch: 3/3" in log and "Epoch: 1/3" not in log and "Epoch: 2/3" not in log  # only the missing epoch
    state = torch.load(models / "checkpoint_epoch=3.pt", weights_only=True)
    assert state["trainer"]["iteration"] == 3 * per_epoch and state["g_scheduler"]["last_epoch"] == 3
    from pipeline.engines import latest_checkpoint

    assert latest_checkpoint(models).name == "checkpoint_epoch=3.pt"


def test_inference_harmonizes_the_source_site_as_the_cli_does(trained, contrast_pair, tmp_path):
    out = tmp_path / "harm"
    infer = [
        "run",
        "--config_file",
        INFER,
        "--bundle_root",
        str(trained),
        "--dataset_dir",
        str(contrast_pair / "preprocessed"),
        "--output_dir",
        str(out),
        "--direction",
        "to_target",
        "--amp",
        "float32",
    ]
    bundle(*infer, "--net_kwargs#channels", "8", "--net_kwargs#n_residual", "1")
    table = read_table(out / "harmonized.tsv", keep_default_na=False)
    dark = table[table["site"] == "dark"]
    assert len(dark) > 0 and dark["harmonized"].all() and not table.loc[table["site"] == "bright", "harmonized"].any()
    row = dark.iloc[0]
    harmonized, source = nib.load(row["image_cube"]), nib.load(row["source_image_cube"])
    assert harmonized.shape == source.shape == (64, 64, 64)
    np.testing.assert_allclose(harmonized.affine, source.affine)
    net = load_generator(trained / "models" / "model.pt", "to_target")
    with torch.no_grad():
        expected = net(torch.from_numpy(source.get_fdata().astype(np.float32))[None, None])[0, 0].numpy()
    mask = nib.load(row["mask_cube"]).get_fdata() > 0
    np.testing.assert_allclose(harmonized.get_fdata(), expected * mask, atol=1e-5)
    # the Dask path of `mriharmony harmonize` writes the same table and images
    cli = harmonize_cohort(
        read_preprocessed(contrast_pair / "preprocessed"),
        trained / "models" / "model.pt",
        tmp_path / "cli",
        progress=False,
    )
    columns = ["subject", "session", "site", "harmonized", "status", "generator_sha256", "direction"]
    assert table[columns].equals(cli[columns].astype(table[columns].dtypes.to_dict()))
    for a, b in zip(dark["image_cube"], cli.loc[cli["harmonized"], "image_cube"]):
        np.testing.assert_allclose(nib.load(a).get_fdata(), nib.load(b).get_fdata(), atol=1e-5)
    # a re-run skips what is written; the wrong architecture is refused with the trained values
    mtime = Path(row["image_cube"]).stat().st_mtime_ns
    bundle(*infer, "--net_kwargs#channels", "8", "--net_kwargs#n_residual", "1")
    assert Path(row["image_cube"]).stat().st_mtime_ns == mtime
    assert read_table(out / "harmonized.tsv", keep_default_na=False).loc[lambda t: t["harmonized"], "resumed"].all()
    with pytest.raises(AssertionError, match=r"this config builds .*; pass --net_kwargs#channels 8"):
        bundle(*infer)
    # bfloat16 autocast: recorded, close to fp32 inside the brain, and not mistaken for the fp32 images on resume
    bf16 = tmp_path / "bf16"
    bundle(
        *[a if a != str(out) else str(bf16) for a in infer[:-1]],
        "bfloat16",
        "--net_kwargs#channels",
        "8",
        "--net_kwargs#n_residual",
        "1",
    )
    fast = read_table(bf16 / "harmonized.tsv", keep_default_na=False)
    fast = fast[fast["site"] == "dark"].set_index("subject")
    for subject, path, mask_path in zip(dark["subject"], dark["image_cube"], dark["mask_cube"]):
        made = Path(fast.loc[subject, "image_cube"])
        assert json.loads(made.with_name(made.name.replace(".nii.gz", ".json")).read_text())["Precision"] == "bfloat16"
        inside = nib.load(mask_path).get_fdata() > 0
        assert np.abs(nib.load(made).get_fdata() - nib.load(path).get_fdata())[inside].mean() < 1e-2  # bf16 rounding


def test_verify_metadata_and_net_in_out():
    log = bundle("verify_metadata", "--meta_file", META, "--filepath", str(REPO / "bundles" / "meta_schema.json"))
    assert "metadata is verified with no error" in log and "skipped downloading" in log
    log = bundle("verify_net_in_out", "network_def", "--meta_file", META, "--config_file", TRAIN)
    assert "data shape of network is verified with no error" in log


def test_metadata_schema_rejects_a_bad_file(tmp_path):

    meta = json.loads(Path(META).read_text())
    del meta["network_data_format"]["inputs"]["image"]["num_channels"]
    bad = tmp_path / "metadata.json"
    bad.write_text(json.dumps(meta))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "verify_metadata",
            "--meta_file",
            str(bad),
            "--filepath",
            str(REPO / "bundles" / "meta_schema.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode != 0 and "num_channels" in proc.stdout + proc.stderr


def test_ckpt_export_matches_the_eager_generator(trained):
    ts = trained / "models" / "generator.ts"
    bundle(
        "ckpt_export",
        "network_def",
        "--filepath",
        str(ts),
        "--ckpt_file",
        str(trained / "models" / "model.pt"),
        "--meta_file",
        META,
        "--config_file",
        INFER,
        "--net_kwargs#channels",
        "8",
        "--net_kwargs#n_residual",
        "1",
    )
    scripted = torch.jit.load(str(ts))
    eager = load_generator(trained / "models" / "model.pt", "to_target")
    x = torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), eager(x), rtol=1e-5, atol=1e-6)


def _resized(path: str) -> torch.Tensor:
    image = torch.from_numpy(np.asarray(nib.load(path).dataobj, dtype=np.float32))[None, None]
    return F.interpolate(image, size=(32, 32, 32), mode="area")


@pytest.mark.slow
def test_learning_is_real(contrast_pair, tmp_path):
    """A few minutes of CPU training at 32^3, scored on traveling subjects the CycleGAN never saw: three of the
    six are moved to the test split (neither trained on nor used to choose the checkpoint); G_X(x)'s error
    against the same subject's real site-Y image, inside the brain, is at least 15% below the identity's."""
    from pipeline.evaluate.fidelity import brain_mask, masked_fidelity

    table = read_preprocessed(contrast_pair / "preprocessed")
    n_sites = table.groupby("subject")["site"].nunique()
    traveling = sorted(n_sites[n_sites > 1].index)
    held_out = traveling[::2]
    splits = pd.read_csv(contrast_pair / "splits.tsv", sep="\t", dtype={"subject": str})
    splits["split"] = [
        ("test" if s in held_out else ("val" if s in traveling else split))
        for s, split in zip(splits["subject"], splits["split"])
    ]
    splits.to_csv(tmp_path / "splits.tsv", sep="\t", index=False)
    bundle(
        "run",
        "--config_file",
        TRAIN,
        "--bundle_root",
        str(tmp_path),
        "--dataset_dir",
        str(contrast_pair / "preprocessed"),
        "--splits_file",
        str(tmp_path / "splits.tsv"),
        "--source_site",
        "dark",
        "--target_site",
        "bright",
        "--epochs",
        "8",
        "--batch_size",
        "4",
        "--spatial_size",
        "[32,32,32]",
        "--net_kwargs#channels",
        "16",
        "--net_kwargs#n_residual",
        "2",
        "--disc_kwargs#channels",
        "16",
    )
    info = read_harmonizer_info(tmp_path / "models" / "model.pt")
    assert not set(held_out) & (set(info["train_subjects"]) | set(info["val_subjects"]))
    net = load_generator(tmp_path / "models" / "model.pt", "to_target")
    identity, harmonized = [], []
    for subject in held_out:
        rows = table[table["subject"] == subject].set_index("site")["image_cube"]
        x, y = _resized(rows["dark"]), _resized(rows["bright"])
        mask = brain_mask(x, y)
        with torch.no_grad():
            harmonized.append(float(masked_fidelity(net(x) * (x != 0), y, mask)["mae"]))
        identity.append(float(masked_fidelity(x, y, mask)["mae"]))
    assert np.mean(harmonized) < 0.85 * np.mean(identity), (identity, harmonized)


def test_mlflow_tracking_when_asked(contrast_pair, tmp_path):
    """`--tracking configs/mlflow.json` logs the CycleGAN's losses per iteration and the validation metrics."""
    mlflow = pytest.importorskip("mlflow", reason="optional: pip install 'mriharmony[tracking]'")
    bundle(
        "run",
        "--config_file",
        TRAIN,
        "--bundle_root",
        str(tmp_path),
        "--dataset_dir",
        str(contrast_pair / "preprocessed"),
        "--source_site",
        "dark",
        "--target_site",
        "bright",
        "--epochs",
        "1",
        "--batch_size",
        "4",
        "--spatial_size",
        "[32,32,32]",
        "--net_kwargs#channels",
        "4",
        "--net_kwargs#n_residual",
        "1",
        "--disc_kwargs#channels",
        "4",
        "--tracking",
        str(BUNDLE / "configs" / "mlflow.json"),
    )
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'eval' / 'mlruns.db'}")
    runs = mlflow.search_runs(search_all_experiments=True)
    assert len(runs) == 1 and {"metrics.g_loss", "metrics.d_loss", "metrics.travel_mae", "metrics.identity_mae"} <= set(
        runs.columns
    )
    steps = len(site_pair_data(contrast_pair / "preprocessed", "dark", "bright").train_x) // 4 + 1
    history = mlflow.MlflowClient().get_metric_history(runs.run_id[0], "g_loss")
    assert len(history) in (steps - 1, steps) and all(np.isfinite(m.value) for m in history)


def test_model_zoo_checks(trained, contrast_pair, tmp_path):
    """The model-zoo's checks on the bundle with the weights the trained fixture wrote (tests/bundles/model_zoo.py)."""
    data = {"dataset_dir": str(contrast_pair / "preprocessed")}
    check_bundle(
        "cyclegan_harmonization",
        stage("cyclegan_harmonization", trained, tmp_path),
        example_input=torch.rand(1, 1, 32, 32, 32),
        net_overrides={"net_kwargs#channels": 8, "net_kwargs#n_residual": 1},
        train_overrides={
            **data,
            "source_site": "dark",
            "target_site": "bright",
            "spatial_size": [64, 64, 64],
            "disc_kwargs#channels": 8,
        },
        infer_overrides=data,
    )
