"""The BIDS and manifest loaders agree on the same cohort (the phantom)."""

from __future__ import annotations

import pandas as pd

from pipeline.cohort import load_cohort, write_cohort
from tests.conftest import SMALL_SPEC


def test_bids_and_manifest_agree(small_phantom, tmp_path):
    bids = load_cohort(small_phantom.root)
    expected_images = SMALL_SPEC.subjects_per_site * len(SMALL_SPEC.sites) + SMALL_SPEC.traveling * len(
        SMALL_SPEC.sites
    )
    assert len(bids.table) == expected_images and len(bids.excluded) == 0

    truth = small_phantom.truth
    manifest = pd.DataFrame(
        {
            "subject": "sub-" + truth["subject"],
            "session": truth["session"].map(lambda s: f"ses-{s}" if s else ""),
            "site": truth["site"],
            "age": truth["age"],
            "sex": truth["sex"].map({"F": "female", "M": "male"}),
            "diagnosis": truth["diagnosis"].map({"CN": "NC", "MCI": "MCI", "AD": "AD"}),
            "path": "bids/" + truth["path"],  # relative to the manifest's folder
        }
    )
    (tmp_path / "bids").symlink_to(small_phantom.root)
    path = tmp_path / "manifest.csv"
    manifest.to_csv(path, index=False)
    from_manifest = load_cohort(path)
    cols = ["subject", "session", "site", "age", "sex", "diagnosis"]
    pd.testing.assert_frame_equal(bids.table[cols], from_manifest.table[cols])
    assert [p.split("/bids/")[-1] for p in from_manifest.table["path"]] == [
        p.split(str(small_phantom.root) + "/")[-1] for p in bids.table["path"]
    ]

    # the canonical table written by write_cohort reads back unchanged
    written = write_cohort(bids, tmp_path / "cohort.tsv")
    pd.testing.assert_frame_equal(load_cohort(written).table[cols], bids.table[cols])
