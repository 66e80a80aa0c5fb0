"""AD classification inference: per-subject probabilities, metrics with bootstrap intervals, and
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

import os

import logging
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from pipeline.atomic import atomic_path, save_nifti, write_json, write_table
from pipeline.bundles import load_bundle_weights
from pipeline.downstream import CLASS_NAMES, task_table
from pipeline.evaluate.classification import classification_intervals, classification_metrics
from pipeline.evaluate.volume_baseline import (VOLUME_COLUMNS, attach_volumes, find_phantom_volumes, read_volume_table,
                                               volume_classifier)
from pipeline.transforms.slices import VIEWS
from pipeline.slices import view_axis

__all__ = ["load_classifier", "predict_classes", "classification_baselines", "format_metrics_table"]

log = logging.getLogger("mriharmony.classify")


def load_classifier(network: torch.nn.Module, ckpt_path: str | Path) -> torch.nn.Module:
    return load_bundle_weights(network, ckpt_path, "ad_classification")


def _input(path: str, model: str, spatial_size: tuple[int, int, int]) -> tuple[torch.Tensor, nib.Nifti1Image]:
    img = nib.load(path)
    x = torch.from_numpy(np.asarray(img.dataobj, dtype=np.float32))[None, None]
    if tuple(x.shape[2:]) != tuple(spatial_size):
        x = F.interpolate(x, size=tuple(spatial_size), mode="area")
    if model == "three_view":
        volume = x[0, 0]
        planes = [torch.select(volume, view_axis(img.affine, v), volume.shape[view_axis(img.affine, v)] // 2)
                  for v in VIEWS]
        x = torch.stack(planes)[None]
    return x, img


def predict_classes(network: torch.nn.Module, ckpt_path: str | Path, dataset_dir: str | Path, output_dir: str | Path, *,
                    task: str = "cn_ad", model: str = "resnet3d", split: str | None = "test",
                    splits_file: str | Path | None = None, sites: list[str] | None = None,
                    spatial_size: tuple[int, int, int] = (64, 64, 64), gradcam: bool = False,
                    n_resamples: int = 1000, volumes_file: str | Path | None = "auto",
                    volume_columns: Sequence[str] = VOLUME_COLUMNS, device: str = "cpu") -> pd.DataFrame:
    """Predict every subject of ``split`` (all if None or ``"all"``); write predictions, metrics and maps.

    ``volumes_file``: a TSV of regional volumes for the volume baseline; ``"auto"`` finds the phantom's
    truth table, None (or an empty string) skips the volume baseline.
    """
    out = Path(os.path.abspath(output_dir))
    net = load_classifier(network, ckpt_path).to(device)
    names = CLASS_NAMES[task]
    full = task_table(dataset_dir, task, splits_file=splits_file, sites=sites)
    table = full
    if split not in (None, "all"):
        table = table[table["split"] == split]
    if table.empty:
        raise ValueError(f"{dataset_dir}: no subjects of split {split!r} for task {task}")
    probabilities, maps = [], []
    cams = _gradcams(net, model) if gradcam else None
    for _, row in table.iterrows():
        x, img = _input(row["image"], model, spatial_size)
        x = x.to(device)
        with torch.no_grad():
            probabilities.append(torch.softmax(net(x), dim=1)[0].cpu().numpy())
        if cams is not None:
            heat = _heat_map(cams, x, int(probabilities[-1].argmax()), img, model)
            maps.append(heat)
            _save_map(out / "gradcam", row, heat, img)
    probabilities = np.stack(probabilities)
    result = table[["subject", "session", "site", "diagnosis", "label", "split"]].copy().reset_index(drop=True)
    for i, name in enumerate(names):
        result[f"prob_{name}"] = probabilities[:, i]
    result["predicted"] = [names[i] for i in probabilities.argmax(axis=1)]
    write_table(out / "predictions.tsv", result)
    metrics = classification_metrics(result["label"], probabilities)
    metrics["n_subjects"] = int(result["subject"].nunique())
    intervals = classification_intervals(result["label"], probabilities, n_resamples=n_resamples,
                                         groups=result["subject"])
    baselines = classification_baselines(full[full["split"] == "train"], table, len(names), volumes_file=volumes_file,
                                         columns=volume_columns, n_resamples=n_resamples)
    report = {"task": task, "classes": names, "model": model, "split": split, "metrics": metrics,
              "intervals_95": intervals, "baselines": baselines}
    write_json(out / "metrics.json", report)
    log.info("%s on %d subjects of split %s:\n%s", model, len(result), split, format_metrics_table(report))
    if maps:
        first = nib.load(table.iloc[0]["image"])
        for label, name in enumerate(names):
            chosen = [m for m, y in zip(maps, result["label"]) if y == label]
            if chosen:
                save_nifti(out / "gradcam" / f"class-{name}_mean.nii.gz",
                           nib.Nifti1Image(np.mean(chosen, axis=0).astype(np.float32), first.affine))
    return result


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


def classification_baselines(train: pd.DataFrame, evaluate: pd.DataFrame, n_classes: int, *,
                             volumes_file: str | Path | None = "auto", columns: Sequence[str] = VOLUME_COLUMNS,
                             n_resamples: int = 1000) -> dict[str, dict]:
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
    results = {"majority_class": {"metrics": {**classification_metrics(y, majority), "n_subjects": n_subjects},
                                  "intervals_95": classification_intervals(y, majority, n_resamples=n_resamples,
                                                                           groups=evaluate["subject"])}}
    path = find_phantom_volumes(train) if volumes_file == "auto" else (volumes_file or None)
    if path is not None:
        volumes = read_volume_table(path, columns)
        probabilities = volume_classifier(attach_volumes(train, volumes, columns), attach_volumes(evaluate, volumes, columns),
                                          n_classes=n_classes, columns=columns)
        results["volume_logistic"] = {
            "volumes_file": str(path), "columns": list(columns),
            "metrics": {**classification_metrics(y, probabilities), "n_subjects": n_subjects},
            "intervals_95": classification_intervals(y, probabilities, n_resamples=n_resamples,
                                                     groups=evaluate["subject"])}
    return results


def format_metrics_table(report: dict) -> str:
    """The CNN and its baselines as a text table (balanced accuracy with its interval, AUC, F1)."""
    rows = [(report.get("model", "cnn"), report["metrics"], report.get("intervals_95", {}))]
    rows += [(name, b["metrics"], b.get("intervals_95", {})) for name, b in report.get("baselines", {}).items()]
    lines = [f"  {'method':<16} {'bal. acc. [95% CI]':<24} {'AUC':>6} {'F1':>6}  images/subjects"]
    for name, m, ci in rows:
        low, high = ci.get("balanced_accuracy", (float("nan"), float("nan")))
        lines.append(f"  {name:<16} {m['balanced_accuracy']:.3f} [{low:.2f}, {high:.2f}]{'':<6} {m['auc']:>6.3f} "
                     f"{m['f1']:>6.3f}  {m['n']}/{m.get('n_subjects', m['n'])}")
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
