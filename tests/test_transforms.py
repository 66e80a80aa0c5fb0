"""ThreeViewMidSlicesd gives the same slices as `mriharmony slices --mode mid`."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from pipeline.slices import view_axis
from pipeline.transforms import ThreeViewMidSlicesd


def test_mid_slices_as_channels(tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.random((16, 16, 16)).astype(np.float32)
    pir = np.array([[0, 0, -2, 0], [-2, 0, 0, 0], [0, -2, 0, 0], [0, 0, 0, 1.0]])
    nib.save(nib.Nifti1Image(volume, pir), tmp_path / "v.nii.gz")
    load = Compose(
        [
            LoadImaged("image", image_only=True),
            EnsureChannelFirstd("image", channel_dim="no_channel"),
            ThreeViewMidSlicesd("image"),
        ]
    )
    out = load({"image": str(tmp_path / "v.nii.gz")})["image"]
    assert out.shape == (3, 16, 16)
    for channel, view in enumerate(("axial", "coronal", "sagittal")):
        axis = view_axis(pir, view)
        np.testing.assert_array_equal(out[channel].numpy(), np.take(volume, 8, axis=axis))
    with pytest.raises(ValueError, match="differ in shape"):
        ThreeViewMidSlicesd("image")({"image": torch.rand(1, 8, 10, 12)})
