"""Synthetic images by class translation (Wang 2020): each training image through the CN <-> AD CycleGAN.

The checkpoint is a cyclegan_harmonization run with ``domain_key=diagnosis`` (source CN, target AD):
G_X turns a CN image into a synthetic AD image, G_Y an AD image into a synthetic CN one. Only the
``train`` split is translated (the generator itself was trained on training subjects only), so no
validation or test anatomy can reach training. Every output carries its provenance in ``synthetic.tsv``
and a JSON sidecar: generator, checkpoint SHA-256, source subject and image, class, seed.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from monai.transforms import Resize

from pipeline import __version__
from pipeline.atomic import save_nifti, write_json, write_table
from pipeline.augment.geometry import resized_affine
from pipeline.cohort import attach_splits, find_splits_file, read_splits
from pipeline.harmonize import load_generator, read_harmonizer_info
from pipeline.preprocess.batch import read_preprocessed
from pipeline.run import StageMarker, file_sha256
from pipeline.table_paths import resolve_paths

__all__ = ["translate_training_images", "read_synthetic"]

GENERATOR = "translation"


def _output(out: Path, subject: str, session: str, target: str) -> Path:
    stem = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    return out / f"sub-{subject}" / f"{stem}_space-MNI152NLin2009aSym_res-64_desc-translatedto{target}_T1w.nii.gz"


def translate_training_images(
    dataset_dir: str | Path,
    checkpoint: str | Path,
    out: str | Path,
    *,
    splits_file: str | Path | None = None,
    device: str = "cpu",
) -> pd.DataFrame:
    """Translate every training image of the checkpoint's two classes to the other class.

    Returns the synthetic table (also ``out/synthetic.tsv``): image, diagnosis (the new class),
    generator, checkpoint_sha256, source_subject, source_image, source_diagnosis, seed (none: the
    translation is deterministic, recorded as -1), site, age, sex. Re-runs skip finished images.
    """
    out = Path(os.path.abspath(out))  # workers get absolute paths; tables store them relative to themselves
    info = read_harmonizer_info(checkpoint)
    if info.get("domain_key", "site") != "diagnosis":
        raise ValueError(
            f"{checkpoint}: a class translator has domain_key 'diagnosis', this one maps "
            f"{info.get('domain_key', 'site')} {info['source_site']} <-> {info['target_site']}"
        )
    source, target = info["source_site"], info["target_site"]
    sha = file_sha256(checkpoint)
    table = attach_splits(read_preprocessed(dataset_dir), read_splits(find_splits_file(dataset_dir, splits_file)))
    table = table[(table["split"] == "train") & table["diagnosis"].isin([source, target])]
    generators = {
        source: load_generator(checkpoint, "to_target").to(device),
        target: load_generator(checkpoint, "to_source").to(device),
    }
    trained = tuple(info.get("spatial_size") or ())
    rows = []
    for _, row in table.iterrows():
        new_class = target if row["diagnosis"] == source else source
        path = _output(out, row["subject"], row["session"], new_class)
        sidecar = path.with_name(path.name.replace(".nii.gz", ".json"))
        record = {
            "image": str(path),
            "diagnosis": new_class,
            "generator": GENERATOR,
            "checkpoint_sha256": sha,
            "source_subject": row["subject"],
            "source_image": row["image_cube"],
            "source_diagnosis": row["diagnosis"],
            "seed": -1,
            "site": row["site"],
            "age": row["age"],
            "sex": row["sex"],
        }
        marker = StageMarker(sidecar, {"generator": GENERATOR}, digests={"checkpoint": sha}, key="Resume")
        if not marker.is_complete(path):
            img = nib.load(row["image_cube"])
            x = torch.from_numpy(np.asarray(img.dataobj, dtype=np.float32))[None, None]
            mask = torch.from_numpy((np.asarray(nib.load(row["mask_cube"]).dataobj) > 0).astype(np.float32))[None, None]
            affine = img.affine
            if trained and tuple(x.shape[2:]) != trained:  # e.g. a 32^3 translator: as in training, area resize
                if len(set(x.shape[2:])) != 1 or len(set(trained)) != 1:
                    raise ValueError(
                        f"{row['image_cube']}: image is {tuple(x.shape[2:])}, the translator was trained "
                        f"at {trained}; only cubes can be resized"
                    )
                resize = Resize(trained, mode="area")
                x, mask = resize(x[0])[None], resize(mask[0])[None]
                affine = resized_affine(img.affine, img.shape[0], trained[0])
            with torch.no_grad():
                y = generators[row["diagnosis"]](torch.as_tensor(x).to(device))[0, 0].cpu().numpy()
            keep = np.asarray(mask[0, 0]) >= 0.5
            save_nifti(path, nib.Nifti1Image((y * keep).astype(np.float32), affine))
            write_json(
                sidecar,
                {
                    "Generator": GENERATOR,
                    "Checkpoint": str(checkpoint),
                    "CheckpointSHA256": sha,
                    "SourceSubject": row["subject"],
                    "SourceImage": row["image_cube"],
                    "SourceDiagnosis": row["diagnosis"],
                    "Diagnosis": new_class,
                    "Version": __version__,
                    "Resume": marker.record(),
                },
            )
        rows.append(record)
    result = pd.DataFrame(rows)
    write_table(out / "synthetic.tsv", result)
    return result


def read_synthetic(path: str | Path) -> pd.DataFrame:
    """A synthetic table (``synthetic.tsv`` or its folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "synthetic.tsv"
    return resolve_paths(pd.read_csv(path, sep="\t", dtype={"source_subject": str}, keep_default_na=False), path.parent)
