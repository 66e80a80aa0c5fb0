"""Pipeline-level YAML configuration: load, override from the command line, check before work.

A bad key fails at once, naming the key and the allowed ones, so a long run never dies late on
a typo.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = ["ConfigError", "load_config", "apply_overrides", "check_keys"]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class ConfigError(ValueError):
    """A configuration key or value is not allowed."""


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"configuration file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(config: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a copy of ``config``."""
    out = copy.deepcopy(dict(config))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. phantom.seed=3")
        key, value = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                sections = sorted(k for k, v in node.items() if isinstance(v, dict))
                raise ConfigError(f"override {item!r}: '{part}' is not a section (sections: {sections})")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"override {item!r}: unknown key '{key}' (allowed here: {sorted(node)})")
        node[parts[-1]] = yaml.safe_load(value)
    return out


def check_keys(section: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """Raise :class:`ConfigError` if ``section`` is not a mapping or has keys outside ``allowed``."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where}: expected a mapping with keys {sorted(allowed)}, got {section!r}")
    unknown = set(section) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
