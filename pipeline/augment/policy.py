"""The per-class synthetic augmentation policy of Kwon (2024): real fraction X_i, extra synthetic fraction Y_i.

For each class i with N_i real training subjects, the training table gets round(X_i * N_i) real
subjects (all their images; a random sample without replacement) and round(Y_i * N_i) synthetic images
of that class from the class's generator (Y_i is relative to the full real count, as in Kwon's (2024) "100% real
/ 20% synthetic"). X_i = 0 is synthetic-only training. The matched-count control is real oversampling:
round(O_i * N_i) extra copies of the kept real images (drawn with replacement), as many extra rows as a
synthetic arm adds, with nothing new in them. Classes the policy does not name keep all their real subjects
and get no synthetic image, which is Kwon's (2024) selective augmentation. Validation and test tables stay real-only:
:func:`check_synthetic_only_in_training` refuses a synthetic row anywhere else, and a translated image
whose source subject is not a training subject is refused too (it would carry a held-out subject's
anatomy into training).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

__all__ = [
    "ClassPolicy",
    "AugmentationPolicy",
    "TooFewSyntheticImages",
    "build_training_table",
    "check_synthetic_only_in_training",
    "SYNTHETIC_COLUMNS",
]

#: Provenance every synthetic row carries.
SYNTHETIC_COLUMNS = ("image", "diagnosis", "generator", "checkpoint_sha256", "source_subject", "seed")


class TooFewSyntheticImages(ValueError):
    """The policy asks a generator for more images of a class than exist (e.g. translations of a smaller class)."""


@dataclass(frozen=True)
class ClassPolicy:
    """X_i (``real_fraction``), Y_i (``synthetic_fraction``), the generator name and O_i
    (``oversample_fraction``, extra copies of real images) for one class."""

    real_fraction: float = 1.0
    synthetic_fraction: float = 0.0
    generator: str | None = None
    oversample_fraction: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.real_fraction <= 1.0:
            raise ValueError(f"real_fraction (X_i) must be in [0, 1], got {self.real_fraction}")
        if self.synthetic_fraction < 0.0:
            raise ValueError(f"synthetic_fraction (Y_i) must be >= 0, got {self.synthetic_fraction}")
        if self.oversample_fraction < 0.0:
            raise ValueError(f"oversample_fraction must be >= 0, got {self.oversample_fraction}")
        if self.synthetic_fraction > 0 and not self.generator:
            raise ValueError("synthetic_fraction > 0 needs a generator name")
        if self.real_fraction == 0 and self.synthetic_fraction == 0:
            raise ValueError("real_fraction 0 and synthetic_fraction 0 leave the class without training images")
        if self.real_fraction == 0 and self.oversample_fraction > 0:
            raise ValueError("oversample_fraction needs real images (real_fraction > 0)")


@dataclass(frozen=True)
class AugmentationPolicy:
    """Class name -> :class:`ClassPolicy`; unnamed classes are real-only at X_i = 1."""

    classes: Mapping[str, ClassPolicy] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | None, where: str = "policy") -> "AugmentationPolicy":
        """``{"AD": {"real_fraction": 1.0, "synthetic_fraction": 0.2, "generator": "translation"}, ...}``."""
        classes = {}
        for name, entry in (spec or {}).items():
            if not isinstance(entry, Mapping):
                raise ValueError(
                    f"{where}.{name}: expected a mapping with real_fraction, synthetic_fraction, generator"
                )
            unknown = set(entry) - {"real_fraction", "synthetic_fraction", "generator", "oversample_fraction"}
            if unknown:
                raise ValueError(
                    f"{where}.{name}: unknown key(s) {sorted(unknown)}; allowed: generator, "
                    "oversample_fraction, real_fraction, synthetic_fraction"
                )
            try:
                classes[str(name)] = ClassPolicy(**entry)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{where}.{name}: {error}") from None
        return cls(classes)

    def for_class(self, name: str) -> ClassPolicy:
        return self.classes.get(name, ClassPolicy())


def build_training_table(
    real: pd.DataFrame, synthetic: pd.DataFrame | None, policy: AugmentationPolicy, *, seed: int = 0
) -> pd.DataFrame:
    """The mixed training table: sampled real rows plus synthetic rows, with a boolean ``synthetic`` column.

    Args:
        real: the real training rows (``split`` must be ``train`` everywhere), with ``subject`` and
            ``diagnosis``.
        synthetic: available synthetic rows with the :data:`SYNTHETIC_COLUMNS` provenance.
        policy: the per-class policy.
        seed: the sampling seed (one per repeat of an experiment).
    """
    if "split" in real.columns and not (real["split"] == "train").all():
        bad = real.loc[real["split"] != "train", "subject"].iloc[0]
        raise ValueError(
            f"real rows must all be training rows; subject {bad!r} is in split "
            f"{real.loc[real['subject'] == bad, 'split'].iloc[0]!r}"
        )
    unknown = sorted(set(policy.classes) - set(real["diagnosis"]))
    if unknown:
        raise ValueError(
            f"policy names class(es) {unknown} absent from the training rows "
            f"(classes: {sorted(set(real['diagnosis']))})"
        )
    rng = np.random.default_rng(seed)
    parts = []
    for name in sorted(set(real["diagnosis"])):
        rule = policy.for_class(name)
        rows = real[real["diagnosis"] == name]
        subjects = np.array(sorted(set(rows["subject"])))
        keep = rng.choice(subjects, size=int(round(rule.real_fraction * len(subjects))), replace=False)
        kept = rows[rows["subject"].isin(keep)]
        parts.append(kept.assign(synthetic=False))
        copies = int(round(rule.oversample_fraction * len(subjects)))
        if copies:
            parts.append(kept.iloc[np.sort(rng.choice(len(kept), size=copies, replace=True))].assign(synthetic=False))
        wanted = int(round(rule.synthetic_fraction * len(subjects)))
        if wanted:
            parts.append(_synthetic_rows(synthetic, name, rule.generator, wanted, set(real["subject"]), rng))
    mixed = pd.concat(parts, ignore_index=True)
    if "split" in mixed.columns:
        check_synthetic_only_in_training({str(split): part for split, part in mixed.groupby("split")})
    return mixed


def _synthetic_rows(
    synthetic: pd.DataFrame | None,
    name: str,
    generator: str,
    wanted: int,
    train_subjects: set,
    rng: np.random.Generator,
) -> pd.DataFrame:
    if synthetic is None or synthetic.empty:
        raise ValueError(f"class {name}: the policy asks for {wanted} synthetic images but none were given")
    missing = [c for c in SYNTHETIC_COLUMNS if c not in synthetic.columns]
    if missing:
        raise ValueError(f"synthetic table: missing provenance column(s) {missing}")
    pool = synthetic[(synthetic["diagnosis"] == name) & (synthetic["generator"] == generator)]
    sources = set(pool["source_subject"].dropna().astype(str)) - {""}
    leaked = sorted(sources - {str(s) for s in train_subjects})
    if leaked:
        raise ValueError(
            f"class {name}, generator {generator}: synthetic images translated from non-training "
            f"subject(s) {leaked[:5]}; generators may only see training subjects"
        )
    if len(pool) < wanted:
        raise TooFewSyntheticImages(
            f"class {name}: the policy asks for {wanted} synthetic images from generator {generator!r}, "
            f"only {len(pool)} exist"
        )
    chosen = pool.iloc[np.sort(rng.choice(len(pool), size=wanted, replace=False))].copy()
    if "subject" not in chosen.columns:  # one pseudo-subject per synthetic image
        chosen["subject"] = [f"synthetic-{generator}-{i}" for i in chosen.index]
    return chosen.assign(synthetic=True, split="train")


def check_synthetic_only_in_training(tables: Mapping[str, pd.DataFrame]) -> None:
    """Raise if any table other than ``train`` holds a synthetic row (split name -> table)."""
    for split, table in tables.items():
        if split == "train" or "synthetic" not in table.columns:
            continue
        flagged = table[table["synthetic"].astype(bool)]
        if len(flagged):
            raise ValueError(
                f"{len(flagged)} synthetic row(s) in the {split} table (e.g. {flagged['image'].iloc[0]}); "
                "synthetic images may only enter training"
            )
