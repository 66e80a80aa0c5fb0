"""The augmentation policy builds exactly the requested counts and never lets synthetic rows leave training."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.augment import AugmentationPolicy, ClassPolicy, build_training_table, check_synthetic_only_in_training


def _real(n_cn: int = 20, n_ad: int = 10) -> pd.DataFrame:
    rows = [
        {"subject": f"cn{i:02d}", "diagnosis": "CN", "image": f"cn{i}.nii.gz", "split": "train"} for i in range(n_cn)
    ]
    rows += [
        {"subject": f"ad{i:02d}", "diagnosis": "AD", "image": f"ad{i}.nii.gz", "split": "train"} for i in range(n_ad)
    ]
    return pd.DataFrame(rows)


def _synthetic(name: str, n: int, generator: str = "translation", sources: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image": [f"syn_{name}_{i}.nii.gz" for i in range(n)],
            "diagnosis": name,
            "generator": generator,
            "checkpoint_sha256": "ab" * 32,
            "source_subject": sources or [""] * n,
            "seed": range(n),
        }
    )


def test_exact_counts_per_class_and_selective_augmentation():
    policy = AugmentationPolicy.from_dict(
        {"AD": {"real_fraction": 0.8, "synthetic_fraction": 0.5, "generator": "translation"}}
    )
    table = build_training_table(_real(), _synthetic("AD", 12), policy, seed=3)
    counts = table.groupby(["diagnosis", "synthetic"]).size().to_dict()
    assert counts == {("AD", False): 8, ("AD", True): 5, ("CN", False): 20}  # CN untouched: selective
    synthetic = table[table["synthetic"]]
    assert (synthetic["split"] == "train").all() and synthetic["subject"].is_unique
    assert set(synthetic["image"]) <= set(_synthetic("AD", 12)["image"]) and synthetic["image"].is_unique


def test_oversampling_adds_copies_of_kept_real_images_only():
    policy = AugmentationPolicy.from_dict({"AD": {"real_fraction": 0.5, "oversample_fraction": 0.7}})
    table = build_training_table(_real(), None, policy, seed=2)
    ad = table[table["diagnosis"] == "AD"]
    assert len(ad) == 5 + 7 and not ad["synthetic"].any()  # 7 extra rows for 10 AD subjects
    assert ad["subject"].nunique() == 5  # copies of the 5 kept subjects, nobody new
    assert (table["diagnosis"] == "CN").sum() == 20


def test_synthetic_only_training_has_no_real_row_of_the_class():
    policy = AugmentationPolicy.from_dict(
        {name: {"real_fraction": 0, "synthetic_fraction": 1.0, "generator": "gan"} for name in ("CN", "AD")}
    )
    pool = pd.concat([_synthetic("CN", 20, "gan"), _synthetic("AD", 10, "gan")])
    table = build_training_table(_real(), pool, policy, seed=0)
    assert table["synthetic"].all() and table.groupby("diagnosis").size().to_dict() == {"AD": 10, "CN": 20}


def test_a_new_seed_samples_other_real_subjects_with_the_same_counts():
    policy = AugmentationPolicy({"CN": ClassPolicy(real_fraction=0.5)})
    a, b = (build_training_table(_real(), None, policy, seed=s) for s in (0, 1))
    assert (a["diagnosis"] == "CN").sum() == (b["diagnosis"] == "CN").sum() == 10
    assert set(a["subject"]) != set(b["subject"])
    assert build_training_table(_real(), None, policy, seed=0).equals(a)  # repeatable


def test_refusals_name_what_is_wrong():
    with pytest.raises(ValueError, match=r"policy.AD: real_fraction \(X_i\) must be in \[0, 1\], got 1.5"):
        AugmentationPolicy.from_dict({"AD": {"real_fraction": 1.5}})
    with pytest.raises(ValueError, match="policy.CN: real_fraction 0 and synthetic_fraction 0 leave the class without"):
        AugmentationPolicy.from_dict({"CN": {"real_fraction": 0}})
    with pytest.raises(ValueError, match=r"policy.AD: unknown key\(s\) \['y'\]"):
        AugmentationPolicy.from_dict({"AD": {"y": 0.2}})
    policy = AugmentationPolicy({"AD": ClassPolicy(synthetic_fraction=0.5, generator="translation")})
    with pytest.raises(ValueError, match="asks for 5 synthetic images from generator 'translation', only 2 exist"):
        build_training_table(_real(), _synthetic("AD", 2), policy)
    with pytest.raises(ValueError, match=r"translated from non-training subject\(s\) \['test07'\]"):
        build_training_table(_real(), _synthetic("AD", 6, sources=["cn00"] * 5 + ["test07"]), policy)
    held = _real().assign(split=["train"] * 29 + ["test"])
    with pytest.raises(ValueError, match="subject 'ad09' is in split 'test'"):
        build_training_table(held, None, AugmentationPolicy())


def test_synthetic_rows_are_refused_outside_training():
    policy = AugmentationPolicy({"AD": ClassPolicy(synthetic_fraction=0.2, generator="translation")})
    train = build_training_table(_real(), _synthetic("AD", 5), policy)
    check_synthetic_only_in_training({"train": train, "val": _real().assign(synthetic=False)})
    with pytest.raises(ValueError, match=r"2 synthetic row\(s\) in the test table"):
        check_synthetic_only_in_training({"train": train, "test": train[train["synthetic"]]})
