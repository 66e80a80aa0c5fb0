"""Many-to-one training data: every source site against the reference, traveling subjects never trained on,
the other sites unseen."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.data import many_to_one_data


@pytest.fixture
def cohort(tmp_path):
    """A preprocessed table of 4 sites x 3 single-site subjects, a traveling subject scanned at ref and a, one at
    a and u (not at the reference), and a test-split subject per site."""
    rows, splits = [], []
    for site in ("ref", "a", "b", "u"):
        for i in range(3):
            subject = f"{site}{i}"
            rows.append({"subject": subject, "session": "", "site": site, "age": 60 + i})
            splits.append({"subject": subject, "split": "test" if i == 2 else "train"})
    for subject, sites in (("trav1", ("ref", "a")), ("trav2", ("a", "u"))):
        for site in sites:
            rows.append({"subject": subject, "session": site, "site": site, "age": 70})
        splits.append({"subject": subject, "split": "train"})
    table = pd.DataFrame(rows).assign(status="ok")
    table["image_cube"] = [f"/data/{r.subject}_{r.site}.nii.gz" for r in table.itertuples()]
    table.to_csv(tmp_path / "preprocessed.tsv", sep="\t", index=False)
    pd.DataFrame(splits).to_csv(tmp_path / "splits.tsv", sep="\t", index=False)
    return tmp_path


def test_every_source_site_trains_against_the_reference_without_traveling_or_test_subjects(cohort):
    data = many_to_one_data(cohort, "ref", ["a", "b"])
    assert data.source_sites == ["a", "b"] and data.unseen_sites == ["u"]
    assert {item["subject"] for item in data.pairs["a"].train_x} == {"a0", "a1"}  # not trav1, trav2 or a2 (test)
    assert {item["subject"] for item in data.pairs["b"].train_y} == {"ref0", "ref1"}
    assert "to ref (2 images): a 2, b 2 training images; unseen sites: u" == data.summary()


def test_all_other_sites_by_default_and_clear_refusals(cohort):
    assert many_to_one_data(cohort, "ref").source_sites == ["a", "b", "u"]
    with pytest.raises(ValueError, match="reference_site 'x' is not a site"):
        many_to_one_data(cohort, "x")
    with pytest.raises(ValueError, match=r"source_sites \['ref'\]: expected one or more sites"):
        many_to_one_data(cohort, "ref", ["ref"])
