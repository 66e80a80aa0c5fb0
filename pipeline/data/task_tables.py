"""Items for the downstream tasks (brain age, AD classification) from a preprocessed or harmonized
folder and a subject-level split table.

Brain age is trained on controls (CN) only, as in Komandur et al. (2023); AD classification uses CN vs AD (or CN / MCI /
AD). The split table decides which subjects are in which split; the leakage check runs before any
item is returned. Traveling subjects contribute one image per site; they stay in one split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.cohort import attach_splits, find_splits_file, read_splits
from pipeline.preprocess.batch import read_preprocessed
from pipeline.table_paths import resolve_paths

__all__ = ["TASKS", "task_table", "task_items", "mixed_training_items", "class_weights", "CLASS_NAMES"]

TASKS = ("brain_age", "cn_ad", "cn_mci_ad")
CLASS_NAMES = {"cn_ad": ["CN", "AD"], "cn_mci_ad": ["CN", "MCI", "AD"]}


def task_table(
    dataset_dir: str | Path,
    task: str,
    *,
    splits_file: str | Path | None = None,
    sites: list[str] | None = None,
    image_key: str = "image_cube",
) -> pd.DataFrame:
    """The rows usable for ``task`` with their split and ``label`` (age in years, or class index)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    table = read_preprocessed(dataset_dir)
    if sites:
        unknown = sorted(set(sites) - set(table["site"]))
        if unknown:
            raise ValueError(f"sites {unknown} are not in {dataset_dir} (sites: {sorted(set(table['site']))})")
        table = table[table["site"].isin(sites)]
    if task == "brain_age":
        table = table[table["diagnosis"] == "CN"].copy()
        table["label"] = pd.to_numeric(table["age"], errors="coerce")
        table = table[np.isfinite(table["label"])]
    else:
        names = CLASS_NAMES[task]
        table = table[table["diagnosis"].isin(names)].copy()
        table["label"] = table["diagnosis"].map({name: i for i, name in enumerate(names)})
    # after the site and task filters: a split table need only cover the subjects the task uses
    # (the brain-age benchmark splits only two sites' controls)
    table = attach_splits(table, read_splits(find_splits_file(dataset_dir, splits_file)))
    table["image"] = table[image_key]
    return table.reset_index(drop=True)


def task_items(
    dataset_dir: str | Path, task: str, split: str, *, permute_labels: int | None = None, **kwargs
) -> list[dict]:
    """MONAI-style items ``{"image": path, "label": ..., "subject": ..., "site": ...}`` of one split.

    ``permute_labels``: a seed to shuffle the labels among the split's items (a negative control: a
    model trained on permuted labels must stay at chance).
    """
    table = task_table(dataset_dir, task, **kwargs)
    part = table[table["split"] == split].copy()
    if permute_labels is not None:
        part["label"] = np.random.default_rng(permute_labels).permutation(part["label"].to_numpy())
    dtype = float if task == "brain_age" else int
    return [
        {
            "image": r["image"],
            "label": dtype(r["label"]),
            "subject": r["subject"],
            "session": r["session"],
            "site": r["site"],
            "age": float(r["age"]),
        }
        for _, r in part.iterrows()
    ]


def class_weights(items: list[dict], num_classes: int, *, rows: str = "real"):
    """Inverse class-frequency loss weights ``n / n_c`` of training items.

    ``rows="real"`` (the default) counts the real rows only, so every arm of an augmentation experiment trains
    under the same loss balance and what synthetic images add (class balance included) shows in its results;
    ``"all"`` counts synthetic rows too, which cancels the balance that added minority-class images bring.
    A class without any real row (a synthetic-only arm) has no real balance to keep: then all rows count.
    """
    import torch

    if rows not in ("real", "all"):
        raise ValueError(f"class weight rows must be 'real' or 'all', got {rows!r}")
    counted = [i for i in items if rows == "all" or not i.get("synthetic", False)]
    present = {i["label"] for i in items}
    if {i["label"] for i in counted} != present:
        counted = list(items)
    counts = [sum(i["label"] == c for i in counted) for c in range(num_classes)]
    return torch.tensor([len(counted) / max(1, n) for n in counts], dtype=torch.float32)


def mixed_training_items(table_file: str | Path, dataset_dir: str | Path, task: str, **kwargs) -> list[dict]:
    """Training items from a mixed real + synthetic table (``pipeline.augment.build_training_table``).

    Checked against the split table before anything trains: every real row must be a ``train``-split
    subject of ``dataset_dir``, every synthetic row (``synthetic`` true) must come from a training
    subject or none (conditional GAN), and classes must be those of ``task``.
    """
    if task == "brain_age":
        raise ValueError("mixed (synthetic) training tables are for the classification tasks")
    table = pd.read_csv(table_file, sep="\t", dtype={"subject": str, "source_subject": str}, keep_default_na=False)
    table = resolve_paths(table, Path(table_file).parent)
    missing = {"image", "diagnosis", "subject", "synthetic"} - set(table.columns)
    if missing:
        raise ValueError(
            f"{table_file}: missing column(s) {sorted(missing)}; expected a table from build_training_table"
        )
    names = CLASS_NAMES[task]
    unknown = sorted(set(table["diagnosis"]) - set(names))
    if unknown:
        raise ValueError(f"{table_file}: diagnosis {unknown} is not a class of task {task} ({names})")
    reference = task_table(dataset_dir, task, **kwargs)
    train_subjects = set(reference.loc[reference["split"] == "train", "subject"])
    synthetic = table["synthetic"].astype(str).str.lower().isin(["true", "1"])
    from pipeline.augment.policy import check_synthetic_only_in_training

    # a synthetic row may sit only in training: in the mixed table's own split column and in the real tables
    # the bundle validates and tests on
    if "split" in table:
        check_synthetic_only_in_training(
            {str(split): part for split, part in table.assign(synthetic=synthetic).groupby("split")}
        )
    check_synthetic_only_in_training({split: reference[reference["split"] == split] for split in ("val", "test")})
    outside = sorted(set(table.loc[~synthetic, "subject"]) - train_subjects)
    if outside:
        raise ValueError(
            f"{table_file}: real rows of non-training subject(s) {outside[:5]}; only the train split may train"
        )
    sources = set(table.loc[synthetic, "source_subject"]) - {""} if "source_subject" in table else set()
    leaked = sorted(sources - train_subjects)
    if leaked:
        raise ValueError(f"{table_file}: synthetic rows made from non-training subject(s) {leaked[:5]}")
    return [
        {"image": r["image"], "label": names.index(r["diagnosis"]), "subject": r["subject"], "synthetic": bool(s)}
        for (_, r), s in zip(table.iterrows(), synthetic)
    ]
