"""Preprocessing configuration: every parameter of the chain, checked before any work starts.

The YAML (``configs/preprocess.yaml``) has one section per step; keys left out take the defaults
below. Unknown keys and bad values fail at once, naming the key and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.config import CONFIG_DIR, ConfigError, check_keys, load_config

__all__ = [
    "InputConfig",
    "N4Config",
    "SkullStripConfig",
    "RegisterConfig",
    "OutputConfig",
    "PreprocessConfig",
    "QCConfig",
    "load_preprocess_config",
    "DEFAULT_PREPROCESS_CONFIG",
]

DEFAULT_PREPROCESS_CONFIG = CONFIG_DIR / "preprocess.yaml"


@dataclass(frozen=True)
class InputConfig:
    four_d: str = "error"  # "error" or "first" (use the first volume of a 4D image)
    min_voxel_mm: float = 0.2
    max_voxel_mm: float = 8.0
    inside_root: bool = True  # images must lie inside the cohort folder (BIDS root / manifest folder)


@dataclass(frozen=True)
class N4Config:
    enabled: bool = True
    shrink_factor: int | str = "auto"  # "auto": fit at about fit_voxel_mm voxels; or an integer factor
    fit_voxel_mm: float = 6.0
    iterations: tuple[int, ...] = (30, 20, 10)  # per fitting level
    convergence: float = 0.001
    spline_distance_mm: float = 100.0  # B-spline control point spacing
    mask: str = "otsu"  # "otsu" (head mask) or "none"


@dataclass(frozen=True)
class SkullStripConfig:
    method: str = "deepbet"  # "deepbet", "template" or "given"
    threshold: float = 0.5  # deepbet probability threshold
    n_dilate: int = 0  # deepbet: dilate (>0) or erode (<0) the mask by this many voxels
    precision: str = "fp32"  # deepbet: "fp32", or "bf16" (autocast: about 25 % faster on a CPU with bf16 support)
    mask_column: str = "mask"  # "given": the cohort column holding each image's mask path


@dataclass(frozen=True)
class RegisterConfig:
    metric: str = "mattes"  # "mattes" or "GC"
    iterations: tuple[int, ...] = (50, 10)
    shrink_factors: tuple[int, ...] = (2, 1)  # of the 2 mm template grid: 4 mm and 2 mm levels
    smoothing_sigmas: tuple[float, ...] = (1.0, 0.0)
    random_sampling_rate: float = 0.1
    moving_voxel_mm: float = 2.0  # anti-alias and resample the brain to this spacing first; 0 = native
    seed: int = 1


@dataclass(frozen=True)
class OutputConfig:
    cube_size: int = 64
    percentiles: tuple[float, float] | None = (0.5, 99.5)  # clip inside the brain before min-max; None = plain min-max
    qc_png: bool = True


@dataclass(frozen=True)
class QCConfig:
    """The QC gate's thresholds (``pipeline.preprocess.gate`` explains each); not part of the digest, so
    changing one re-judges finished images without redoing them."""

    enabled: bool = True
    mask_volume_ml: tuple[float, float] = (700.0, 2800.0)
    min_registration_similarity: float = 0.4
    min_template_overlap: float = 0.8
    min_fov_coverage: float = 0.97
    min_wm_gm_ratio: float = 1.05


@dataclass(frozen=True)
class PreprocessConfig:
    input: InputConfig = field(default_factory=InputConfig)
    n4: N4Config = field(default_factory=N4Config)
    skullstrip: SkullStripConfig = field(default_factory=SkullStripConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    qc: QCConfig = field(default_factory=QCConfig)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def digest(self) -> str:
        """Hash of every parameter that shapes the outputs (all but the QC gate's): a subject is redone when
        this changes."""
        data = {k: v for k, v in self.to_dict().items() if k != "qc"}
        for (section, key), default in _ADDED_LATER.items():  # at their default, later keys change nothing
            if data[section].get(key) == default:
                del data[section][key]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


_SECTIONS = {
    "input": InputConfig,
    "n4": N4Config,
    "skullstrip": SkullStripConfig,
    "register": RegisterConfig,
    "output": OutputConfig,
    "qc": QCConfig,
}
#: keys added after outputs were first written, with the default that reproduces the earlier behaviour:
#: left out of the digest at that default, so that finished subjects are not redone for a new key
_ADDED_LATER = {("skullstrip", "precision"): "fp32"}
_CHOICES = {
    ("input", "four_d"): ("error", "first"),
    ("n4", "mask"): ("otsu", "none"),
    ("skullstrip", "method"): ("deepbet", "template", "given"),
    ("skullstrip", "precision"): ("fp32", "bf16"),
    ("register", "metric"): ("mattes", "GC"),
}


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    where = f"{section}.{key}"
    if (section, key) in _CHOICES and value not in _CHOICES[(section, key)]:
        raise ConfigError(f"{where}: expected one of {list(_CHOICES[(section, key)])}, got {value!r}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, tuple) or (section, key) == ("output", "percentiles"):
        if value is None and (section, key) == ("output", "percentiles"):
            return None
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, (int, float)) for v in value):
            raise ConfigError(f"{where}: expected a list of numbers, got {value!r}")
        return tuple(value)
    if (section, key) == ("n4", "shrink_factor"):
        return value
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return type(default)(value) if isinstance(default, float) else int(value)
    return value


def _check_values(cfg: PreprocessConfig) -> None:
    r = cfg.register
    if not len(r.iterations) == len(r.shrink_factors) == len(r.smoothing_sigmas):
        raise ConfigError(
            "register: iterations, shrink_factors and smoothing_sigmas must have the same length "
            f"(got {len(r.iterations)}, {len(r.shrink_factors)}, {len(r.smoothing_sigmas)})"
        )
    if not (r.moving_voxel_mm == 0 or 0.5 <= r.moving_voxel_mm <= 8):
        raise ConfigError(f"register.moving_voxel_mm: expected 0 (native) or 0.5-8 mm, got {r.moving_voxel_mm}")
    if not 0 < r.random_sampling_rate <= 1:
        raise ConfigError(f"register.random_sampling_rate: expected a number in (0, 1], got {r.random_sampling_rate}")
    sf = cfg.n4.shrink_factor
    if not (sf == "auto" or (isinstance(sf, int) and not isinstance(sf, bool) and sf >= 1)):
        raise ConfigError(f"n4.shrink_factor: expected 'auto' or an integer >= 1, got {sf!r}")
    if any(i < 1 for i in cfg.n4.iterations):
        raise ConfigError("n4.iterations: expected integers >= 1")
    if not 8 <= cfg.output.cube_size <= 256:
        raise ConfigError(f"output.cube_size: expected 8-256 voxels, got {cfg.output.cube_size}")
    p = cfg.output.percentiles
    if p is not None and not (len(p) == 2 and 0 <= p[0] < p[1] <= 100):
        raise ConfigError(f"output.percentiles: expected [low, high] with 0 <= low < high <= 100, got {list(p)}")
    v = cfg.qc.mask_volume_ml
    if not (len(v) == 2 and 0 <= v[0] < v[1]):
        raise ConfigError(f"qc.mask_volume_ml: expected [low, high] with 0 <= low < high, got {list(v)}")
    if not 0 <= cfg.qc.min_fov_coverage <= 1:
        raise ConfigError(f"qc.min_fov_coverage: expected a fraction in [0, 1], got {cfg.qc.min_fov_coverage}")
    if not 0 < cfg.input.min_voxel_mm < cfg.input.max_voxel_mm:
        raise ConfigError("input: expected 0 < min_voxel_mm < max_voxel_mm")


def preprocess_config_from_dict(data: dict[str, Any]) -> PreprocessConfig:
    """Build and check a :class:`PreprocessConfig` from a mapping (missing keys take defaults)."""
    check_keys(data, set(_SECTIONS), "preprocess config")
    sections = {}
    for name, cls in _SECTIONS.items():
        given = data.get(name) or {}
        allowed = {f.name for f in fields(cls)}
        check_keys(given, allowed, name)
        defaults = cls()
        values = {k: _coerce(name, k, v, getattr(defaults, k)) for k, v in given.items()}
        sections[name] = cls(**{**asdict(defaults), **values})
    config = PreprocessConfig(**sections)
    _check_values(config)
    return config


def load_preprocess_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PreprocessConfig:
    """Read the YAML (default ``configs/preprocess.yaml``), apply ``section.key=value`` overrides, check."""
    from pipeline.config import apply_overrides

    data = load_config(path or DEFAULT_PREPROCESS_CONFIG)
    if overrides:
        full = {name: {**asdict(cls()), **(data.get(name) or {})} for name, cls in _SECTIONS.items()}
        full.update({k: v for k, v in data.items() if k not in _SECTIONS})
        data = apply_overrides(full, overrides)
    return preprocess_config_from_dict(data)
