"""The configuration of ``mriharmony demo`` (``configs/demo.yaml``, ``demo_study.yaml``, ``demo_full.yaml``).

One dataclass per section, in the style of fMRIPrep's ``config.py``: every setting with its default and its
meaning in one place, checked once by :meth:`DemoConfig.from_dict` before any work, so a long run never dies
late on a typo. A section left out of the YAML is not run (``None`` here); a setting left out of a section
takes the default below (for bundle settings: the bundle's own default).

Examples:
    >>> config = DemoConfig.from_dict({"splits": {"seed": 3}})
    >>> config.splits.seed, config.splits.fractions, config.harmonization is None
    (3, (0.7, 0.15, 0.15), True)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from pipeline.config import CONFIG_DIR, ConfigError, check_keys, load_config
from pipeline.phantom import Effects, PhantomSpec
from pipeline.phantom.scanner import load_site_profiles
from pipeline.preprocess.config import DEFAULT_PREPROCESS_CONFIG, PreprocessConfig, preprocess_config_from_dict
from pipeline.run.layout import BENCHMARK_PROTOCOLS, DOWNSTREAM_BUNDLES

__all__ = [
    "SCALES",
    "DemoConfig",
    "SplitsSection",
    "HarmonizationSection",
    "EvaluationSection",
    "BenchmarkSection",
    "BundleSection",
    "ManyToOneSection",
    "phantom_spec_from_config",
]

#: ``mriharmony demo --scale NAME``: the configuration file of each scale.
SCALES = {
    "demo": CONFIG_DIR / "demo.yaml",
    "study": CONFIG_DIR / "demo_study.yaml",
    "full": CONFIG_DIR / "demo_full.yaml",
}


def _keys(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def _section(config: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The section ``name`` as a dict, None when absent or empty (a section not run)."""
    value = config.get(name)
    if value is None or value == {}:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}: expected a mapping, got {value!r}")
    return dict(value)


def phantom_spec_from_config(section: Mapping[str, Any], where: str = "phantom") -> PhantomSpec:
    """The ``phantom`` section (or ``mriharmony phantom``'s options) as a checked :class:`PhantomSpec`."""
    allowed = {"sites", "subjects_per_site", "traveling", "resolution", "seed", "effects", "profiles"}
    check_keys(section, allowed, where)
    effects = section.get("effects") or {}
    check_keys(effects, {"age", "ad", "site", "sex", "individual"}, f"{where}.effects")
    _, profiles = load_site_profiles(section.get("profiles"))
    sites = tuple(section.get("sites", PhantomSpec.sites))
    unknown = [s for s in sites if s not in profiles]
    if unknown:
        raise ConfigError(f"{where}.sites: unknown site(s) {unknown}; allowed: {sorted(profiles)}")
    resolution = float(section.get("resolution", PhantomSpec.resolution))
    if not 0.5 <= resolution <= 8.0:
        raise ConfigError(f"{where}.resolution: expected a voxel size between 0.5 and 8 mm, got {resolution}")
    return PhantomSpec(
        sites=sites,
        subjects_per_site=int(section.get("subjects_per_site", PhantomSpec.subjects_per_site)),
        traveling=int(section.get("traveling", PhantomSpec.traveling)),
        resolution=resolution,
        seed=int(section.get("seed", PhantomSpec.seed)),
        effects=Effects(**{k: float(v) for k, v in effects.items()}),
        profiles=section.get("profiles"),
    )


@dataclass(frozen=True)
class SplitsSection:
    """``splits``: the one subject-level split every stage of the run shares."""

    fractions: tuple[float, ...] = (0.7, 0.15, 0.15)
    """train, val and test fractions, by subject"""
    stratify: tuple[str, ...] = ("site", "diagnosis", "age")
    """columns the split is balanced over"""
    seed: int = 0
    """the split's random seed"""
    traveling: str = "split"
    """traveling subjects: ``split`` like the others, or all in ``test`` (held out from every model)"""

    @classmethod
    def from_dict(cls, section: Mapping[str, Any] | None) -> SplitsSection:
        section = {} if section is None else section
        check_keys(section, _keys(cls), "splits")
        return cls(
            fractions=tuple(float(f) for f in section.get("fractions", cls.fractions)),
            stratify=tuple(section.get("stratify", cls.stratify)),
            seed=int(section.get("seed", cls.seed)),
            traveling=str(section.get("traveling", cls.traveling)),
        )

    def as_dict(self) -> dict[str, Any]:
        """The keyword arguments of :func:`pipeline.cohort.split_subjects` (and the grid's ``split``)."""
        return {
            "fractions": list(self.fractions),
            "seed": self.seed,
            "stratify": list(self.stratify),
            "traveling": self.traveling,
        }


def _bundle_overrides(values: Mapping[str, Any], nested: tuple[str, ...]) -> dict[str, Any]:
    """Bundle overrides from section values: nested mappings (``net_kwargs``) become ``net_kwargs#key``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if key in nested:
            out.update({f"{key}#{k}": v for k, v in (value or {}).items()})
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class HarmonizationSection:
    """``harmonization``: the cyclegan_harmonization bundle between two sites, then both directions applied."""

    source_site: str
    """the reference site: the other site is harmonized "to source" """
    target_site: str
    """the site whose images are harmonized to the source"""
    epochs: int | None = None
    """bundle setting (None: the bundle's default, as for every setting below)"""
    batch_size: int | None = None
    """bundle setting"""
    spatial_size: list[int] | None = None
    """bundle setting: the training crop"""
    net_kwargs: dict[str, Any] | None = None
    """generator settings, e.g. ``{channels: 8, n_residual: 2}``"""
    disc_kwargs: dict[str, Any] | None = None
    """discriminator settings"""

    @classmethod
    def from_dict(cls, section: Mapping[str, Any], sites: tuple[str, ...]) -> HarmonizationSection:
        check_keys(section, _keys(cls), "harmonization")
        for key in ("source_site", "target_site"):
            if section.get(key) not in sites:
                raise ConfigError(
                    f"harmonization.{key}: {section.get(key)!r} is not a phantom site (sites: {list(sites)})"
                )
        return cls(**section)

    def bundle_overrides(self) -> dict[str, Any]:
        """The bundle's command-line overrides of this section (sites included, folders not)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return _bundle_overrides(values, ("net_kwargs", "disc_kwargs"))


@dataclass(frozen=True)
class EvaluationSection:
    """``evaluation``: site effects after preprocessing and the harmonization evaluation beside its baselines."""

    split: str = "test"
    """subjects evaluated: test, val, train or all"""
    baselines: tuple[str, ...] = ("identity", "histogram", "zscore", "combat")
    """the simple methods beside every CycleGAN"""
    probes: tuple[str, ...] = ("linear", "cnn")
    """image-level site probes"""
    resamples: int = 1000
    """subject-bootstrap resamples of every interval"""
    seed: int = 0
    """the bootstrap's and probes' seed"""

    @classmethod
    def from_dict(cls, section: Mapping[str, Any]) -> EvaluationSection:
        check_keys(section, _keys(cls), "evaluation")
        return cls(
            split=str(section.get("split", cls.split)),
            baselines=tuple(section.get("baselines", cls.baselines)),
            probes=tuple(section.get("probes", cls.probes)),
            resamples=int(section.get("resamples", cls.resamples)),
            seed=int(section.get("seed", cls.seed)),
        )


@dataclass(frozen=True)
class BundleSection:
    """A downstream bundle's settings (``downstream.brain_age``, ``downstream.ad_classification``,
    ``benchmark.bundle``): None leaves the bundle's default."""

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    spatial_size: list[int] | None = None
    net_kwargs: dict[str, Any] | None = None
    model: str | None = None
    """ad_classification: resnet3d or three_view"""
    task: str | None = None
    """ad_classification: cn_ad or cn_mci_ad"""
    seed: int | None = None
    """the first training seed"""
    seeds: int = 1
    """training seeds on the same split (the first is ``seed``)"""

    @classmethod
    def from_dict(cls, section: Mapping[str, Any] | None, where: str, allowed: set[str] | None = None) -> BundleSection:
        section = {} if section is None else section
        check_keys(section, allowed or _keys(cls), where)
        return cls(**section)

    def common_overrides(self) -> dict[str, Any]:
        """Overrides shared by training and inference (the network's shape and input)."""
        values = {
            "spatial_size": self.spatial_size,
            "model": self.model,
            "task": self.task,
            "net_kwargs": self.net_kwargs,
        }
        return _bundle_overrides(values, ("net_kwargs",))

    def train_overrides(self) -> dict[str, Any]:
        """Overrides of training only."""
        values = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "seed": self.seed}
        return {**self.common_overrides(), **_bundle_overrides(values, ())}


@dataclass(frozen=True)
class BenchmarkSection:
    """``benchmark``: the brain-age benchmark (Komandur et al. 2023 Tables 2 and 3, and cross-site)."""

    seeds: int = 2
    """brain-age splits / trainings per condition"""
    protocols: tuple[str, ...] = tuple(BENCHMARK_PROTOCOLS)
    """pooled (their Table 2), held_out (Table 3: controls no CycleGAN saw), cross_site"""
    harmonizer_seeds: int = 1
    """CycleGANs: seed 0 is the harmonization stage's, the others are trained on the same split"""
    cross_validated_folds: int = 0
    """k of the cross-validated brain age over every control (0: not run)"""
    bundle: BundleSection = BundleSection()
    """the brain_age bundle's settings"""

    @classmethod
    def from_dict(cls, section: Mapping[str, Any]) -> BenchmarkSection:
        check_keys(section, _keys(cls), "benchmark")
        bundle_keys = {"epochs", "batch_size", "lr", "spatial_size", "net_kwargs"}
        bundle = BundleSection.from_dict(section.get("bundle"), "benchmark.bundle", bundle_keys)
        protocols = tuple(section.get("protocols", tuple(BENCHMARK_PROTOCOLS)))
        wrong = [p for p in protocols if p not in BENCHMARK_PROTOCOLS]
        if wrong:
            raise ConfigError(f"benchmark.protocols: expected some of {list(BENCHMARK_PROTOCOLS)}, got {wrong}")
        harmonizer_seeds = int(section.get("harmonizer_seeds", cls.harmonizer_seeds))
        if harmonizer_seeds < 1:
            raise ConfigError(f"benchmark.harmonizer_seeds: expected at least 1, got {harmonizer_seeds}")
        return cls(
            seeds=int(section.get("seeds", cls.seeds)),
            protocols=protocols,
            harmonizer_seeds=harmonizer_seeds,
            cross_validated_folds=int(section.get("cross_validated_folds", cls.cross_validated_folds)),
            bundle=bundle,
        )


@dataclass(frozen=True)
class ManyToOneSection:
    """``many_to_one``: one many-to-one harmonizer (IGUANe's design) for every site but the held-out ones, every
    site harmonized to the reference, evaluated on the held-out and the seen sites (needs ``evaluation``, whose
    settings it uses)."""

    reference_site: str
    """the site every image is harmonized to"""
    held_out_sites: tuple[str, ...]
    """sites never trained on: what generalisation is measured on"""
    seeds: int = 2
    """harmonizer seeds, each trained on the same subjects"""
    brain_age_seeds: int = 0
    """seeds of the cross-site brain-age benchmark between the reference and each held-out site (0: not run)"""
    brain_age: BundleSection = BundleSection()
    """the brain_age bundle's settings for it"""
    epochs: int | None = None
    """bundle setting (None: the bundle's default, as for every setting below)"""
    batch_size: int | None = None
    """bundle setting"""
    lr: float | None = None
    """bundle setting"""
    spatial_size: list[int] | None = None
    """bundle setting: the training size (the images' 64^3 to harmonize them)"""
    patch_size: list[int] | None = None
    """bundle setting: random training crops of this size (whole images are still harmonized)"""
    epoch_length: int | None = None
    """bundle setting: iterations per epoch"""
    lambda_identity_reference: float | None = None
    """bundle setting: identity weight on reference images"""
    lambda_identity_source: float | None = None
    """bundle setting: identity weight of the backward generators"""
    net_kwargs: dict[str, Any] | None = None
    """universal and backward generators, e.g. ``{channels: [8, 16, 32, 64]}``"""
    disc_kwargs: dict[str, Any] | None = None
    """discriminators, e.g. ``{channels: [16, 32, 64]}``"""

    @classmethod
    def from_dict(cls, section: Mapping[str, Any], sites: tuple[str, ...]) -> ManyToOneSection:
        check_keys(section, _keys(cls), "many_to_one")
        reference = section.get("reference_site")
        held_out = tuple(section.get("held_out_sites") or ())
        if reference not in sites:
            raise ConfigError(f"many_to_one.reference_site: {reference!r} is not a phantom site (sites: {list(sites)})")
        wrong = [s for s in held_out if s not in sites or s == reference]
        if not held_out or wrong:
            raise ConfigError(
                f"many_to_one.held_out_sites: expected one or more phantom sites other than the reference "
                f"{reference!r}, got {list(held_out)} (sites: {list(sites)})"
            )
        if len(sites) - len(held_out) < 2:
            raise ConfigError(f"many_to_one: holding out {list(held_out)} of {list(sites)} leaves no site to train on")
        bundle_keys = {"epochs", "batch_size", "lr", "spatial_size", "net_kwargs"}
        brain_age = BundleSection.from_dict(section.get("brain_age"), "many_to_one.brain_age", bundle_keys)
        return cls(**{**section, "held_out_sites": held_out, "brain_age": brain_age})

    def bundle_overrides(self) -> dict[str, Any]:
        """The many_to_one_harmonization bundle's training overrides of this section."""
        values = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "spatial_size": self.spatial_size,
            "patch_size": self.patch_size,
            "epoch_length": self.epoch_length,
            "lambda_identity_reference": self.lambda_identity_reference,
            "lambda_identity_source": self.lambda_identity_source,
            "net_kwargs": self.net_kwargs,
            "disc_kwargs": self.disc_kwargs,
        }
        return _bundle_overrides(values, ("net_kwargs", "disc_kwargs"))


@dataclass(frozen=True)
class DemoConfig:
    """A whole demo configuration, checked. Sections set to None are not run."""

    phantom: PhantomSpec
    """``phantom``: the cohort generated (see :class:`pipeline.phantom.PhantomSpec`)"""
    splits: SplitsSection
    """``splits``"""
    preprocess: PreprocessConfig
    """``preprocess``: overrides laid over ``configs/preprocess.yaml``"""
    harmonization: HarmonizationSection | None = None
    """``harmonization``"""
    evaluation: EvaluationSection | None = None
    """``evaluation`` (needs ``harmonization``)"""
    benchmark: BenchmarkSection | None = None
    """``benchmark`` (needs ``harmonization``)"""
    downstream: dict[str, BundleSection] | None = None
    """``downstream``: brain_age and / or ad_classification"""
    augmentation: Any = None
    """``augmentation``: the augmentation grid (configs/augment_grid.yaml keys) on the run's split"""
    many_to_one: ManyToOneSection | None = None
    """``many_to_one`` (needs ``evaluation``)"""

    SECTIONS = (
        "phantom",
        "splits",
        "preprocess",
        "harmonization",
        "evaluation",
        "benchmark",
        "downstream",
        "augmentation",
        "many_to_one",
    )

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], out: str | Path = "mriharmony-demo") -> DemoConfig:
        """Check every section of ``config`` (a parsed YAML mapping); ``out`` is the run folder."""
        check_keys(config, set(cls.SECTIONS), "demo config")
        spec = phantom_spec_from_config(config.get("phantom") or {})
        splits = SplitsSection.from_dict(config.get("splits"))
        harmonization, evaluation, benchmark = (
            _section(config, name) for name in ("harmonization", "evaluation", "benchmark")
        )
        if (evaluation or benchmark) and not harmonization:
            raise ConfigError("evaluation / benchmark: need the harmonization section (they evaluate its CycleGAN)")
        downstream = _section(config, "downstream")
        if downstream is not None:
            check_keys(downstream, set(DOWNSTREAM_BUNDLES), "downstream")
        many_to_one = _section(config, "many_to_one")
        if many_to_one and not evaluation:
            raise ConfigError("many_to_one: needs the evaluation section (its settings score every site)")
        return cls(
            phantom=spec,
            splits=splits,
            preprocess=_preprocess(config.get("preprocess") or {}),
            harmonization=None if harmonization is None else HarmonizationSection.from_dict(harmonization, spec.sites),
            evaluation=None if evaluation is None else EvaluationSection.from_dict(evaluation),
            benchmark=None if benchmark is None else BenchmarkSection.from_dict(benchmark),
            downstream=None
            if downstream is None
            else {name: BundleSection.from_dict(section, f"downstream.{name}") for name, section in downstream.items()},
            augmentation=_augmentation(_section(config, "augmentation"), splits, Path(out)),
            many_to_one=None if many_to_one is None else ManyToOneSection.from_dict(many_to_one, spec.sites),
        )

    @classmethod
    def from_file(cls, path: str | Path, overrides: list[str] = (), out: str | Path = "mriharmony-demo") -> DemoConfig:
        """Read, override (``section.key=value``) and check a configuration file."""
        from pipeline.config import apply_overrides

        return cls.from_dict(apply_overrides(load_config(path), list(overrides)), out)


def _preprocess(section: Mapping[str, Any]) -> PreprocessConfig:
    """configs/preprocess.yaml with the demo's ``preprocess`` section laid over it (checked)."""
    base = load_config(DEFAULT_PREPROCESS_CONFIG)
    merged = {k: {**(base.get(k) or {}), **(v or {})} if isinstance(v, dict) else v for k, v in section.items()}
    return preprocess_config_from_dict({**base, **merged})


def _augmentation(section: dict[str, Any] | None, splits: SplitsSection, out: Path):
    """The ``augmentation`` section as a checked grid config on the run's preprocessed cohort, with the run's
    split settings by default (so repeat 0 is the run's own split); None when absent."""
    from pipeline.experiments.augmentation_grid import GridConfig
    from pipeline.run import RunLayout

    if not section:
        return None
    return GridConfig.from_dict(
        {"split": splits.as_dict(), **section, "dataset_dir": str(RunLayout(out).preprocessed)}, "augmentation"
    )
