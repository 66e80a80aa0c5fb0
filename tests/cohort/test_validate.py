"""Every validation error of a manifest, with its message; aliases; bad images excluded, not fatal."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pipeline.cohort import CohortValidationError, load_cohort, load_manifest


def _image(path: Path, shape=(8, 9, 10)) -> str:
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), path)
    return str(path)


@pytest.fixture()
def images(tmp_path: Path) -> dict[str, str]:
    bad = tmp_path / "corrupt.nii.gz"
    bad.write_bytes(b"this is not a nifti file")
    return {
        "a": _image(tmp_path / "a.nii.gz"),
        "b": _image(tmp_path / "b.nii.gz"),
        "c": _image(tmp_path / "c.nii.gz"),
        "4d": _image(tmp_path / "four_d.nii.gz", (8, 9, 10, 3)),
        "corrupt": str(bad),
        "missing": str(tmp_path / "missing.nii.gz"),
    }


def _manifest(tmp_path: Path, rows: list[dict], name: str = "manifest.tsv") -> Path:
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, sep="\t" if name.endswith(".tsv") else ",", index=False)
    return path


def row(subject: str, path: str, **kw) -> dict:
    base = {"subject": subject, "session": "", "site": "adni", "age": 70, "sex": "F", "diagnosis": "CN", "path": path}
    base.update(kw)
    return base


def test_valid_manifest_with_aliases(tmp_path, images):
    path = _manifest(
        tmp_path,
        [
            row("sub-01", images["a"], diagnosis="NC", sex="female"),
            row("02", images["b"], diagnosis="Dementia", sex="male"),
            row("03", Path(images["c"]).name, diagnosis="HC", sex="m", age="64.5"),  # relative path
        ],
    )
    cohort = load_cohort(path)
    t = cohort.table
    assert list(t["subject"]) == ["01", "02", "03"]  # sub- prefix stripped
    assert list(t["diagnosis"]) == ["CN", "AD", "CN"]
    assert list(t["sex"]) == ["F", "M", "M"]
    assert t["age"].tolist() == [70.0, 70.0, 64.5]
    assert t.loc[2, "path"] == str(Path(images["c"]).resolve())
    assert len(cohort.excluded) == 0


def test_all_table_problems_reported_at_once(tmp_path, images):
    path = _manifest(
        tmp_path,
        [
            row("01", images["a"]),
            row("01", images["b"]),  # duplicate (subject, session) -> line 3
            row("02", images["c"], age="old"),  # line 4
            row("03", images["a"], age=150),  # line 5
            row("04", images["a"], sex="X"),  # line 6
            row("05", images["a"], diagnosis="FTD"),  # line 7
            row("06", images["a"], site=""),  # line 8
        ],
    )
    with pytest.raises(CohortValidationError) as err:
        load_manifest(path)
    problems = err.value.problems
    found = {(p.line, p.column) for p in problems}
    assert found == {(3, "subject"), (4, "age"), (5, "age"), (6, "sex"), (7, "diagnosis"), (8, "site")}
    message = str(err.value)
    assert message.startswith("cohort table has 6 problem(s)")
    assert f"{path}, line 4, column 'age': found 'old'; expected a number of years" in message
    assert "line 5, column 'age': found '150'; expected an age within 0-120 years" in message
    assert "line 6, column 'sex': found 'X'; expected one of M, F" in message
    assert "line 7, column 'diagnosis': found 'FTD'; expected one of CN, MCI, AD" in message
    assert "line 3, column 'subject': found subject '01' again (first on line 2)" in message


def test_missing_columns_named(tmp_path, images):
    path = _manifest(tmp_path, [{"subject": "01", "path": images["a"], "age": 70}], name="m.csv")
    with pytest.raises(CohortValidationError) as err:
        load_manifest(path)
    missing = sorted(p.column for p in err.value.problems if p.line is None)
    assert missing == ["diagnosis", "sex", "site"]
    assert "column 'site': found no such column; expected a column 'site'" in str(err.value)


@pytest.mark.parametrize(
    "key, reason",
    [
        ("missing", "file does not exist"),
        ("corrupt", "not a readable NIfTI image"),
        ("4d", "image has shape (8, 9, 10, 3); expected a 3D volume"),
    ],
)
def test_bad_images_excluded_or_raised(tmp_path, images, key, reason):
    path = _manifest(tmp_path, [row("01", images["a"]), row("02", images[key]), row("03", images["b"])])
    cohort = load_cohort(path)  # default: a bad image never stops the cohort
    assert list(cohort.table["subject"]) == ["01", "03"]
    assert list(cohort.excluded["subject"]) == ["02"]
    assert reason in cohort.excluded.loc[0, "reason"]
    with pytest.raises(CohortValidationError) as err:
        load_cohort(path, bad_files="raise")
    (problem,) = err.value.problems
    assert (problem.line, problem.column) == (3, "path") and reason in str(problem)


def test_unknown_source_kind(tmp_path):
    bad = tmp_path / "cohort.xlsx"
    bad.write_text("x")
    with pytest.raises(
        CohortValidationError, match=r"found a '.xlsx' file; expected a BIDS folder or a .csv / .tsv manifest"
    ):
        load_cohort(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cohort(tmp_path / "nope")


def _bids(tmp_path: Path, participants: list[dict], images: dict[str, list[str]]) -> Path:
    root = tmp_path / "bids"
    root.mkdir()
    pd.DataFrame(participants).to_csv(root / "participants.tsv", sep="\t", index=False)
    for sub, sessions in images.items():
        for ses in sessions:
            anat = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "anat"
            anat.mkdir(parents=True)
            stem = f"sub-{sub}" + (f"_ses-{ses}" if ses else "")
            _image(anat / f"{stem}_T1w.nii.gz")
    return root


def test_bids_problems(tmp_path):
    participants = [
        {"participant_id": "sub-01", "age": 70, "sex": "F", "diagnosis": "CN", "site": "a"},
        {"participant_id": "sub-02", "age": 71, "sex": "M", "diagnosis": "LMCI", "site": "a"},  # no image
    ]
    root = _bids(tmp_path, participants, {"01": [""], "03": [""]})  # sub-03 has no participants row
    with pytest.raises(CohortValidationError) as err:
        load_cohort(root)
    text = str(err.value)
    assert "column 'participant_id': found no row for 'sub-03'" in text
    assert "line 3, column 'participant_id': found 'sub-02' has no T1w image" in text


def test_bids_sessions_override_site(tmp_path):
    participants = [{"participant_id": "sub-t1", "age": 60, "sex": "F", "diagnosis": "CN", "site": "n/a"}]
    root = _bids(tmp_path, participants, {"t1": ["x", "y"]})
    pd.DataFrame({"session_id": ["ses-x", "ses-y"], "site": ["siteX", "siteY"]}).to_csv(
        root / "sub-t1" / "sub-t1_sessions.tsv", sep="\t", index=False
    )
    table = load_cohort(root).table
    assert list(zip(table["session"], table["site"])) == [("x", "siteX"), ("y", "siteY")]
    (root / "sub-t1" / "sub-t1_sessions.tsv").unlink()
    with pytest.raises(CohortValidationError, match=r"column 'site': found an empty value \(n/a\)"):
        load_cohort(root)
