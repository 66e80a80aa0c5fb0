"""Step 4: rigid (6-DOF) registration of the brain to the MNI152 2009a template with ANTsPy.

Fixed image: the skull-stripped template T1 on the 91 x 109 x 91 2 mm MNI box; moving image:
the bias-corrected, skull-stripped brain. Two levels (8 mm and 4 mm: shrink 4 and 2 of the 2 mm
template), 100 and 50 iterations, Mattes mutual information with 10 % random sampling. Measured on
four 1 mm phantom heads: 0.51 mm mean error at brain voxels (max 0.57) in 2.5 s; 20 % sampling
gave the same mean in 3.9 s; adding the 2 mm level (200/100/50) gave 0.33-0.48 mm in 11 s. The antspyx defaults (2100/1200/1200/10 over 4
levels) are the slow reference of the benchmark.
The transform is ANTs' own (an ITK ``.mat``): used to resample the T1w onto the template grid,
it maps template points to T1w points (the fMRIPrep ``from-T1w_to-<template>`` convention).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ants
import nibabel as nib
import numpy as np

from pipeline.preprocess.config import RegisterConfig
from pipeline.templates import MNI_BOX_AFFINE, template_on_box

__all__ = ["RigidResult", "rigid_register", "template_box_image", "to_ants"]


def to_ants(data: np.ndarray, affine: np.ndarray) -> ants.ANTsImage:
    """A float32 array with its RAS affine as an ANTs image (units set, so ANTs does not warn)."""
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    return ants.from_nibabel_nifti(img)


@dataclass
class RigidResult:
    transform: Path  # ANTs/ITK .mat file (in a temporary folder owned by the caller)
    similarity: float  # Pearson correlation of the registered brain and the template inside the template mask


def template_box_image(name: str = "t1") -> ants.ANTsImage:
    """The template ``t1`` (or ``brain`` mask) on the 2 mm MNI box, as an ANTs image."""
    return to_ants(template_on_box()[name], MNI_BOX_AFFINE)


def rigid_register(brain: nib.Nifti1Image, config: RegisterConfig, workdir: str | Path) -> RigidResult:
    """Register ``brain`` rigidly to the template; the transform is written into ``workdir``."""
    os.environ["ANTS_RANDOM_SEED"] = str(config.seed)  # ANTs reads its sampling seed from here
    fixed = template_box_image("t1")
    moving = to_ants(np.asarray(brain.dataobj), brain.affine)
    prefix = str(Path(tempfile.mkdtemp(dir=workdir)) / "rigid_")
    result = ants.registration(
        fixed, moving, type_of_transform="Rigid", outprefix=prefix,
        aff_metric=config.metric, aff_random_sampling_rate=config.random_sampling_rate,
        aff_iterations=tuple(config.iterations), aff_shrink_factors=tuple(config.shrink_factors),
        aff_smoothing_sigmas=tuple(config.smoothing_sigmas), verbose=False,
    )
    transform = Path(workdir) / "rigid.mat"
    shutil.copyfile(result["fwdtransforms"][0], transform)
    warped = result["warpedmovout"].numpy()
    mask = template_on_box()["brain"]
    similarity = float(np.corrcoef(warped[mask], fixed.numpy()[mask])[0, 1])
    return RigidResult(transform=transform, similarity=similarity)
