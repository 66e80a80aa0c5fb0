"""The volume baseline: fitted on training rows only, reads and joins volume tables, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate.volume_baseline import (
    attach_volumes,
    find_phantom_volumes,
    read_volume_table,
    volume_classifier,
    volume_regressor,
)


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 2
    return pd.DataFrame(
        {
            "subject": [f"s{seed}{i:03d}" for i in range(n)],
            "session": "",
            "label": label,
            "ventricles_ml": 20 * np.exp(0.7 * label + rng.normal(0, 0.1, n)),
            "hippocampus_ml": 7 * np.exp(-0.3 * label + rng.normal(0, 0.1, n)),
        }
    )


def test_classifier_separates_classes_that_volumes_separate():
    train, test = _table(40, 0), _table(20, 1)
    probabilities = volume_classifier(train, test, n_classes=2)
    assert probabilities.shape == (20, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert (probabilities.argmax(axis=1) == test["label"]).all()


def test_classes_absent_from_training_get_zero_probability():
    train = _table(40, 0)
    train["label"] = train["label"] * 2  # classes 0 and 2 of 3
    probabilities = volume_classifier(train, _table(10, 1), n_classes=3)
    assert (probabilities[:, 1] == 0).all() and np.allclose(probabilities.sum(axis=1), 1.0)


def test_regressor_recovers_a_linear_relation_in_log_volume():
    train, test = _table(50, 0), _table(10, 1)
    train["label"] = 60 + 10 * np.log(train["ventricles_ml"])
    expected = 60 + 10 * np.log(test["ventricles_ml"])
    np.testing.assert_allclose(volume_regressor(train, test, columns=("ventricles_ml",)), expected, rtol=1e-6)


def test_read_and_attach_volumes(tmp_path):
    path = tmp_path / "volumes.tsv"
    _table(4, 0).drop(columns=["session", "label"]).to_csv(path, sep="\t", index=False)
    volumes = read_volume_table(path)
    assert list(volumes.columns) == ["subject", "session", "ventricles_ml", "hippocampus_ml"]
    rows = pd.DataFrame({"subject": ["s0002", "s0000"], "session": ["", ""], "label": [0, 0]})
    joined = attach_volumes(rows, volumes)
    np.testing.assert_allclose(
        joined["ventricles_ml"], volumes.set_index("subject").loc[["s0002", "s0000"], "ventricles_ml"]
    )
    with pytest.raises(ValueError, match="no volumes for 1 image.*'nobody'"):
        attach_volumes(pd.DataFrame({"subject": ["nobody"], "session": [""]}), volumes)


def test_read_errors_name_the_file_and_column(tmp_path):
    path = tmp_path / "volumes.tsv"
    pd.DataFrame({"subject": ["a"], "ventricles_ml": [10.0]}).to_csv(path, sep="\t", index=False)
    with pytest.raises(ValueError, match=r"volumes.tsv: missing column\(s\) \['hippocampus_ml'\]"):
        read_volume_table(path)
    pd.DataFrame({"subject": ["a"], "ventricles_ml": [-1.0], "hippocampus_ml": [3.0]}).to_csv(
        path, sep="\t", index=False
    )
    with pytest.raises(
        ValueError, match="column 'ventricles_ml' must hold positive volumes; bad for subjects \\['a'\\]"
    ):
        read_volume_table(path)


def test_finds_the_phantom_truth_above_the_sources(tmp_path):
    truth = tmp_path / "bids" / "derivatives" / "phantom" / "truth.tsv"
    truth.parent.mkdir(parents=True)
    truth.write_text("subject\n")
    table = pd.DataFrame({"source": [str(tmp_path / "bids" / "sub-a" / "anat" / "sub-a_T1w.nii.gz")]})
    assert find_phantom_volumes(table) == truth
    assert find_phantom_volumes(pd.DataFrame({"source": ["/elsewhere/sub-a_T1w.nii.gz"]})) is None
