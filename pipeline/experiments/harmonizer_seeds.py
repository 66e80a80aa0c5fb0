"""The harmonizers a benchmark compares: one CycleGAN per harmonizer seed, each with its harmonized images.

A benchmark seed retrains only the downstream model; the harmonizer has its own variance (initialisation,
batch order, the epoch that validation picks). :func:`train_harmonizers` trains one
``cyclegan_harmonization`` bundle per harmonizer seed on the *same* training subjects (the split table the
user gives), and harmonizes the target site to the source ("to source") and the source to the target
("to target") with each. A harmonizer the user already has enters as :func:`harmonizer_from_folders`.

:func:`seen_subjects` reads, from the checkpoint itself, every subject the CycleGAN trained on or that
chose its checkpoint (``info``: ``train_subjects`` and ``val_subjects``), so "never seen" is checked, not
assumed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pipeline.bundles import train_bundle_once
from pipeline.harmonize import harmonize_cohort, read_harmonizer_info
from pipeline.preprocess.batch import read_preprocessed
from pipeline.run import file_sha256

__all__ = ["Harmonizer", "harmonizer_from_folders", "train_harmonizers", "prepare_harmonizers", "seen_subjects"]

log = logging.getLogger("mriharmony.benchmark")


@dataclass(frozen=True)
class Harmonizer:
    """One trained CycleGAN (``seed``) and its harmonized folders."""

    seed: int
    checkpoint: Path
    to_source: Path  # target-site images harmonized to the source site (source images unchanged)
    to_target: Path | None  # source-site images harmonized to the target site, when made


def _checkpoint_of(folder: Path) -> Path:
    description = folder / "dataset_description.json"
    if not description.exists():
        raise FileNotFoundError(f"{folder}: no dataset_description.json (expected a `mriharmony harmonize` folder)")
    record = json.loads(description.read_text())
    if "Checkpoint" not in record:
        raise ValueError(
            f"{description}: no 'Checkpoint' field (expected the description `mriharmony harmonize` writes)"
        )
    return Path(record["Checkpoint"])


def harmonizer_from_folders(to_source: str | Path, to_target: str | Path | None = None, *, seed: int = 0) -> Harmonizer:
    """A harmonizer made elsewhere, from its ``mriharmony harmonize`` output folder(s)."""
    to_source = Path(to_source)
    checkpoint = _checkpoint_of(to_source)
    if to_target is not None and _checkpoint_of(Path(to_target)).resolve() != checkpoint.resolve():
        raise ValueError(
            f"{to_source} and {to_target} were made by different checkpoints; pass the folders of one CycleGAN"
        )
    return Harmonizer(seed, checkpoint, to_source, Path(to_target) if to_target is not None else None)


def seen_subjects(checkpoint: str | Path) -> set[str]:
    """Every subject a CycleGAN checkpoint trained on or validated on (chose its epoch with)."""
    info = read_harmonizer_info(checkpoint)
    missing = [key for key in ("train_subjects", "val_subjects") if key not in info]
    if missing:
        raise ValueError(
            f"{checkpoint}: checkpoint info has no {missing}, so which subjects the CycleGAN saw cannot be "
            "checked; retrain it with this version of the cyclegan_harmonization bundle"
        )
    return {str(s) for s in info["train_subjects"]} | {str(s) for s in info.get("val_subjects", [])}


def train_harmonizers(
    raw: str | Path,
    out: str | Path,
    seeds: Sequence[int],
    *,
    source_site: str,
    target_site: str,
    splits_file: str | Path,
    bundle_overrides: dict[str, Any] | None = None,
    progress: bool = False,
) -> list[Harmonizer]:
    """Train one CycleGAN per seed on the same split into ``out/seed<k>`` and harmonize both directions.

    A re-run reuses a finished CycleGAN trained with the same settings on the same split table.
    """
    out = Path(out)
    harmonizers = []
    for seed in seeds:
        root = out / f"seed{seed}"
        overrides = {
            "dataset_dir": str(raw),
            "splits_file": str(splits_file),
            "source_site": source_site,
            "target_site": target_site,
            **(bundle_overrides or {}),
            "seed": int(seed),
        }
        log.info("harmonizer seed %d: training the CycleGAN (%s <-> %s)", seed, source_site, target_site)
        train_bundle_once("cyclegan_harmonization", root, overrides, inputs={"splits": file_sha256(splits_file)})
        checkpoint = root / "models" / "model.pt"
        table = read_preprocessed(raw)
        for direction in ("to_source", "to_target"):
            harmonize_cohort(table, checkpoint, root / direction, direction=direction, workers=0, progress=progress)
        harmonizers.append(Harmonizer(int(seed), checkpoint, root / "to_source", root / "to_target"))
    return harmonizers


def prepare_harmonizers(
    raw: str | Path,
    out: str | Path,
    *,
    source_site: str,
    target_site: str,
    harmonized: str | Path | None = None,
    harmonized_to_target: str | Path | None = None,
    harmonizer_seeds: int = 1,
    splits_file: str | Path | None = None,
    bundle_overrides: dict[str, Any] | None = None,
) -> list[Harmonizer]:
    """The benchmark's harmonizers: the given folders as seed 0 (when given), then CycleGANs trained for the
    remaining seeds up to ``harmonizer_seeds`` (on ``splits_file``, default ``splits.tsv`` in or beside RAW)."""
    from pipeline.cohort import find_splits_file

    given = [harmonizer_from_folders(harmonized, harmonized_to_target, seed=0)] if harmonized else []
    todo = range(len(given), max(int(harmonizer_seeds), len(given)))
    if not todo:
        return given
    info = read_harmonizer_info(given[0].checkpoint) if given else None
    if info is not None and (info["source_site"], info["target_site"]) != (source_site, target_site):
        raise ValueError(
            f"{given[0].checkpoint} harmonizes {info['source_site']} <-> {info['target_site']}, not "
            f"{source_site} <-> {target_site}"
        )
    return given + train_harmonizers(
        raw,
        out,
        list(todo),
        source_site=source_site,
        target_site=target_site,
        splits_file=find_splits_file(raw, splits_file),
        bundle_overrides=bundle_overrides,
    )
