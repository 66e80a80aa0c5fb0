"""AD classification inference: the items and the handlers of the ad_classification bundle's inference
config (its evaluator runs the network): per-subject probabilities, metrics with bootstrap intervals, and
Grad-CAM maps (monai.visualize) for the 3D and the three-view model.

Outputs in ``output_dir``: ``predictions.tsv`` (subject, session, site, diagnosis, label, one
probability per class, predicted class), ``metrics.json`` (accuracy, precision, recall, F1, balanced
accuracy, AUC, confusion matrix, each with a 95% interval from a bootstrap over subjects: a traveling
subject's images are drawn together), and with ``gradcam=True``
``gradcam/sub-*_gradcam.nii.gz`` (the map on the input image's grid and affine, i.e. in template
space; for the three-view model each view's 2D map sits on the mid-plane that view saw, zero elsewhere),
``gradcam/sub-*_gradcam.png`` (mid-slice overlays) and ``gradcam/class-<NAME>_mean.nii.gz``
(the average map over test subjects of each true class).

Beside the CNN, ``metrics.json`` holds two baselines on the same subjects, fitted on the training
split only: the majority class of the training split, and a logistic regression on ventricle and
hippocampal volumes (:mod:`pipeline.evaluate.volume_baseline`) when volumes are available (the
phantom's truth table is found automatically; pass ``volumes_file`` for real data).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # resizing Grad-CAM maps to the image

from pipeline.atomic import atomic_path, save_nifti, write_table
from pipeline.bundles import load_bundle_weights
from pipeline.data.task_tables import CLASS_NAMES, task_table
from pipeline.evaluate.volume_baseline import (
    VOLUME_COLUMNS,
    attach_volumes,
    find_phantom_volumes,
    read_volume_table,
    volume_classifier,
)
from pipeline.metrics.classification import classification_intervals, classification_metrics
from pipeline.run.records import ClassificationMetrics
from pipeline.slices import VIEWS, view_axis

__all__ = [
    "load_classifier",
    "classification_items",
    "ClassificationWriter",
    "GradCAMWriter",
    "classification_baselines",
    "format_metrics_table",
]

log = logging.getLogger("mriharmony.classify")


def load_classifier(network: torch.nn.Module, ckpt_path: str | Path) -> torch.nn.Module:
    return load_bundle_weights(network, ckpt_path, "ad_classification")


def classification_items(
    dataset_dir: str | Path,
    task: str = "cn_ad",
    *,
    split: str | None = "test",
    splits_file: str | Path | None = None,
    sites: list[str] | None = None,
) -> list[dict]:
    """The inference config's dataset: one item per image of ``split`` (all if None or ``"all"``).

    Each item: ``image`` and ``path`` (the image file; ``image`` becomes the tensor), ``label`` (class
    index), ``subject``, ``session``, ``site``, ``diagnosis`` and ``split``.
    """
    table = task_table(dataset_dir, task, splits_file=splits_file, sites=sites)
    if split not in (None, "all"):
        table = table[table["split"] == split]
    if table.empty:
        raise ValueError(f"{dataset_dir}: no subjects of split {split!r} for task {task}")
    return [
        {
            "image": r["image"],
            "path": r["image"],
            "label": int(r["label"]),
            "subject": r["subject"],
            "session": r["session"],
            "site": r["site"],
            "diagnosis": r["diagnosis"],
            "split": r["split"],
        }
        for _, r in table.iterrows()
    ]


class ClassificationWriter:
    """Ignite handler of the inference config: collect every item's class probabilities (the
    postprocessing's softmax), then write ``predictions.tsv`` and ``metrics.json`` (metrics with subject
    bootstrap intervals and the baselines fitted on the training split; see the module docstring).

    Args:
        output_dir: where the two files go.
        dataset_dir, splits_file, sites: where the training rows of the baselines come from.
        task, model, split: recorded in ``metrics.json``.
        n_resamples: subject-level bootstrap resamples (0: none).
        volumes_file: the volume baseline's table; ``"auto"`` finds the phantom's truth, None skips it.
    """

    def __init__(
        self,
        output_dir: str | Path,
        dataset_dir: str | Path,
        *,
        task: str = "cn_ad",
        model: str = "resnet3d",
        split: str | None = "test",
        splits_file: str | Path | None = None,
        sites: list[str] | None = None,
        n_resamples: int = 1000,
        volumes_file: str | Path | None = "auto",
        volume_columns: Sequence[str] = VOLUME_COLUMNS,
    ):
        self.out, self.dataset_dir = Path(os.path.abspath(output_dir)), dataset_dir
        self.task, self.model, self.split, self.splits_file, self.sites = task, model, split, splits_file, sites
        self.n_resamples, self.volumes_file, self.volume_columns = n_resamples, volumes_file, volume_columns
        self.rows: list[dict] = []
        self.probabilities: list[np.ndarray] = []

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def reset(self, engine=None) -> None:
        self.rows, self.probabilities = [], []

    def collect(self, engine) -> None:
        for item, output in zip(engine.state.batch, engine.state.output):
            self.rows.append(
                {k: item[k] for k in ("subject", "session", "site", "diagnosis", "split")}
                | {"label": int(item["label"])}
            )
            self.probabilities.append(output["pred"].detach().float().cpu().numpy().reshape(-1))

    def write(self, engine=None) -> pd.DataFrame:
        names = CLASS_NAMES[self.task]
        probabilities = np.stack(self.probabilities)
        result = pd.DataFrame(self.rows)[["subject", "session", "site", "diagnosis", "label", "split"]]
        for i, name in enumerate(names):
            result[f"prob_{name}"] = probabilities[:, i]
        result["predicted"] = [names[i] for i in probabilities.argmax(axis=1)]
        write_table(self.out / "predictions.tsv", result)
        metrics = classification_metrics(result["label"], probabilities)
        metrics["n_subjects"] = int(result["subject"].nunique())
        intervals = classification_intervals(
            result["label"], probabilities, n_resamples=self.n_resamples, groups=result["subject"]
        )
        full = task_table(self.dataset_dir, self.task, splits_file=self.splits_file, sites=self.sites)
        baselines = classification_baselines(
            full[full["split"] == "train"],
            result,
            len(names),
            volumes_file=self.volumes_file,
            columns=self.volume_columns,
            n_resamples=self.n_resamples,
        )
        report = {
            "task": self.task,
            "classes": names,
            "model": self.model,
            "split": self.split,
            "metrics": metrics,
            "intervals_95": intervals,
            "baselines": baselines,
        }
        ClassificationMetrics.from_json(report).write(self.out / "metrics.json")
        log.info(
            "%s on %d subjects of split %s:\n%s", self.model, len(result), self.split, format_metrics_table(report)
        )
        return result


class GradCAMWriter:
    """Ignite handler of the inference config: Grad-CAM maps (monai.visualize) of the predicted class for
    every item, in template space, and each true class's mean map (see the module docstring).

    Args:
        network: the evaluator's network (eval mode; gradients are enabled for the maps only).
        output_dir: the maps go to ``output_dir/gradcam``.
        model: ``resnet3d`` or ``three_view`` (which layers to hook, where the maps go).
        task: names the mean maps' classes.
        enabled: the config's ``gradcam`` switch.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        output_dir: str | Path,
        *,
        model: str = "resnet3d",
        task: str = "cn_ad",
        enabled: bool = True,
    ):
        self.network, self.folder = network, Path(os.path.abspath(output_dir)) / "gradcam"
        self.model, self.names, self.enabled = model, CLASS_NAMES[task], enabled
        self.maps: list[tuple[int, np.ndarray]] = []
        self.affine: np.ndarray | None = None
        self.cams: list | None = None  # built once: each GradCAM hooks the network's layers

    def attach(self, engine) -> None:
        from ignite.engine import Events

        if not self.enabled:
            return
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write_means)

    def collect(self, engine) -> None:
        self.cams = self.cams or _gradcams(self.network, self.model)
        for item, output in zip(engine.state.batch, engine.state.output):
            img = nib.load(item["path"])
            x = item["image"].as_subclass(torch.Tensor)[None].to(next(self.network.parameters()).device)
            with torch.enable_grad():
                heat = _heat_map(self.cams, x, int(output["pred"].argmax()), img, self.model)
            row = {k: item[k] for k in ("subject", "session", "diagnosis")}
            _save_map(self.folder, row, heat, img)
            self.maps.append((int(item["label"]), heat))
            self.affine = img.affine

    def write_means(self, engine=None) -> None:
        for label, name in enumerate(self.names):
            chosen = [m for y, m in self.maps if y == label]
            if chosen:
                save_nifti(
                    self.folder / f"class-{name}_mean.nii.gz",
                    nib.Nifti1Image(np.mean(chosen, axis=0).astype(np.float32), self.affine),
                )


def _gradcams(net: torch.nn.Module, model: str) -> list:
    """monai.visualize.GradCAM on the last residual stage: one for the 3D ResNet, one per view branch."""
    from monai.visualize import GradCAM

    if model == "three_view":
        return [GradCAM(nn_module=net, target_layers=f"branches.{i}.layer4") for i in range(len(VIEWS))]
    return [GradCAM(nn_module=net, target_layers="layer4")]


def _heat_map(cams: list, x: torch.Tensor, class_idx: int, img: nib.Nifti1Image, model: str) -> np.ndarray:
    """The Grad-CAM map of ``class_idx`` on the image's grid.

    3D model: the map resized to the image. Three-view model: each branch's 2D map placed on its
    view's mid-plane of the image (the plane the network saw), zero elsewhere.
    """
    if model != "three_view":
        heat = cams[0](x, class_idx=class_idx)[0, 0].detach().cpu()
        if tuple(heat.shape) != img.shape:
            heat = F.interpolate(heat[None, None], size=img.shape, mode="trilinear")[0, 0]
        return heat.numpy()
    volume = np.zeros(img.shape, np.float32)
    for cam, view in zip(cams, VIEWS):
        plane = cam(x, class_idx=class_idx)[0, 0].detach().cpu()
        axis = view_axis(img.affine, view)
        size = tuple(n for i, n in enumerate(img.shape) if i != axis)
        if tuple(plane.shape) != size:
            plane = F.interpolate(plane[None, None], size=size, mode="bilinear")[0, 0]
        index = [slice(None)] * 3
        index[axis] = img.shape[axis] // 2
        volume[tuple(index)] = plane.numpy()
    return volume


def classification_baselines(
    train: pd.DataFrame,
    evaluate: pd.DataFrame,
    n_classes: int,
    *,
    volumes_file: str | Path | None = "auto",
    columns: Sequence[str] = VOLUME_COLUMNS,
    n_resamples: int = 1000,
) -> dict[str, dict]:
    """Metrics of the simple baselines on ``evaluate``, fitted on ``train`` only.

    ``majority_class``: always the most frequent training class (balanced accuracy 0.5 by construction).
    ``volume_logistic``: logistic regression on log volumes, when a volume table is given or found.
    """
    if train.empty:
        return {}
    y = evaluate["label"].to_numpy(int)
    majority = np.zeros((len(evaluate), n_classes))
    majority[:, int(train["label"].astype(int).mode().iloc[0])] = 1.0
    n_subjects = int(evaluate["subject"].nunique())
    results = {
        "majority_class": {
            "metrics": {**classification_metrics(y, majority), "n_subjects": n_subjects},
            "intervals_95": classification_intervals(y, majority, n_resamples=n_resamples, groups=evaluate["subject"]),
        }
    }
    path = find_phantom_volumes(train) if volumes_file == "auto" else (volumes_file or None)
    if path is not None:
        volumes = read_volume_table(path, columns)
        probabilities = volume_classifier(
            attach_volumes(train, volumes, columns),
            attach_volumes(evaluate, volumes, columns),
            n_classes=n_classes,
            columns=columns,
        )
        results["volume_logistic"] = {
            "volumes_file": str(path),
            "columns": list(columns),
            "metrics": {**classification_metrics(y, probabilities), "n_subjects": n_subjects},
            "intervals_95": classification_intervals(
                y, probabilities, n_resamples=n_resamples, groups=evaluate["subject"]
            ),
        }
    return results


def format_metrics_table(report: dict) -> str:
    """The CNN and its baselines as a text table (balanced accuracy with its interval, AUC, F1)."""
    rows = [(report.get("model", "cnn"), report["metrics"], report.get("intervals_95", {}))]
    rows += [(name, b["metrics"], b.get("intervals_95", {})) for name, b in report.get("baselines", {}).items()]
    lines = [f"  {'method':<16} {'bal. acc. [95% CI]':<24} {'AUC':>6} {'F1':>6}  images/subjects"]
    for name, m, ci in rows:
        low, high = ci.get("balanced_accuracy", (float("nan"), float("nan")))
        lines.append(
            f"  {name:<16} {m['balanced_accuracy']:.3f} [{low:.2f}, {high:.2f}]{'':<6} {m['auc']:>6.3f} "
            f"{m['f1']:>6.3f}  {m['n']}/{m.get('n_subjects', m['n'])}"
        )
    return "\n".join(lines)


def _save_map(folder: Path, row: pd.Series, heat: np.ndarray, img: nib.Nifti1Image) -> None:
    stem = f"sub-{row['subject']}" + (f"_ses-{row['session']}" if row["session"] else "")
    save_nifti(folder / f"{stem}_gradcam.nii.gz", nib.Nifti1Image(heat.astype(np.float32), img.affine))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    volume = np.asarray(img.dataobj, dtype=np.float32)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    for ax, view in zip(axes, VIEWS):
        axis = view_axis(img.affine, view)
        index = volume.shape[axis] // 2
        ax.imshow(np.flipud(np.take(volume, index, axis=axis).T), cmap="gray", vmin=0, vmax=1)
        ax.imshow(np.flipud(np.take(heat, index, axis=axis).T), cmap="jet", alpha=0.35, vmin=0, vmax=1)
        ax.set_title(view, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"sub-{row['subject']} ({row['diagnosis']})", fontsize=10)
    fig.tight_layout()
    with atomic_path(folder / f"{stem}_gradcam.png") as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
