"""Running the repository's bundles: MONAI's config-security warning is silenced for the project's own configs only."""

from __future__ import annotations

import shutil
import warnings

import pytest

from pipeline.bundles import BUNDLES_DIR, _trusted_config_files, run_bundle

CONFIG_WARNING = "parsing config_file"


@pytest.fixture
def parse_only(monkeypatch):
    """MONAI's ConfigWorkflow reads and parses the config but runs none of its expressions (no training)."""
    from monai.bundle import ConfigWorkflow

    parsed = []
    monkeypatch.setattr(ConfigWorkflow, "initialize", lambda self: self.parser.parse(reset=True))
    monkeypatch.setattr(ConfigWorkflow, "run", lambda self: parsed.append(self.parser.get("bundle_root")))
    monkeypatch.setattr(ConfigWorkflow, "finalize", lambda self: None)
    return parsed


def _config_warnings(run) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return [str(w.message) for w in caught if str(w.message).startswith(CONFIG_WARNING)]


def test_project_configs_parse_without_the_warning_and_others_keep_it(parse_only, tmp_path):
    from monai.bundle import run

    config = BUNDLES_DIR / "brain_age" / "configs" / "inference.yaml"
    meta = str(BUNDLES_DIR / "brain_age" / "configs" / "metadata.json")
    filters = list(warnings.filters)
    assert _config_warnings(lambda: run_bundle("brain_age", "inference", bundle_root=str(tmp_path))) == []
    assert parse_only == [str(tmp_path)]  # the config was read and parsed, with the override
    assert warnings.filters == filters  # the filter lasted one run
    # MONAI emits it for any config: the same file run directly, and a copy outside bundles/ under the same filter
    direct = _config_warnings(lambda: run(config_file=str(config), meta_file=meta, logging_file=False))
    assert len(direct) == 1 and str(config) in direct[0]
    copy = tmp_path / "inference.yaml"
    shutil.copy(config, copy)

    def outside() -> None:
        with _trusted_config_files(str(copy)):
            run(config_file=str(copy), meta_file=meta, logging_file=False)

    assert len(_config_warnings(outside)) == 1
