"""AD classification inference: per-subject probabilities, metrics with bootstrap intervals, and
Grad-CAM maps (monai.visualize) for the 3D model.

Outputs in ``output_dir``: ``predictions.tsv`` (subject, session, site, diagnosis, label, one
probability per class, predicted class), ``metrics.json`` (accuracy, precision, recall, F1, balanced
accuracy, AUC, confusion matrix, each with a bootstrap 95% interval), and with ``gradcam=True`` (3D
model) ``gradcam/sub-*_gradcam.nii.gz`` (the map on the input image's grid and affine, i.e. in template
space), ``gradcam/sub-*_gradcam.png`` (mid-slice overlays) and ``gradcam/class-<NAME>_mean.nii.gz``
(the average map over test subjects of each true class).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from pipeline.atomic import atomic_path, save_nifti, write_json, write_table
from pipeline.bundles import load_bundle_weights
from pipeline.downstream import CLASS_NAMES, task_table
from pipeline.evaluate.classification import classification_intervals, classification_metrics
from pipeline.transforms.slices import VIEWS
from pipeline.slices import view_axis

__all__ = ["load_classifier", "predict_classes"]


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
                    n_resamples: int = 1000, device: str = "cpu") -> pd.DataFrame:
    """Predict every subject of ``split`` (all if None or ``"all"``); write predictions, metrics and maps."""
    out = Path(output_dir)
    net = load_classifier(network, ckpt_path).to(device)
    names = CLASS_NAMES[task]
    table = task_table(dataset_dir, task, splits_file=splits_file, sites=sites)
    if split not in (None, "all"):
        table = table[table["split"] == split]
    if table.empty:
        raise ValueError(f"{dataset_dir}: no subjects of split {split!r} for task {task}")
    probabilities, maps = [], []
    cam = None
    if gradcam:
        if model != "resnet3d":
            raise ValueError("gradcam is implemented for the 3D model (resnet3d)")
        from monai.visualize import GradCAM

        cam = GradCAM(nn_module=net, target_layers="layer4")
    for _, row in table.iterrows():
        x, img = _input(row["image"], model, spatial_size)
        x = x.to(device)
        with torch.no_grad():
            probabilities.append(torch.softmax(net(x), dim=1)[0].cpu().numpy())
        if cam is not None:
            heat = cam(x, class_idx=int(probabilities[-1].argmax()))[0, 0].detach().cpu().numpy()
            if heat.shape != img.shape:
                heat = F.interpolate(torch.from_numpy(heat)[None, None], size=img.shape, mode="trilinear")[0, 0].numpy()
            maps.append(heat)
            _save_map(out / "gradcam", row, heat, img)
    probabilities = np.stack(probabilities)
    result = table[["subject", "session", "site", "diagnosis", "label", "split"]].copy().reset_index(drop=True)
    for i, name in enumerate(names):
        result[f"prob_{name}"] = probabilities[:, i]
    result["predicted"] = [names[i] for i in probabilities.argmax(axis=1)]
    write_table(out / "predictions.tsv", result)
    metrics = classification_metrics(result["label"], probabilities)
    intervals = classification_intervals(result["label"], probabilities, n_resamples=n_resamples)
    write_json(out / "metrics.json", {"task": task, "classes": names, "model": model, "split": split,
                                      "metrics": metrics, "intervals_95": intervals})
    if maps:
        first = nib.load(table.iloc[0]["image"])
        for label, name in enumerate(names):
            chosen = [m for m, y in zip(maps, result["label"]) if y == label]
            if chosen:
                save_nifti(out / "gradcam" / f"class-{name}_mean.nii.gz",
                           nib.Nifti1Image(np.mean(chosen, axis=0).astype(np.float32), first.affine))
    return result


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
