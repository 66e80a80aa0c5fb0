"""The package's import rules (docs/architecture.md): a module imports only from its own layer or below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"

#: layer of every top-level module or package of ``pipeline``; the table in docs/architecture.md
LAYERS = {
    # 0: foundations, no pipeline knowledge
    "__init__": 0,
    "atomic": 0,
    "table_paths": 0,
    "versions": 0,
    "run": 0,
    "mni": 0,
    "config": 0,
    "figures": 0,
    "metrics": 0,
    # 1: data and building blocks
    "cohort": 1,
    "phantom": 1,
    "nets": 1,
    "slices": 1,
    "transforms": 1,
    "parallel": 1,
    # 2: preprocessing, trainers, measures
    "preprocess": 2,
    "engines": 2,
    "evaluate": 2,
    # 3: the stages and the data they train on
    "harmonize": 3,
    "harmonize_workflow": 3,
    "augment": 3,
    "data": 3,
    "bundles": 3,
    "downstream": 3,
    # 4: experiments and performance scripts, over the stages
    "experiments": 4,
    "performance": 4,
    # 5: the report reads what stages and experiments wrote
    "report": 5,
    # 6: entry points
    "demo_config": 6,
    "demo": 6,
    "cli": 6,
}


def _top(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _imported_tops(path: Path) -> set[str]:
    """The top-level ``pipeline`` modules one file imports (absolute imports; relative ones stay inside)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module == "pipeline":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("pipeline."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("pipeline."))
    return {"__init__" if name == "__version__" else name for name in found}


def test_every_module_has_a_layer():
    tops = {_top(p) for p in PACKAGE.rglob("*.py")}
    assert tops - set(LAYERS) == set(), "add the new module to LAYERS here and to docs/architecture.md"
    assert set(LAYERS) - tops == set(), "a module in LAYERS no longer exists"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_module_imports_a_higher_layer(path):
    layer = LAYERS[_top(path)]
    upward = {name: LAYERS[name] for name in _imported_tops(path) - {_top(path)} if LAYERS[name] > layer}
    assert upward == {}, f"{path.name} (layer {layer}) imports higher layers {upward}"


def test_the_rule_can_fail(tmp_path):
    """The checker sees upward imports in every form (a metrics module importing the report and the CLI)."""
    probe = tmp_path / "regression.py"
    probe.write_text(
        "from pipeline.report.collect import collect_sections\nimport pipeline.cli\nfrom pipeline import demo\n"
    )
    assert _imported_tops(probe) == {"report", "cli", "demo"}
    assert all(LAYERS[name] > LAYERS["metrics"] for name in _imported_tops(probe))
