"""The inference workflow of the harmonization bundles (cyclegan_harmonization, many_to_one_harmonization): what
their dataset, postprocessing and handlers call, so that ``python -m monai.bundle run --config_file
.../inference.yaml`` writes exactly what ``mriharmony harmonize`` (:func:`pipeline.harmonize.harmonize_cohort`, the
Dask path) writes.

:class:`HarmonizationJob` checks the request (:func:`pipeline.harmonize.plan_harmonization`) and gives the
dataset its items: the input sites' images that a previous run did not already write with the same
generator, with images of the wrong size or unreadable headers recorded as failed instead (a bad image
never stops the cohort). :class:`SaveHarmonizedd`, the last postprocessing transform, writes each
harmonized image atomically with its sidecar; :class:`HarmonizedTableWriter` writes the cohort's tables
when the evaluator completes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import nibabel as nib
import numpy as np
import torch

from pipeline.harmonize import (
    _already_done,
    _base_record,
    _check_size,
    _failed,
    generator_file,
    plan_harmonization,
    write_harmonized_image,
)
from pipeline.preprocess.batch import read_preprocessed

__all__ = ["HarmonizationJob", "SaveHarmonizedd", "HarmonizedTableWriter"]


class HarmonizationJob:
    """One harmonization run of the bundle's inference workflow.

    Args:
        dataset_dir: a folder written by ``mriharmony preprocess`` (``preprocessed.tsv``).
        checkpoint: the harmonizer's ``models/model.pt``.
        output_dir: where harmonized images and tables go.
        direction: ``to_target`` or ``to_source`` (pairwise harmonizers).
        sites: the sites to harmonize (default: a pairwise generator's input site, others refused; every site
            but the reference for a many-to-one harmonizer, unseen ones flagged).
        precision: what the inferer runs in (``float32``, ``bfloat16``, ``float16``): recorded in the
            sidecars; images written in another precision are rewritten.
    """

    def __init__(
        self,
        dataset_dir: str | Path,
        checkpoint: str | Path,
        output_dir: str | Path,
        *,
        direction: str = "to_target",
        sites: list[str] | None = None,
        precision: str = "float32",
    ):
        self.plan = plan_harmonization(
            read_preprocessed(dataset_dir), checkpoint, output_dir, direction=direction, sites=sites
        )
        self.precision = precision
        self.todo = self.plan.todo  # the rows to harmonize, listed once (items are indices into it)
        self.records: list[dict[str, Any]] = []
        self._items: list[dict] | None = None

    @property
    def generator_path(self) -> str:
        """The weights file of this direction (for the config's CheckpointLoader)."""
        return str(generator_file(self.plan.checkpoint, self.plan.direction))

    def items(self) -> list[dict]:
        """``{"image", "mask", "index"}`` of every row still to harmonize; resumed and failed rows are recorded."""
        if self._items is not None:
            return self._items
        plan, self._items = self.plan, []
        for index, row in enumerate(self.todo):
            target = plan.target_path(row)
            record = _base_record(row, target, plan.sha, plan.direction, row["site"] in plan.unseen_sites)
            if _already_done(target, plan.sha, plan.direction, self.precision):
                self.records.append({**record, "resumed": True})
                continue
            try:
                shapes = [nib.load(row[key]).shape for key in ("image_cube", "mask_cube")]
                if len(shapes[0]) != 3 or shapes[0] != shapes[1]:
                    raise ValueError(
                        f"expected a 3D image and a mask of the same shape, got {shapes[0]} and {shapes[1]}"
                    )
                _check_size(shapes[0], plan.info.get("spatial_size"))
            except Exception as exc:  # noqa: BLE001 - a bad image is recorded, never fatal
                self.records.append(_failed(record, "load", exc))
                continue
            self._items.append({"image": row["image_cube"], "mask": row["mask_cube"], "index": index})
        return self._items

    def write(self, index: int, image: np.ndarray, affine: np.ndarray) -> None:
        """Write the harmonized image of ``todo[index]`` and record it."""
        plan = self.plan
        row = self.todo[index]
        target = plan.target_path(row)
        unseen = row["site"] in plan.unseen_sites
        record = _base_record(row, target, plan.sha, plan.direction, unseen)
        try:
            write_harmonized_image(
                target,
                image,
                affine,
                checkpoint=str(plan.checkpoint),
                sha=plan.sha,
                direction=plan.direction,
                input_site=row["site"],
                output_site=plan.output_site,
                source=row["image_cube"],
                precision=self.precision,
                unseen=unseen,
            )
            self.records.append(record)
        except Exception as exc:  # noqa: BLE001 - a bad image is recorded, never fatal
            self.records.append(_failed(record, "write", exc))


class SaveHarmonizedd:
    """Postprocessing: write ``pred`` (already masked) with the input image's affine, through ``job``.

    Args:
        job: the run's :class:`HarmonizationJob`.
        pred_key: the (masked) prediction.
        image_key: the input image, whose MetaTensor carries the affine.
    """

    def __init__(self, job: HarmonizationJob, *, pred_key: str = "pred", image_key: str = "image"):
        self.job, self.pred_key, self.image_key = job, pred_key, image_key

    def __call__(self, data: Mapping) -> Mapping:
        pred = torch.as_tensor(data[self.pred_key]).detach().float().cpu().numpy()[0]
        self.job.write(int(data["index"]), pred, np.asarray(data[self.image_key].affine, dtype=np.float64))
        return data


class HarmonizedTableWriter:
    """Ignite handler: when the evaluator completes, write ``harmonized.tsv``, ``failures.tsv`` and
    ``dataset_description.json`` for every row of the cohort (:meth:`HarmonizationPlan.write_cohort`)."""

    def __init__(self, job: HarmonizationJob):
        self.job = job

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.COMPLETED, lambda _: self.write())

    def write(self):
        """Also called directly when nothing is left to harmonize (the evaluator does not run on no data)."""
        return self.job.plan.write_cohort(self.job.records)
