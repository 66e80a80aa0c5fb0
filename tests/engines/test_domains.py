"""CycleGAN domains other than sites: CN <-> AD translation data (000), and such a checkpoint is refused
as a harmonizer."""

from __future__ import annotations

import pytest
import torch

from pipeline.downstream import task_table
from pipeline.engines import site_pair_data
from pipeline.harmonize import harmonize_cohort
from pipeline.nets import HarmonizationGenerator3D
from pipeline.preprocess.batch import read_preprocessed


def test_diagnosis_domains_train_on_training_subjects_of_each_class(ad_pair):
    data = site_pair_data(ad_pair / "preprocessed", "CN", "AD", domain_key="diagnosis")
    table = task_table(ad_pair / "preprocessed", "cn_ad")
    train = table[table["split"] == "train"]
    assert sorted(i["subject"] for i in data.train_x) == sorted(train.loc[train["diagnosis"] == "CN", "subject"])
    assert sorted(i["subject"] for i in data.train_y) == sorted(train.loc[train["diagnosis"] == "AD", "subject"])
    val_cn = table[(table["split"] == "val") & (table["diagnosis"] == "CN")]
    assert sorted(i["subject"] for i in data.val_x) == sorted(val_cn["subject"]) and data.val_pairs == []
    with pytest.raises(ValueError, match=r"source_site 'MCI' is not a diagnosis of .* \(diagnosis values: \['AD', 'CN'\]\)"):
        site_pair_data(ad_pair / "preprocessed", "MCI", "AD", domain_key="diagnosis")
    with pytest.raises(ValueError, match="domain_key 'scanner' is not a column"):
        site_pair_data(ad_pair / "preprocessed", "CN", "AD", domain_key="scanner")


def test_a_class_translator_is_not_a_harmonizer(ad_pair, tmp_path):
    kw = {"channels": 4, "n_residual": 1}
    ckpt = tmp_path / "model.pt"
    torch.save({"g_xy": HarmonizationGenerator3D(**kw).state_dict(), "g_yx": HarmonizationGenerator3D(**kw).state_dict(),
                "info": {"source_site": "CN", "target_site": "AD", "domain_key": "diagnosis", "net_kwargs": kw}}, ckpt)
    with pytest.raises(ValueError, match="translates between diagnosis values .* not a harmonizer"):
        harmonize_cohort(read_preprocessed(ad_pair / "preprocessed"), ckpt, tmp_path / "out", progress=False)
