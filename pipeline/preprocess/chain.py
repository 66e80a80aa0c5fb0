"""The whole chain for one image: load -> N4 -> skull strip -> rigid registration -> 2 mm box ->
QC numbers and image quality metrics -> [0, 1] -> 64^3, with outputs in BIDS-derivatives layout, a JSON
sidecar and a QC picture; the QC gate (``pipeline.preprocess.gate``) then gives the status ``ok`` or
``qc_failed``.

Resumable: the sidecar is written last and records the configuration digest and the input file;
an image whose sidecar matches and whose outputs all exist is not redone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import nibabel as nib
import numpy as np

from pipeline.atomic import save_nifti, write_json
from pipeline.mni import MNI_BOX_AFFINE, TEMPLATE_NAME
from pipeline.preprocess.config import PreprocessConfig
from pipeline.preprocess.gate import fov_coverage, qc_reasons, template_overlap
from pipeline.preprocess.intensity import masked_minmax
from pipeline.preprocess.load import InputImageError, load_t1
from pipeline.preprocess.quality import image_quality_metrics
from pipeline.run import StageMarker
from pipeline.versions import package_versions

__all__ = ["output_paths", "preprocess_image", "software_versions", "StepError"]

_PACKAGES = ("mriharmony", "SimpleITK", "antspyx", "deepbet", "nibabel", "monai", "torch", "numpy", "scipy")


class StepError(RuntimeError):
    """A step failed; ``step`` names it and the message says why."""

    def __init__(self, step: str, reason: str):
        self.step, self.reason = step, reason
        super().__init__(f"{step}: {reason}")


def software_versions() -> dict[str, str]:
    """The versions a preprocessed image depends on (recorded in its sidecar)."""
    return package_versions(_PACKAGES)


def output_paths(out: str | Path, subject: str, session: str = "", cube_size: int = 64) -> dict[str, Path]:
    """Where the outputs of one image go (BIDS-derivatives names)."""
    out = Path(out)
    ses = f"_ses-{session}" if session else ""
    folder = out / f"sub-{subject}" / (f"ses-{session}" if session else "") / "anat"
    stem = f"sub-{subject}{ses}"
    space = f"{stem}_space-{TEMPLATE_NAME}"
    return {
        "image_2mm": folder / f"{space}_res-2_desc-preproc_T1w.nii.gz",
        "mask_2mm": folder / f"{space}_res-2_desc-brain_mask.nii.gz",
        "image_cube": folder / f"{space}_res-{cube_size}_desc-preproc_T1w.nii.gz",
        "mask_cube": folder / f"{space}_res-{cube_size}_desc-brain_mask.nii.gz",
        "mask_native": folder / f"{stem}_desc-brain_mask.nii.gz",
        "transform": folder / f"{stem}_from-T1w_to-{TEMPLATE_NAME}_mode-image_xfm.mat",
        "qc": out / f"sub-{subject}" / "figures" / f"{stem}_desc-qc_T1w.png",
        "sidecar": folder / f"{space}_res-2_desc-preproc_T1w.json",
    }


def _input_signature(path: str | Path) -> dict[str, Any]:
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _resume_marker(paths: dict[str, Path], config: PreprocessConfig, source: str | Path) -> StageMarker:
    """The image's resume record, kept in its sidecar: the configuration digest and the input file's signature
    (path, size, modification time: a changed or replaced raw image is redone, without hashing every raw image)."""
    return StageMarker(
        paths["sidecar"], {"config": config.digest()}, digests={"source": _input_signature(source)}, key="Resume"
    )


def _up_to_date(paths: dict[str, Path], config: PreprocessConfig, source: str) -> dict | None:
    if not Path(source).exists():
        return None
    needed = [paths[k] for k in paths if k != "qc" or config.output.qc_png]
    if not _resume_marker(paths, config, source).is_complete(*needed):
        return None
    return json.loads(paths["sidecar"].read_text())


def _verdict(qc: dict[str, Any], config: PreprocessConfig) -> dict[str, str]:
    """status / step / reason of a finished image: ``ok``, or ``qc_failed`` with every failed check."""
    reasons = qc_reasons(qc, config.qc)
    if reasons:
        return {"status": "qc_failed", "step": "qc", "reason": "; ".join(reasons)}
    return {"status": "ok", "step": "", "reason": ""}


def _nifti(data: np.ndarray, affine: np.ndarray, dtype: type = np.float32) -> nib.Nifti1Image:
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), affine)
    img.set_qform(affine, code=4)  # 4 = aligned to MNI152
    img.set_sform(affine, code=4)
    img.header.set_xyzt_units("mm", "sec")
    return img


@contextmanager
def _timed(step: str, seconds: dict[str, float]) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    except (InputImageError, StepError):
        raise
    except Exception as exc:  # any library error becomes a failure of this step
        raise StepError(step, f"{type(exc).__name__}: {exc}") from exc
    finally:
        seconds[step] = round(time.perf_counter() - start, 3)


def _limit_threads(threads: int | None) -> None:
    if not threads:
        return
    import SimpleITK as sitk
    import torch

    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(threads)
    torch.set_num_threads(threads)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)


def preprocess_image(
    row: dict[str, Any], config: PreprocessConfig, out: str | Path, *, threads: int | None = None
) -> dict[str, Any]:
    """Run the chain on one cohort row and return its record (status ok / failed, outputs, metrics).

    Never raises for a bad image: the record carries ``status="failed"``, the ``step`` and the ``reason``.
    """
    from pipeline.preprocess.n4 import n4_correct
    from pipeline.preprocess.qc import qc_figure
    from pipeline.preprocess.register import rigid_register
    from pipeline.preprocess.skullstrip import skull_strip
    from pipeline.preprocess.space import to_cube, to_template_box

    _limit_threads(threads)
    subject, session = str(row["subject"]), str(row.get("session") or "")
    paths = output_paths(out, subject, session, config.output.cube_size)
    record: dict[str, Any] = {k: row.get(k) for k in ("subject", "session", "site", "age", "sex", "diagnosis")}
    record["source"] = str(row["path"])
    start = time.perf_counter()

    done = _up_to_date(paths, config, row["path"])
    if done is not None:  # the QC numbers are re-judged: thresholds are not part of the digest
        record.update(
            resumed=True,
            seconds=0.0,
            **_verdict(done["QC"], config),
            **done["QC"],
            **{k: str(v) for k, v in paths.items()},
        )
        return record

    seconds: dict[str, float] = {}
    step = "load"
    try:
        with _timed("load", seconds):
            img = load_t1(
                row["path"],
                four_d=config.input.four_d,
                min_voxel_mm=config.input.min_voxel_mm,
                max_voxel_mm=config.input.max_voxel_mm,
            )
        step = "n4"
        with _timed("n4", seconds):
            if config.n4.enabled:
                corrected, log_bias = n4_correct(img, config.n4)
            else:
                corrected, log_bias = img, None
        step = "skullstrip"
        with _timed("skullstrip", seconds):
            mask = skull_strip(corrected, config.skullstrip, row.get(config.skullstrip.mask_column))
        brain = np.asarray(corrected.dataobj, dtype=np.float32) * mask
        brain_img = nib.Nifti1Image(brain, corrected.affine)
        with tempfile.TemporaryDirectory() as workdir:
            step = "register"
            with _timed("register", seconds):
                rigid = rigid_register(brain_img, config.register, workdir)
            step = "resample"
            with _timed("resample", seconds):
                image_2mm, mask_2mm = to_template_box(brain_img, mask, rigid.transform)
                if not mask_2mm.any():
                    raise StepError("resample", "the brain mask is empty after resampling to the template box")
                raw_percentiles = np.percentile(image_2mm[mask_2mm], [0.5, 50, 99.5])
            step = "qc"
            with _timed("qc", seconds):
                gate_numbers = {
                    "template_overlap": round(template_overlap(mask_2mm), 4),
                    "fov_coverage": round(fov_coverage(rigid.transform, img.affine, img.shape), 4),
                    **image_quality_metrics(np.asarray(img.dataobj), image_2mm, mask_2mm),
                }
            step = "intensity"
            with _timed("intensity", seconds):
                image_2mm = masked_minmax(image_2mm, mask_2mm, config.output.percentiles)
                image_cube, mask_cube, cube_affine = to_cube(image_2mm, mask_2mm, config.output.cube_size)
                image_cube = np.clip(image_cube, 0.0, 1.0) * mask_cube
            step = "write"
            with _timed("write", seconds):
                zooms = img.header.get_zooms()[:3]
                save_nifti(paths["image_2mm"], _nifti(image_2mm, MNI_BOX_AFFINE))
                save_nifti(paths["mask_2mm"], _nifti(mask_2mm, MNI_BOX_AFFINE, np.uint8))
                save_nifti(paths["image_cube"], _nifti(image_cube, cube_affine))
                save_nifti(paths["mask_cube"], _nifti(mask_cube, cube_affine, np.uint8))
                native_mask = nib.Nifti1Image(mask.astype(np.uint8), img.affine)
                native_mask.set_qform(img.affine, code=1)
                native_mask.set_sform(img.affine, code=1)
                save_nifti(paths["mask_native"], native_mask)
                paths["transform"].parent.mkdir(parents=True, exist_ok=True)
                tmp_transform = paths["transform"].with_suffix(".mat.tmp")
                shutil.copyfile(rigid.transform, tmp_transform)
                os.replace(tmp_transform, paths["transform"])
                if config.output.qc_png:
                    qc_figure(image_2mm, mask_2mm, paths["qc"], title=f"sub-{subject} {session}".strip())
        qc = {
            "mask_volume_ml": round(float(mask.sum() * np.prod(zooms) / 1000.0), 2),
            "registration_similarity": round(rigid.similarity, 4),
            "brain_p0_5": float(raw_percentiles[0]),
            "brain_median": float(raw_percentiles[1]),
            "brain_p99_5": float(raw_percentiles[2]),
            "log_bias_range": (
                round(float(np.ptp(np.asarray(log_bias.dataobj)[mask])), 4) if log_bias is not None else 0.0
            ),
            **gate_numbers,
        }
        verdict = _verdict(qc, config)
        seconds["total"] = round(time.perf_counter() - start, 3)
        write_json(
            paths["sidecar"],
            {
                "Description": "Preprocessed T1w: N4, skull strip, rigid to template, 2 mm MNI box, "
                "[0, 1] inside the brain",
                "SpatialReference": TEMPLATE_NAME,
                "Sources": [str(row["path"])],
                "Source": _input_signature(row["path"]),
                "ConfigDigest": config.digest(),
                "Resume": _resume_marker(paths, config, row["path"]).record(),
                "Config": config.to_dict(),
                "InputVoxelSizeMM": [round(float(z), 4) for z in zooms],
                "InputShape": list(img.shape),
                "Seconds": seconds,
                "QC": qc,
                "QCVerdict": verdict,
                "Software": software_versions(),
                "Outputs": {k: str(v.relative_to(Path(out))) for k, v in paths.items()},
            },
        )
        record.update(resumed=False, seconds=seconds["total"], **verdict, **qc, **{k: str(v) for k, v in paths.items()})
    except InputImageError as exc:
        record.update(status="failed", step=step, reason=exc.reason, seconds=round(time.perf_counter() - start, 3))
    except StepError as exc:
        record.update(status="failed", step=exc.step, reason=exc.reason, seconds=round(time.perf_counter() - start, 3))
    record["step_seconds"] = json.dumps(seconds)
    return record
