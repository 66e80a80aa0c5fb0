"""Step 5: into template space: the 2 mm 91 x 109 x 91 MNI box, then a cube resized to 64^3.

One interpolation from the native image to the 2 mm box (the rigid transform applied by ANTs);
the box is then padded to a 109^3 cube (so voxels stay isotropic) and resized to ``size``^3 with
MONAI, whose MetaTensor keeps the affine right.
"""

from __future__ import annotations

from pathlib import Path

import ants
import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Resize, SpatialPad

from pipeline.mni import MNI_BOX_AFFINE, MNI_BOX_SHAPE
from pipeline.preprocess.register import crop_to_nonzero, template_box_image, to_ants

__all__ = ["to_template_box", "to_cube"]


def to_template_box(img: nib.Nifti1Image, mask: np.ndarray, transform: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Resample the image (linear) and its mask onto the 2 mm MNI box with the rigid transform.

    ``img`` must be zero outside ``mask`` (the skull-stripped brain): only the mask's box is resampled.
    """
    box = template_box_image("t1")
    # the brain's box only (plus 2 voxels for the interpolation kernel): the same result for a fraction of the work
    (data, mask_data), affine = crop_to_nonzero(
        mask, img.affine, 2, np.asarray(img.dataobj, dtype=np.float32), mask.astype(np.float32)
    )
    moving = to_ants(data, affine)
    moving_mask = to_ants(mask_data, affine)
    image = ants.apply_transforms(box, moving, [str(transform)], interpolator="linear").numpy()
    box_mask = ants.apply_transforms(box, moving_mask, [str(transform)], interpolator="linear").numpy() > 0.5
    return image.astype(np.float32), box_mask


def to_cube(image: np.ndarray, mask: np.ndarray, size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad a 2 mm box array to a cube and resize it to ``size``^3.

    Returns:
        The resized image, its mask (bool) and the affine of the cube grid (RAS).
    """
    if image.shape != MNI_BOX_SHAPE:
        raise ValueError(f"expected an image on the MNI box {MNI_BOX_SHAPE}, got {image.shape}")
    side = max(MNI_BOX_SHAPE)
    pad = SpatialPad(spatial_size=(side, side, side), mode="constant")
    resize = Resize(spatial_size=(size, size, size), mode="trilinear", anti_aliasing=True)
    tensor = MetaTensor(
        torch.from_numpy(np.stack([image, mask.astype(np.float32)])), affine=torch.as_tensor(MNI_BOX_AFFINE)
    )
    out = resize(pad(tensor))
    affine = np.asarray(out.affine, dtype=np.float64)
    return out[0].numpy().astype(np.float32), out[1].numpy() > 0.5, affine
