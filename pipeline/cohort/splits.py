"""Subject-level splits: train/val/test fractions or k folds, stratified, seeded, leak-checked.

Every image of a subject lands in the same split (traveling subjects scanned at several sites
included). Splits are stored as a TSV (``subject``, ``split`` or ``fold``) so that every later
stage uses the same ones.

Allocation (hand-written, because scikit-learn's stratified splitters need at least two subjects
per stratum and give no exact three-way fractions): subjects are grouped by stratum
(site x diagnosis x age bin), shuffled within strata with the seed, strata are laid end to end in
sorted order (so each site, and each site x diagnosis, is one contiguous block), and subject ``i``
of that sequence gets the score ``frac(phase + i * g)`` with ``g`` the golden-ratio conjugate and a
seeded phase. The scores of any contiguous block are spread evenly over [0, 1) (a low-discrepancy
sequence), so every stratum, however small, and every site as a whole, is spread over the splits
in proportion; the subjects are then ranked by score and cut at the requested fractions, which
makes the overall split sizes exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from pipeline.atomic import write_table

__all__ = [
    "find_splits_file",
    "LeakageError",
    "TRAVELING_CHOICES",
    "traveling_subjects",
    "subject_strata",
    "split_subjects",
    "kfold_subjects",
    "check_no_leakage",
    "write_splits",
    "read_splits",
    "attach_splits",
]

SPLIT_NAMES = ("train", "val", "test")
#: where :func:`split_subjects` puts traveling subjects: spread over the splits like everyone else, or
#: all in test (held out from every training, so that traveling-subject fidelity is measured on
#: subjects no model saw and has as many pairs as the cohort has)
TRAVELING_CHOICES = ("split", "test")
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


class LeakageError(ValueError):
    """A subject appears in more than one split."""


def traveling_subjects(table: pd.DataFrame) -> list[str]:
    """The subjects scanned at more than one site (sorted)."""
    per_subject = table.groupby("subject")["site"].nunique()
    return sorted(per_subject.index[per_subject > 1].astype(str))


def subject_strata(
    table: pd.DataFrame, stratify: Sequence[str] = ("site", "diagnosis", "age"), n_age_bins: int = 3
) -> pd.Series:
    """One stratum label per subject (index: subject).

    A subject scanned at several sites gets the site ``multisite``; its diagnosis is its most
    frequent one; ``age`` means the subject's mean age cut into ``n_age_bins`` quantile bins.
    """
    allowed = {"site", "diagnosis", "age", "sex"}
    unknown = set(stratify) - allowed
    if unknown:
        raise ValueError(f"stratify: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    grouped = table.groupby("subject", sort=True)
    parts: list[pd.Series] = []
    for key in stratify:
        if key == "site":
            parts.append(grouped["site"].agg(lambda s: s.iloc[0] if s.nunique() == 1 else "multisite"))
        elif key == "age":
            mean_age = grouped["age"].mean()
            bins = min(n_age_bins, mean_age.nunique())
            codes = pd.qcut(mean_age.rank(method="first"), q=bins, labels=False) if bins > 1 else mean_age * 0
            parts.append(codes.astype(int).map(lambda b: f"age{b}"))
        else:
            parts.append(grouped[key].agg(lambda s: s.mode().iloc[0]))
    if not parts:
        return pd.Series("all", index=sorted(table["subject"].unique()))
    label = parts[0].astype(str)
    for part in parts[1:]:
        label = label + "|" + part.astype(str)
    return label


def _spread_scores(strata: pd.Series, seed: int) -> pd.Series:
    """Evenly spread score in [0, 1) per subject (see module docstring)."""
    rng = np.random.default_rng(seed)
    order: list[str] = []
    for name in sorted(strata.unique()):  # site-major order: each site's subjects stay contiguous
        members = list(strata.index[strata == name])
        rng.shuffle(members)
        order.extend(members)
    phase = rng.random()
    scores = (phase + np.arange(len(order)) * _GOLDEN) % 1.0
    return pd.Series(scores, index=order)


def split_subjects(
    table: pd.DataFrame,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    *,
    seed: int = 0,
    stratify: Sequence[str] = ("site", "diagnosis", "age"),
    n_age_bins: int = 3,
    traveling: str = "split",
) -> pd.DataFrame:
    """Split subjects into train / val / test.

    Args:
        table: cohort table (one row per image; several rows per subject allowed).
        fractions: fractions for (train, val, test), or (train, test); must sum to 1.
        seed: random seed; the same seed and table give the same split.
        stratify: subject attributes to stratify by (``site``, ``diagnosis``, ``age``, ``sex``).
        n_age_bins: quantile bins of age used for stratification.
        traveling: ``split`` (traveling subjects are split like the others) or ``test`` (every subject
            scanned at more than one site goes to test; the fractions then apply to the others).

    Returns:
        Table with columns ``subject`` and ``split``, one row per subject.

    Example:
        >>> table = pd.DataFrame({"subject": ["a", "a", "b", "c", "d"], "site": ["x", "y", "x", "y", "x"]})
        >>> split_subjects(table, (0.5, 0.5), stratify=(), traveling="test").set_index("subject")["split"].to_dict()
        {'a': 'test', 'b': 'test', 'c': 'train', 'd': 'train'}
    """
    fractions = [float(f) for f in fractions]
    if len(fractions) not in (2, 3) or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be 2 or 3 non-negative numbers summing to 1, got {fractions}")
    if traveling not in TRAVELING_CHOICES:
        raise ValueError(f"traveling must be one of {TRAVELING_CHOICES}, got {traveling!r}")
    names = SPLIT_NAMES if len(fractions) == 3 else ("train", "test")
    held_out = traveling_subjects(table) if traveling == "test" else []
    if held_out:
        rest = split_subjects(
            table[~table["subject"].astype(str).isin(held_out)],
            fractions,
            seed=seed,
            stratify=stratify,
            n_age_bins=n_age_bins,
        )
        out = pd.concat([rest, pd.DataFrame({"subject": held_out, "split": "test"})], ignore_index=True)
        return out.sort_values("subject").reset_index(drop=True)
    strata = subject_strata(table, stratify, n_age_bins)
    scores = _spread_scores(strata, seed).sort_values(kind="stable")
    n = len(scores)
    counts = np.floor(np.array(fractions) * n).astype(int)
    remainders = np.array(fractions) * n - counts
    for i in np.argsort(-remainders, kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    labels = np.repeat(names, counts)
    out = pd.DataFrame({"subject": scores.index, "split": labels})
    return out.sort_values("subject").reset_index(drop=True)


def kfold_subjects(
    table: pd.DataFrame,
    k: int = 5,
    *,
    seed: int = 0,
    stratify: Sequence[str] = ("site", "diagnosis", "age"),
    n_age_bins: int = 3,
) -> pd.DataFrame:
    """Assign every subject to one of ``k`` folds (columns ``subject``, ``fold``), stratified."""
    n_subjects = table["subject"].nunique()
    if not 2 <= k <= n_subjects:
        raise ValueError(f"k must be between 2 and the number of subjects ({n_subjects}), got {k}")
    strata = subject_strata(table, stratify, n_age_bins)
    scores = _spread_scores(strata, seed).sort_values(kind="stable")
    folds = (np.arange(len(scores)) * k) // len(scores)
    out = pd.DataFrame({"subject": scores.index, "fold": folds})
    return out.sort_values("subject").reset_index(drop=True)


def check_no_leakage(table: pd.DataFrame, *, subject_col: str = "subject", split_col: str = "split") -> None:
    """Raise :class:`LeakageError` if any subject appears under more than one split label.

    Works on any table with a subject and a split column: split tables, image tables, slice
    tables, training tables with synthetic rows.
    """
    for col in (subject_col, split_col):
        if col not in table.columns:
            raise KeyError(f"check_no_leakage: table has no column '{col}' (columns: {list(table.columns)})")
    per_subject = table.groupby(subject_col)[split_col].nunique()
    leaked = per_subject[per_subject > 1]
    if len(leaked):
        detail = ", ".join(
            f"{s} in {sorted(table.loc[table[subject_col] == s, split_col].astype(str).unique())}"
            for s in leaked.index[:10]
        )
        more = f" (and {len(leaked) - 10} more)" if len(leaked) > 10 else ""
        raise LeakageError(f"{len(leaked)} subject(s) appear in more than one split: {detail}{more}")


def write_splits(splits: pd.DataFrame, path: str | Path) -> Path:
    """Write a split table (checked for leakage first) as TSV."""
    split_col = "split" if "split" in splits.columns else "fold"
    check_no_leakage(splits, split_col=split_col)
    return write_table(path, splits)


def read_splits(path: str | Path) -> pd.DataFrame:
    """Read a split table written by :func:`write_splits`."""
    return pd.read_csv(path, sep="\t", dtype={"subject": str})


def attach_splits(table: pd.DataFrame, splits: pd.DataFrame) -> pd.DataFrame:
    """Add the split (or fold) column to an image table; every subject must have one."""
    split_col = "split" if "split" in splits.columns else "fold"
    merged = table.merge(splits[["subject", split_col]], on="subject", how="left")
    missing = sorted(merged.loc[merged[split_col].isna(), "subject"].unique())
    if missing:
        raise ValueError(f"subjects without a {split_col} in the split table: {missing[:10]}")
    check_no_leakage(merged, split_col=split_col)
    return merged


def find_splits_file(dataset_dir: str | Path, splits_file: str | Path | None = None) -> Path:
    """The split table: ``splits_file`` if given, else ``splits.tsv`` in or beside ``dataset_dir``."""
    if splits_file:
        path = Path(splits_file)
        if not path.exists():
            raise FileNotFoundError(f"splits file {path} does not exist (write one with `mriharmony split`)")
        return path
    for candidate in (Path(dataset_dir) / "splits.tsv", Path(dataset_dir).parent / "splits.tsv"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"no splits.tsv in or beside {dataset_dir}; write one with `mriharmony split COHORT "
        f"--out SPLITS.tsv` and pass it as splits_file"
    )
