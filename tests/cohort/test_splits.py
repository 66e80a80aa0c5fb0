"""Subject-level splits: disjoint, exact sizes, stratified, seeded; the leakage check raises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.cohort import (
    LeakageError,
    attach_splits,
    check_no_leakage,
    kfold_subjects,
    read_splits,
    split_subjects,
    write_splits,
)


def _table(n_per_site: int = 40, seed: int = 0) -> pd.DataFrame:
    """Images of subjects at 3 sites with site-specific diagnosis mixes; every 10th subject has 2 sessions."""
    rng = np.random.default_rng(seed)
    rows = []
    for site, dx_p in (("a", [0.5, 0.2, 0.3]), ("b", [0.8, 0.1, 0.1]), ("c", [0.3, 0.3, 0.4])):
        for i in range(n_per_site):
            subject = f"{site}{i:03d}"
            dx = rng.choice(["CN", "MCI", "AD"], p=dx_p)
            age = float(rng.normal(70, 8))
            for ses in ["1", "2"] if i % 10 == 0 else [""]:
                rows.append({"subject": subject, "session": ses, "site": site, "age": age, "sex": "F", "diagnosis": dx})
    return pd.DataFrame(rows)


def test_split_is_by_subject_exact_and_complete():
    table = _table()
    splits = split_subjects(table, (0.7, 0.15, 0.15), seed=1)
    assert sorted(splits["subject"]) == sorted(table["subject"].unique())
    assert splits["subject"].is_unique
    counts = splits["split"].value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (84, 18, 18)  # 120 subjects
    images = attach_splits(table, splits)
    check_no_leakage(images)  # both sessions of a subject always share a split
    assert images.groupby("subject")["split"].nunique().max() == 1


def test_split_is_stratified_by_site_and_diagnosis():
    table = _table(n_per_site=60)
    splits = split_subjects(table, (0.6, 0.2, 0.2), seed=3)
    subjects = table.drop_duplicates("subject").merge(splits, on="subject")
    for split, frac in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        part = subjects[subjects["split"] == split]
        for site in "abc":  # every site contributes its share to every split (60 subjects per site)
            assert abs((part["site"] == site).sum() - 60 * frac) <= 2
        for dx in ("CN", "AD"):
            expected = (subjects["diagnosis"] == dx).sum() * frac
            assert abs((part["diagnosis"] == dx).sum() - expected) <= 3


def test_split_seeded():
    table = _table()
    a = split_subjects(table, seed=0)
    pd.testing.assert_frame_equal(a, split_subjects(table, seed=0))
    assert not a.equals(split_subjects(table, seed=1))


def test_split_handles_tiny_strata_and_two_way():
    table = _table(n_per_site=3)
    splits = split_subjects(table, (0.5, 0.5), seed=0)
    assert set(splits["split"]) == {"train", "test"}
    assert splits["split"].value_counts().tolist() == [5, 4] or splits["split"].value_counts().tolist() == [4, 5]


def test_bad_fractions_and_strata():
    with pytest.raises(ValueError, match="summing to 1"):
        split_subjects(_table(), (0.7, 0.2, 0.2))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['scanner'\]"):
        split_subjects(_table(), stratify=("scanner",))


def test_kfold_each_subject_once_balanced():
    table = _table()
    folds = kfold_subjects(table, k=5, seed=0)
    assert folds["subject"].is_unique and len(folds) == 120
    assert folds["fold"].value_counts().tolist() == [24] * 5
    merged = table.drop_duplicates("subject").merge(folds, on="subject")
    for site in "abc":  # 40 subjects per site -> 8 per fold
        assert merged[merged["site"] == site]["fold"].value_counts().between(7, 9).all()


def test_leakage_check_raises_on_image_level_split():
    table = _table()
    leaky = table.assign(split=np.where(np.arange(len(table)) % 2 == 0, "train", "test"))  # split by image
    with pytest.raises(LeakageError, match=r"subject\(s\) appear in more than one split: a000 in \['test', 'train'\]"):
        check_no_leakage(leaky)


def test_splits_roundtrip(tmp_path):
    table = _table()
    splits = split_subjects(table, seed=0)
    path = write_splits(splits, tmp_path / "splits.tsv")
    pd.testing.assert_frame_equal(read_splits(path), splits)
    bad = pd.concat([splits, splits.assign(split="test").head(1)])
    with pytest.raises(LeakageError):
        write_splits(bad, tmp_path / "bad.tsv")
    assert not (tmp_path / "bad.tsv").exists()


def test_traveling_subjects_can_be_held_out_in_test():
    """traveling="test": every subject scanned at more than one site is in test, the others are split by the
    fractions exactly as they would be without the traveling subjects; the default spreads them."""
    table = _table()
    travelers = [
        {"subject": f"trav{i:02d}", "session": site, "site": site, "age": 70.0, "sex": "M", "diagnosis": "CN"}
        for i in range(9)
        for site in ("a", "b", "c")
    ]
    both = pd.concat([table, pd.DataFrame(travelers)], ignore_index=True)
    held = split_subjects(both, (0.7, 0.15, 0.15), seed=1, traveling="test").set_index("subject")["split"]
    assert (held[[f"trav{i:02d}" for i in range(9)]] == "test").all()
    rest = split_subjects(table, (0.7, 0.15, 0.15), seed=1).set_index("subject")["split"]
    assert held.drop([f"trav{i:02d}" for i in range(9)]).sort_index().equals(rest.sort_index())
    spread = split_subjects(both, (0.7, 0.15, 0.15), seed=1).set_index("subject")["split"]
    assert set(spread[[f"trav{i:02d}" for i in range(9)]]) != {"test"}
    with pytest.raises(ValueError, match="traveling must be one of"):
        split_subjects(both, (0.7, 0.3), traveling="val")
