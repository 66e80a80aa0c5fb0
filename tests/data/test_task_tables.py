"""Task tables and items: labels per task (including CN / MCI / AD), controls only for brain age, splits
from the split table, permuted labels keep the class counts."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from pipeline.data.task_tables import task_items, task_table


@pytest.fixture
def folder(tmp_path):
    diagnoses = ["CN", "MCI", "AD", "CN", "AD", "SMC", "CN", "MCI"]
    rows = [
        {
            "subject": f"s{i}",
            "session": "",
            "site": "a" if i < 4 else "b",
            "status": "ok",
            "age": 60 + i,
            "diagnosis": d,
            "image_cube": f"/data/s{i}.nii.gz",
        }
        for i, d in enumerate(diagnoses)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "preprocessed.tsv", sep="\t", index=False)
    splits = ["train", "train", "train", "train", "train", "val", "test", "test"]
    pd.DataFrame({"subject": [f"s{i}" for i in range(8)], "split": splits}).to_csv(
        tmp_path / "splits.tsv", sep="\t", index=False
    )
    return tmp_path


def test_labels_per_task(folder):
    three = task_table(folder, "cn_mci_ad")
    assert dict(zip(three["subject"], three["label"])) == {
        "s0": 0,
        "s1": 1,
        "s2": 2,
        "s3": 0,
        "s4": 2,
        "s6": 0,
        "s7": 1,
    }
    two = task_table(folder, "cn_ad")
    assert set(two["diagnosis"]) == {"CN", "AD"} and set(two["label"]) == {0, 1}
    ages = task_table(folder, "brain_age")
    assert list(ages["subject"]) == ["s0", "s3", "s6"] and list(ages["label"]) == [60, 63, 66]
    assert list(task_table(folder, "cn_ad", sites=["b"])["subject"]) == ["s4", "s6"]
    with pytest.raises(ValueError, match=r"sites \['c'\] are not in"):
        task_table(folder, "cn_ad", sites=["c"])
    with pytest.raises(ValueError, match="task must be one of"):
        task_table(folder, "sex")


def test_items_of_a_split_and_permuted_labels(folder):
    train = task_items(folder, "cn_mci_ad", "train")
    assert [i["subject"] for i in train] == ["s0", "s1", "s2", "s3", "s4"]
    assert [i["label"] for i in train] == [0, 1, 2, 0, 2] and train[0]["image"] == "/data/s0.nii.gz"
    permuted = task_items(folder, "cn_mci_ad", "train", permute_labels=1)
    assert Counter(i["label"] for i in permuted) == Counter(i["label"] for i in train)
    assert [i["label"] for i in permuted] != [i["label"] for i in train]
    assert [i["subject"] for i in task_items(folder, "cn_mci_ad", "test")] == ["s6", "s7"]


def test_mixed_training_items_are_checked_against_the_splits(folder):
    from pipeline.data.task_tables import mixed_training_items

    real = [
        {"image": f"/data/s{i}.nii.gz", "diagnosis": d, "subject": f"s{i}", "synthetic": False, "source_subject": ""}
        for i, d in ((0, "CN"), (2, "AD"), (3, "CN"), (4, "AD"))
    ]
    fake = {
        "image": "/syn/a.nii.gz",
        "diagnosis": "AD",
        "subject": "synthetic-translation-0",
        "synthetic": True,
        "source_subject": "s0",
    }

    def write(rows, name="mixed.tsv"):
        pd.DataFrame(rows).to_csv(folder / name, sep="\t", index=False)
        return folder / name

    items = mixed_training_items(write(real + [fake]), folder, "cn_ad")
    assert [i["label"] for i in items] == [0, 1, 0, 1, 1] and [i["synthetic"] for i in items] == [False] * 4 + [True]
    with pytest.raises(ValueError, match=r"real rows of non-training subject\(s\) \['s6'\]"):
        mixed_training_items(write(real + [{**real[0], "subject": "s6"}]), folder, "cn_ad")
    with pytest.raises(ValueError, match=r"synthetic rows made from non-training subject\(s\) \['s7'\]"):
        mixed_training_items(write(real + [{**fake, "source_subject": "s7"}]), folder, "cn_ad")
    with pytest.raises(ValueError, match=r"diagnosis \['MCI'\] is not a class of task cn_ad"):
        mixed_training_items(write(real + [{**fake, "diagnosis": "MCI"}]), folder, "cn_ad")


def test_mixed_training_items_refuse_a_synthetic_row_outside_training(folder):
    """check_synthetic_only_in_training runs where the bundles read a mixed table: a synthetic row labelled
    val in the mixed table, or a synthetic row in the dataset's val / test rows, stops the run."""
    from pipeline.data.task_tables import mixed_training_items

    real = [
        {
            "image": f"/data/s{i}.nii.gz",
            "diagnosis": d,
            "subject": f"s{i}",
            "synthetic": False,
            "source_subject": "",
            "split": "train",
        }
        for i, d in ((0, "CN"), (2, "AD"))
    ]
    fake = {
        "image": "/syn/a.nii.gz",
        "diagnosis": "AD",
        "subject": "synthetic-x-0",
        "synthetic": True,
        "source_subject": "s0",
        "split": "val",
    }
    pd.DataFrame(real + [fake]).to_csv(folder / "mixed.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match=r"1 synthetic row\(s\) in the val table"):
        mixed_training_items(folder / "mixed.tsv", folder, "cn_ad")
    pd.DataFrame(real).to_csv(folder / "mixed.tsv", sep="\t", index=False)
    table = pd.read_csv(folder / "preprocessed.tsv", sep="\t").assign(synthetic=lambda t: t["subject"] == "s6")
    table.to_csv(folder / "preprocessed.tsv", sep="\t", index=False)  # s6 is a test subject
    with pytest.raises(ValueError, match=r"synthetic row\(s\) in the test table"):
        mixed_training_items(folder / "mixed.tsv", folder, "cn_ad")


def test_class_weights_come_from_the_real_training_rows():
    """The ad_classification bundle's loss weights: 6 CN and 2 AD real rows plus 4 synthetic AD rows weigh
    AD by the real balance (8 / 2), not the mixed one (12 / 6), so added AD images change what the model sees."""
    from monai.bundle import ConfigParser

    from pipeline.bundles import bundle_dir
    from pipeline.data.task_tables import class_weights

    items = (
        [{"label": 0, "synthetic": False}] * 6
        + [{"label": 1, "synthetic": False}] * 2
        + [{"label": 1, "synthetic": True}] * 4
    )
    assert class_weights(items, 2).tolist() == pytest.approx([8 / 6, 8 / 2])
    assert class_weights(items, 2, rows="all").tolist() == pytest.approx([12 / 6, 12 / 6])
    synthetic_only = [{**i, "synthetic": True} for i in items]  # no real balance to keep: every row counts
    assert class_weights(synthetic_only, 2).tolist() == pytest.approx([12 / 6, 12 / 6])
    parser = ConfigParser()
    parser.read_config(str(bundle_dir("ad_classification") / "configs" / "train.yaml"))
    parser["train_items"] = items
    assert parser.get_parsed_content("class_weights").tolist() == pytest.approx([8 / 6, 8 / 2])
