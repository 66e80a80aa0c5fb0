"""CN <-> AD translation (Wang 2020) through the CycleGAN bundle with domain_key=diagnosis: training subjects
only, classes swapped, outputs equal the generator's, provenance complete, re-runs resume."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from pipeline.augment import AugmentationPolicy, build_training_table
from pipeline.augment.translate import read_synthetic, translate_training_images
from pipeline.data.task_tables import task_table
from pipeline.harmonize import generator_file, load_generator, read_harmonizer_info, save_harmonizer
from pipeline.run import file_sha256
from tests.bundles.test_cyclegan_bundle import REPO, TRAIN, bundle

TRANSLATION = str(REPO / "bundles" / "synthetic_augmentation" / "configs" / "translation.yaml")


@pytest.fixture(scope="module")
def translator(ad_pair, tmp_path_factory):
    root = tmp_path_factory.mktemp("translator")
    # the synthetic_augmentation bundle's override laid over the CycleGAN recipe (as its docs say)
    bundle(
        "run",
        "--config_file",
        f"['{TRAIN}','{TRANSLATION}']",
        "--bundle_root",
        str(root),
        "--dataset_dir",
        str(ad_pair / "preprocessed"),
        "--epochs",
        "2",
        "--epoch_length",
        "1",
        "--batch_size",
        "2",
        "--net_kwargs#channels",
        "4",
        "--net_kwargs#n_residual",
        "1",
        "--disc_kwargs#channels",
        "4",
    )
    return root / "models" / "model.pt"


def test_translates_training_images_only_with_provenance(ad_pair, translator, tmp_path):
    out = tmp_path / "synthetic"
    assert read_harmonizer_info(translator)["domain_key"] == "diagnosis"
    synthetic = translate_training_images(ad_pair / "preprocessed", translator, out)
    table = task_table(ad_pair / "preprocessed", "cn_ad")
    train = table[table["split"] == "train"]
    assert sorted(synthetic["source_subject"]) == sorted(train["subject"])  # train split only, every image once
    flipped = dict(zip(train["subject"], train["diagnosis"].map({"CN": "AD", "AD": "CN"})))
    assert all(flipped[s] == d for s, d in zip(synthetic["source_subject"], synthetic["diagnosis"]))
    assert (synthetic["checkpoint_sha256"] == file_sha256(translator)).all()  # model.pt names the translator
    assert read_synthetic(out).equals(read_synthetic(out / "synthetic.tsv"))

    row = synthetic[synthetic["diagnosis"] == "AD"].iloc[0]  # a CN image through G_X
    source = train[train["subject"] == row["source_subject"]].iloc[0]
    img, made = nib.load(source["image_cube"]), nib.load(row["image"])
    np.testing.assert_allclose(made.affine, img.affine)
    with torch.no_grad():
        expected = load_generator(translator, "to_target")(
            torch.from_numpy(img.get_fdata(dtype=np.float32))[None, None]
        )
    mask = nib.load(source["mask_cube"]).get_fdata() > 0
    np.testing.assert_allclose(made.get_fdata(), expected[0, 0].numpy() * mask, atol=1e-5)

    mtime = Path(row["image"]).stat().st_mtime_ns
    translate_training_images(ad_pair / "preprocessed", translator, out)
    assert Path(row["image"]).stat().st_mtime_ns == mtime  # resumed, not rewritten

    policy = AugmentationPolicy.from_dict({"AD": {"synthetic_fraction": 0.5, "generator": "translation"}})
    mixed = build_training_table(train, synthetic, policy, seed=0)
    n_ad = (train["diagnosis"] == "AD").sum()
    assert mixed["synthetic"].sum() == round(0.5 * n_ad) and (mixed.loc[mixed["synthetic"], "diagnosis"] == "AD").all()


def test_without_traveling_subjects_the_final_epoch_is_the_model(translator):
    """Cycle error is lowest for the near-identity start, so it must not choose the translator."""
    models = translator.parent
    final = torch.load(models / "checkpoint_epoch=2.pt", weights_only=True)
    for direction, key in (("to_target", "g_xy"), ("to_source", "g_yx")):
        chosen = torch.load(generator_file(translator, direction), weights_only=True)
        assert all(torch.equal(final[key][k], chosen[k]) for k in final[key])
    assert (models / "best_cycle_mae.pt").exists() and (models / "best_cycle_mae_to_source.pt").exists()


def test_refuses_a_site_harmonizer(ad_pair, tmp_path):
    from pipeline.nets import HarmonizationGenerator3D

    kw = {"channels": 4, "n_residual": 1}
    ckpt = save_harmonizer(
        tmp_path,
        HarmonizationGenerator3D(**kw),
        HarmonizationGenerator3D(**kw),
        {"source_site": "clinica", "target_site": "clinicb", "net_kwargs": kw},
    )
    with pytest.raises(ValueError, match="a class translator has domain_key 'diagnosis', this one maps site"):
        translate_training_images(ad_pair / "preprocessed", ckpt, tmp_path / "out")
