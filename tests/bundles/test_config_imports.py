"""Every ``$pipeline.X...`` expression of a bundle config can be evaluated by ``python -m monai.bundle``: the config
imports its module. (In a test process the module is often imported already, which hides a missing import.)"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "bundles").glob("*/configs/*.yaml"))


def _module_of(dotted: str) -> str:
    """The longest prefix of ``dotted`` that is an importable module."""
    parts = dotted.split(".")
    for k in range(2, len(parts) + 1):
        name = ".".join(parts[:k])
        if importlib.util.find_spec(name) is None:
            return ".".join(parts[: k - 1])
        if not hasattr(importlib.import_module(name), "__path__"):  # a module, not a package: what follows are names
            return name
    return dotted


def missing_imports(text: str) -> list[str]:
    """Modules that ``$`` expressions of a config use without the config importing them."""
    config = yaml.safe_load(text) or {}
    imports = {line.removeprefix("$import ").strip() for line in config.get("imports", [])}
    used = {_module_of(ref) for ref in re.findall(r"\$[^\n]*?\b(pipeline(?:\.\w+)+)", text)}
    return sorted(m for m in used if m != "pipeline" and m not in imports)


@pytest.mark.parametrize("config", [c for c in CONFIGS if "imports" in yaml.safe_load(c.read_text())], ids=str)
def test_every_expression_module_is_imported(config):
    assert missing_imports(config.read_text()) == []


def test_a_missing_import_is_found():
    text = "imports:\n- $import pipeline\npair_data: $pipeline.data.site_pair_data(@dataset_dir)\n"
    assert missing_imports(text) == ["pipeline.data"]
    assert missing_imports(text.replace("- $import pipeline\n", "- $import pipeline\n- $import pipeline.data\n")) == []
