"""The model-zoo checks themselves (tests/bundles/model_zoo.py), on the shipped bundle folders: they pass
on what we ship and fail on the faults they exist to catch."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.bundles.model_zoo import BUNDLES, check_files, check_formatting, check_version

NAMES = (
    "ad_classification",
    "brain_age",
    "cyclegan_harmonization",
    "many_to_one_harmonization",
    "synthetic_augmentation",
)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_bundles_pass_the_checks_that_need_no_training(name):
    folder = BUNDLES / name
    assert check_files(folder) == ["required file models/model.pt is missing"]  # written by training, never shipped
    assert check_version(name, folder) == []
    assert check_formatting(folder) == []


def test_a_change_without_a_new_version_is_caught(tmp_path):
    copy = tmp_path / "brain_age"
    shutil.copytree(BUNDLES / "brain_age", copy)
    config = copy / "configs" / "train.yaml"
    config.write_text(config.read_text().replace("epochs: 30", "epochs: 31"))
    problems = check_version("brain_age", copy, source=copy)
    assert len(problems) == 1 and "changed without a new version" in problems[0]
    meta = json.loads((copy / "configs" / "metadata.json").read_text())
    meta["version"] = "9.9.9"  # bumped, but no changelog entry
    (copy / "configs" / "metadata.json").write_text(json.dumps(meta, indent=4) + "\n")
    assert any("has no changelog entry" in p for p in check_version("brain_age", copy, source=copy))


def test_formatting_faults_are_caught(tmp_path):
    copy = tmp_path / "brain_age"
    shutil.copytree(BUNDLES / "brain_age", copy)
    meta = copy / "configs" / "metadata.json"
    meta.write_text(json.dumps(json.loads(meta.read_text()), indent=2))  # 2 spaces, no final newline
    (copy / "configs" / "train.yaml").write_text((copy / "configs" / "train.yaml").read_text() + "seed: 1\n")
    (copy / "docs" / "README.md").write_text((copy / "docs" / "README.md").read_text().replace("\n", "  \n", 1))
    problems = check_formatting(copy)
    assert any(p.startswith("configs/metadata.json: not formatted") for p in problems)
    assert any(p.startswith("configs/metadata.json: must end") for p in problems)
    assert any(p.startswith("configs/train.yaml:") and "seed" in p for p in problems)  # a duplicate key
    assert any(p == "docs/README.md: trailing whitespace" for p in problems)
    (copy / "docs" / "README.md").write_text("# A bundle\n\n## Model Overview\n\nNothing else.\n")
    assert "docs/README.md has no 'Performance' section" in check_files(copy)


def test_command_line_booleans_are_read_as_booleans():
    """`python -m monai.bundle run ... --resume false` hands the config the string "false" (Fire reads only
    True/False as bools): every boolean switch of our configs goes through pipeline.bundles.flag."""
    import subprocess
    import sys

    from monai.bundle import ConfigParser

    from pipeline.bundles import flag

    fire = subprocess.run(
        [sys.executable, "-c", "import fire; fire.Fire(lambda resume: print(repr(resume)))", "--resume", "false"],
        capture_output=True,
        text=True,
    )
    assert fire.stdout.strip() == "'false'"  # the string a config receives from the command line
    assert [flag(v) for v in (True, "true", "True", "1", 1, "yes")] == [True] * 6
    assert [flag(v) for v in (False, "false", "FALSE", "0", 0, "no", "", None)] == [False] * 8
    with pytest.raises(ValueError, match="expected a boolean"):
        flag("maybe")
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / "ad_classification" / "configs" / "train.yaml"))
    parser.update({"augment": "false", "class_weighted": "false", "class_weight_rows": "real"})
    assert parser.get_parsed_content("augment_transforms") == []  # "false" no longer switches augmentation on
    for name in NAMES:  # no raw boolean switch is used without flag()
        for config in (BUNDLES / name / "configs").glob("*.yaml"):
            text = config.read_text()
            for switch in ("amp", "channels_last", "resume", "age_matched", "augment", "gradcam", "class_weighted"):
                assert f'"@{switch}"' not in text and f"if @{switch} " not in text, (config, switch)
