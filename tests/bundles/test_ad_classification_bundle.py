"""The ad_classification bundle through `python -m monai.bundle` (offline): 3D and three-view models train
and infer, learning is real (and permuted labels stay at chance), metrics, baselines and Grad-CAM
outputs are complete and in template space, verification and export."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.data.task_tables import task_table
from pipeline.downstream.classification import load_classifier
from pipeline.metrics.classification import classification_metrics
from pipeline.nets import build_classifier
from tests.bundles.model_zoo import check_bundle, stage
from tests.bundles.test_cyclegan_bundle import REPO, bundle

BUNDLE = REPO / "bundles" / "ad_classification"
TRAIN = str(BUNDLE / "configs" / "train.yaml")
INFER = str(BUNDLE / "configs" / "inference.yaml")
META = str(BUNDLE / "configs" / "metadata.json")
NARROW_3D = ["--spatial_size", "[32,32,32]", "--net_kwargs#widths", "[8,16,32,64]"]
LEARN = ["--epochs", "30", "--batch_size", "4", "--lr", "0.0003"]
NARROW_2D = ["--model", "three_view", "--net_kwargs#widths", "[8,16,32,64]", "--net_kwargs#depth", "10"]


@pytest.fixture(scope="module")
def trained_3d(ad_pair, tmp_path_factory) -> Path:
    """30 epochs on 24 training subjects at 32^3 (about 20 s)."""
    root = tmp_path_factory.mktemp("ad3d")
    bundle(
        "run",
        "--config_file",
        TRAIN,
        "--bundle_root",
        str(root),
        "--dataset_dir",
        str(ad_pair / "preprocessed"),
        *LEARN,
        *NARROW_3D,
    )
    return root


def _held_out(root: Path, ad_pair: Path, name: str) -> dict:
    """Metrics of the val + test subjects (never trained on), through the bundle's inference config."""
    out = root / name
    bundle(
        "run",
        "--config_file",
        INFER,
        "--bundle_root",
        str(root),
        "--dataset_dir",
        str(ad_pair / "preprocessed"),
        "--output_dir",
        str(out),
        "--split",
        "all",
        "--n_resamples",
        "10",
        "--volumes_file",
        "",
        *NARROW_3D,
    )
    pred = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"subject": str}, keep_default_na=False)
    held = pred[pred["split"].isin(["val", "test"])]
    return classification_metrics(held["label"], held[["prob_CN", "prob_AD"]].to_numpy())


@pytest.mark.slow
def test_learning_is_real_and_shuffled_labels_stay_at_chance(trained_3d, ad_pair, tmp_path):
    """Exaggerated AD effect (x3): the CNN separates held-out CN and AD subjects; the same run on permuted
    training labels does not (seed 0: balanced accuracy 0.89, AUC 0.95 vs 0.56 and 0.49 when measured)."""
    real = _held_out(trained_3d, ad_pair, "eval_all")
    bundle(
        "run",
        "--config_file",
        TRAIN,
        "--bundle_root",
        str(tmp_path),
        "--dataset_dir",
        str(ad_pair / "preprocessed"),
        "--permute_labels",
        "0",
        *LEARN,
        *NARROW_3D,
    )
    shuffled = _held_out(tmp_path, ad_pair, "eval_all")
    assert real["n"] == shuffled["n"] >= 14
    assert real["balanced_accuracy"] >= 0.75 and real["auc"] >= 0.8, real
    assert shuffled["balanced_accuracy"] <= 0.7 and shuffled["auc"] <= 0.7, shuffled


def test_3d_inference_metrics_and_gradcam(trained_3d, ad_pair):
    out = trained_3d / "eval"
    bundle(
        "run",
        "--config_file",
        INFER,
        "--bundle_root",
        str(trained_3d),
        "--dataset_dir",
        str(ad_pair / "preprocessed"),
        "--output_dir",
        str(out),
        "--gradcam",
        "true",
        *NARROW_3D,
    )
    pred = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"subject": str}, keep_default_na=False)
    table = task_table(ad_pair / "preprocessed", "cn_ad")
    test = table[table["split"] == "test"]
    assert sorted(pred["subject"]) == sorted(test["subject"]) and set(pred["diagnosis"]) <= {"CN", "AD"}
    np.testing.assert_allclose(pred["prob_CN"] + pred["prob_AD"], 1.0, atol=1e-5)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classes"] == ["CN", "AD"] and metrics["metrics"]["n"] == len(test)
    assert sum(map(sum, metrics["metrics"]["confusion_matrix"])) == len(test)
    for name in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auc"):
        assert name in metrics["metrics"] and len(metrics["intervals_95"][name]) == 2
    # baselines on the same subjects: the majority class is chance; true volumes separate an x3 AD effect
    assert metrics["baselines"]["majority_class"]["metrics"]["balanced_accuracy"] == 0.5
    low, high = metrics["baselines"]["majority_class"]["intervals_95"]["balanced_accuracy"]
    assert low <= 0.5 <= high  # a constant predictor's interval, not [nan, nan]
    volume = metrics["baselines"]["volume_logistic"]
    assert volume["volumes_file"] == str(ad_pair / "bids" / "derivatives" / "phantom" / "truth.tsv")
    assert volume["metrics"]["n"] == len(test) and volume["metrics"]["balanced_accuracy"] >= 0.8
    row = test.iloc[0]
    stem = f"sub-{row['subject']}" + (f"_ses-{row['session']}" if row["session"] else "")
    heat, source = nib.load(out / "gradcam" / f"{stem}_gradcam.nii.gz"), nib.load(row["image"])
    assert heat.shape == source.shape == (64, 64, 64)
    np.testing.assert_allclose(heat.affine, source.affine)
    assert 0 <= heat.get_fdata().min() and heat.get_fdata().max() <= 1 + 1e-6
    assert (out / "gradcam" / f"{stem}_gradcam.png").exists() and (out / "gradcam" / "class-CN_mean.nii.gz").exists()


def test_three_view_trains_and_infers_with_gradcam_on_the_planes_it_saw(ad_pair, tmp_path):
    bundle(
        "run",
        "--config_file",
        TRAIN,
        "--bundle_root",
        str(tmp_path),
        "--dataset_dir",
        str(ad_pair / "preprocessed"),
        "--epochs",
        "1",
        "--batch_size",
        "4",
        *NARROW_2D,
    )
    bundle(
        "run",
        "--config_file",
        INFER,
        "--bundle_root",
        str(tmp_path),
        "--dataset_dir",
        str(ad_pair / "preprocessed"),
        "--output_dir",
        str(tmp_path / "eval"),
        "--gradcam",
        "true",
        *NARROW_2D,
    )
    pred = pd.read_csv(tmp_path / "eval" / "predictions.tsv", sep="\t", dtype={"subject": str}, keep_default_na=False)
    assert len(pred) > 0 and pred["predicted"].isin(["CN", "AD"]).all()
    heat = nib.load(tmp_path / "eval" / "gradcam" / f"sub-{pred['subject'].iloc[0]}_gradcam.nii.gz").get_fdata()
    assert heat.shape == (64, 64, 64) and heat.max() > 0
    on_planes = np.zeros(heat.shape, bool)
    on_planes[32, :, :] = on_planes[:, 32, :] = on_planes[:, :, 32] = True  # mid-planes of the RAS 64^3 cube
    assert (heat[~on_planes] == 0).all() and all(
        np.abs(heat[i]).sum() > 0 for i in (np.s_[32, :, :], np.s_[:, 32, :], np.s_[:, :, 32])
    )


def test_verify_and_export(trained_3d):
    log = bundle("verify_metadata", "--meta_file", META, "--filepath", str(REPO / "bundles" / "meta_schema.json"))
    assert "metadata is verified with no error" in log
    log = bundle("verify_net_in_out", "network_def", "--meta_file", META, "--config_file", INFER, *NARROW_3D[2:])
    assert "data shape of network is verified with no error" in log
    ts = trained_3d / "models" / "model.ts"
    bundle(
        "ckpt_export",
        "network_def",
        "--filepath",
        str(ts),
        "--ckpt_file",
        str(trained_3d / "models" / "model.pt"),
        "--meta_file",
        META,
        "--config_file",
        INFER,
        *NARROW_3D,
    )  # the model-zoo's default arguments
    eager = load_classifier(build_classifier("resnet3d", 2, widths=(8, 16, 32, 64)), trained_3d / "models" / "model.pt")
    x = torch.rand(2, 1, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(ts))(x), eager(x), rtol=1e-4, atol=1e-5)


def test_model_zoo_checks(trained_3d, ad_pair, tmp_path):
    """The model-zoo's checks on the bundle with the weights the trained fixture wrote (tests/bundles/model_zoo.py)."""
    data = {"dataset_dir": str(ad_pair / "preprocessed")}
    check_bundle(
        "ad_classification",
        stage("ad_classification", trained_3d, tmp_path),
        example_input=torch.rand(2, 1, 32, 32, 32),
        net_overrides={"spatial_size": [32, 32, 32], "net_kwargs#widths": [8, 16, 32, 64]},
        train_overrides=data,
        infer_overrides=data,
        shared_keys=["image_transforms", "view_transforms", "tensor_transforms"],
    )
