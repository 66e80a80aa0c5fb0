"""The synthetic_augmentation bundle through `python -m monai.bundle` (offline): the conditional GAN trains on
training subjects only, generate writes the requested images per class with provenance and a reproducible
seed, and verify_metadata / verify_net_in_out pass."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from pipeline.augment.generate import generate_conditional, load_conditional_generator
from pipeline.data.task_tables import task_table
from pipeline.run import file_sha256
from pipeline.table_paths import read_table
from tests.bundles.model_zoo import check_bundle, stage
from tests.bundles.test_cyclegan_bundle import REPO, bundle

BUNDLE = REPO / "bundles" / "synthetic_augmentation"
TRAIN = str(BUNDLE / "configs" / "train.yaml")
GENERATE = str(BUNDLE / "configs" / "inference.yaml")
META = str(BUNDLE / "configs" / "metadata.json")
TINY = [
    "--spatial_size",
    "16",
    "--net_kwargs#channels",
    "4",
    "--net_kwargs#latent_dim",
    "8",
    "--disc_kwargs#channels",
    "4",
]


@pytest.fixture(scope="module")
def trained(ad_pair, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("conditional")
    bundle(
        "run",
        "--config_file",
        TRAIN,
        "--bundle_root",
        str(root),
        "--dataset_dir",
        str(ad_pair / "preprocessed"),
        "--epochs",
        "2",
        "--batch_size",
        "4",
        *TINY,
    )
    return root


def test_trains_on_training_subjects_only(trained, ad_pair):
    net, info = load_conditional_generator(trained / "models" / "model.pt")
    table = task_table(ad_pair / "preprocessed", "cn_ad")
    assert info["train_subjects"] == sorted(table.loc[table["split"] == "train", "subject"])
    assert info["class_names"] == ["CN", "AD"] and net.spatial_size == 16
    assert (trained / "logs").exists()


def test_generate_writes_counts_with_provenance_and_seeds(trained, ad_pair, tmp_path):
    reference = read_table(ad_pair / "preprocessed" / "preprocessed.tsv")["image_cube"].iloc[0]
    out = tmp_path / "synthetic"
    bundle(
        "run",
        "--config_file",
        GENERATE,
        "--bundle_root",
        str(trained),
        "--output_dir",
        str(out),
        "--reference_image",
        reference,
        "--counts",
        "{'CN': 2, 'AD': 3}",
        "--seed",
        "5",
        *TINY[:6],
    )
    table = read_table(out / "synthetic.tsv", keep_default_na=False)
    assert table["diagnosis"].value_counts().to_dict() == {"AD": 3, "CN": 2}
    assert sorted(table["seed"]) == [5, 6, 7, 8, 9] and (table["generator"] == "conditional").all()
    assert (table["checkpoint_sha256"] == file_sha256(trained / "models" / "model.pt")).all()
    img, ref = nib.load(table["image"].iloc[0]), nib.load(reference)
    assert img.shape == (16, 16, 16) and 0 <= img.get_fdata().min() and img.get_fdata().max() <= 1
    np.testing.assert_allclose(np.abs(np.diag(img.affine)[:3]), np.abs(np.diag(ref.affine)[:3]) * 4)
    # same field of view: the centre of the grid stays where it was
    np.testing.assert_allclose(img.affine @ [7.5, 7.5, 7.5, 1], ref.affine @ [31.5, 31.5, 31.5, 1], atol=1e-4)
    again = generate_conditional(
        trained / "models" / "model.pt", tmp_path / "again", {"AD": 1}, reference_image=reference, seed=7
    )
    first_ad = table[(table["diagnosis"] == "AD") & (table["seed"] == 7)]["image"].iloc[0]
    # the same noise and class give the same image (the bundle runs batches of 4, this call one: 6e-8 of rounding)
    np.testing.assert_allclose(nib.load(again["image"].iloc[0]).get_fdata(), nib.load(first_ad).get_fdata(), atol=1e-6)
    with pytest.raises(AssertionError, match=r"this config builds .*; pass .*--net_kwargs#channels 4"):
        bundle(
            "run",
            "--config_file",
            GENERATE,
            "--bundle_root",
            str(trained),
            "--output_dir",
            str(tmp_path / "wide"),
            "--reference_image",
            reference,
            *TINY[:4],
        )  # latent_dim left at its default: refused, named
    with pytest.raises(ValueError, match=r"classes \['MCI'\] are not generated"):
        generate_conditional(trained / "models" / "model.pt", tmp_path / "bad", {"MCI": 1}, reference_image=reference)


def test_verify_metadata_and_net_in_out():
    log = bundle("verify_metadata", "--meta_file", META, "--filepath", str(REPO / "bundles" / "meta_schema.json"))
    assert "metadata is verified with no error" in log
    log = bundle("verify_net_in_out", "network_def", "--meta_file", META, "--config_file", GENERATE)
    assert "data shape of network is verified with no error" in log


def test_code_wrapper_matches_the_generator():
    from pipeline.augment.generate import LatentCodeGenerator
    from pipeline.nets.conditional_gan import ConditionalGenerator3D

    net = ConditionalGenerator3D(spatial_size=16, channels=4, latent_dim=8).eval()
    z, label = torch.randn(3, 8), torch.tensor([1, 0, 1])
    code = torch.cat([z, torch.nn.functional.one_hot(label, 2).float()], dim=1)[..., None, None, None]
    with torch.no_grad():
        torch.testing.assert_close(LatentCodeGenerator(net)(code), net(z, label))


def test_model_zoo_checks(trained, ad_pair, tmp_path):
    """The model-zoo's checks on the bundle with the weights the trained fixture wrote (tests/bundles/model_zoo.py)."""
    reference = read_table(ad_pair / "preprocessed" / "preprocessed.tsv")["image_cube"].iloc[0]
    code = torch.cat([torch.randn(2, 8), torch.eye(2)], dim=1)[..., None, None, None]  # noise, then class scores
    check_bundle(
        "synthetic_augmentation",
        stage("synthetic_augmentation", trained, tmp_path),
        example_input=code,
        net_overrides={"spatial_size": 16, "net_kwargs#channels": 4, "net_kwargs#latent_dim": 8},
        train_overrides={"dataset_dir": str(ad_pair / "preprocessed"), "disc_kwargs#channels": 4},
        infer_overrides={"reference_image": reference},
    )
