"""CycleGAN domains other than sites: CN <-> AD translation data (Wang 2020), and such a checkpoint is refused
as a harmonizer."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.data import site_pair_data
from pipeline.data.task_tables import task_table
from pipeline.harmonize import harmonize_cohort, save_harmonizer
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
    with pytest.raises(
        ValueError, match=r"source_site 'MCI' is not a diagnosis of .* \(diagnosis values: \['AD', 'CN'\]\)"
    ):
        site_pair_data(ad_pair / "preprocessed", "MCI", "AD", domain_key="diagnosis")
    with pytest.raises(ValueError, match="domain_key 'scanner' is not a column"):
        site_pair_data(ad_pair / "preprocessed", "CN", "AD", domain_key="scanner")


def test_a_class_translator_is_not_a_harmonizer(ad_pair, tmp_path):
    kw = {"channels": 4, "n_residual": 1}
    ckpt = save_harmonizer(
        tmp_path,
        HarmonizationGenerator3D(**kw),
        HarmonizationGenerator3D(**kw),
        {"source_site": "CN", "target_site": "AD", "domain_key": "diagnosis", "net_kwargs": kw},
    )
    with pytest.raises(ValueError, match="translates between diagnosis values .* not a harmonizer"):
        harmonize_cohort(read_preprocessed(ad_pair / "preprocessed"), ckpt, tmp_path / "out", progress=False)


def test_site_domains_never_train_on_traveling_subjects_and_keep_test_ones_out_of_validation(contrast_pair, tmp_path):
    """The harmonizer's data rules: traveling subjects (scanned at both sites) are never trained on; those of
    train / val choose the checkpoint; those of the test split are left for the final evaluation."""
    table = read_preprocessed(contrast_pair / "preprocessed")
    n_sites = table.groupby("subject")["site"].nunique()
    traveling = sorted(n_sites[n_sites > 1].index)
    assert len(traveling) == 6
    splits = pd.read_csv(contrast_pair / "splits.tsv", sep="\t", dtype={"subject": str})
    wanted = dict(zip(traveling, ["train", "train", "val", "val", "test", "test"]))
    splits["split"] = [wanted.get(s, split) for s, split in zip(splits["subject"], splits["split"])]
    splits.to_csv(tmp_path / "splits.tsv", sep="\t", index=False)
    data = site_pair_data(contrast_pair / "preprocessed", "dark", "bright", splits_file=tmp_path / "splits.tsv")
    trained = {i["subject"] for i in data.train_x + data.train_y}
    assert not trained & set(traveling)
    split = splits.set_index("subject")["split"]
    single = table[~table["subject"].isin(traveling)]
    for site, items in (("dark", data.train_x), ("bright", data.train_y)):
        expected = single[(single["site"] == site) & single["subject"].map(split).eq("train")]
        assert sorted(i["subject"] for i in items) == sorted(expected["subject"])
    assert sorted(p["subject"] for p in data.val_pairs) == traveling[:4]  # train and val traveling subjects
    pair = data.val_pairs[0]
    rows = table[table["subject"] == pair["subject"]].set_index("site")["image_cube"]
    assert (pair["x"], pair["y"]) == (rows["dark"], rows["bright"])  # source-site image -> its target-site image
    used = {p["subject"] for p in data.val_pairs} | {i["subject"] for i in data.val_x} | trained
    assert not used & set(traveling[4:])  # test-split traveling subjects: neither trained nor validated on
    assert {i["subject"] for i in data.val_x} <= set(single.loc[single["subject"].map(split).eq("val"), "subject"])
