"""Synthetic-image quality metrics on cases with known answers: copies, identical sets, shifted sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.evaluate.synthetic_quality import (
    LayerFeatures,
    fid,
    gaussian_mmd,
    memorization_flags,
    nearest_real,
    pairwise_ms_ssim,
    real_nearest_neighbour_ssim,
)
from pipeline.nets import build_classifier


def _volumes(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """Smooth random blobs in [0, 1] (SSIM needs structure, not white noise)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, 4, 4, 4, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(size,) * 3, mode="trilinear", align_corners=False)


def test_a_copied_training_image_is_found_and_flagged_as_memorized():
    real = _volumes(6, 0)
    synthetic = torch.cat([real[2:3], _volumes(1, 9)])
    nearest = nearest_real(synthetic, real)
    assert nearest["index"][0] == 2 and nearest["ssim"][0] == pytest.approx(1.0, abs=1e-5)
    assert nearest["psnr"][0] > 60 and nearest["psnr"][1] < 40
    real_nn = real_nearest_neighbour_ssim(real)
    assert real_nn.shape == (6,) and (real_nn < 0.999).all()  # never the image itself
    assert memorization_flags(nearest["ssim"], real_nn).tolist() == [True, False]


def test_a_traveling_subject_does_not_raise_the_memorization_threshold():
    """Subject t scanned at two sites (nearly the same image) and a near-copy of subject b's image: counting
    t's two scans as a "pair of real images" sets the threshold above the copy; excluding same-subject pairs
    flags it."""
    real = _volumes(5, 3)
    real = torch.cat([real, real[:1] * 0.98 + 0.01])  # image 5: subject of image 0 at another site
    subjects = ["t", "b", "c", "d", "e", "t"]
    copy = real[1:2] * 0.97 + 0.015
    nearest = nearest_real(copy, real)
    assert nearest["index"][0] == 1
    with_same_subject = real_nearest_neighbour_ssim(real)
    assert not memorization_flags(nearest["ssim"], with_same_subject)[0]  # the flaw: the two scans of t set the bar
    without = real_nearest_neighbour_ssim(real, subjects)
    assert without.max() < with_same_subject.max() and memorization_flags(nearest["ssim"], without)[0]


def test_nearest_real_ssim_is_measured_inside_the_brain():
    """Two images equal in a zero background and different inside the brain: the in-brain SSIM is low, where
    the whole-cube SSIM would be near 1."""
    brain = torch.zeros(2, 1, 32, 32, 32)
    brain[:, :, 10:22, 10:22, 10:22] = _volumes(2, 5, size=12)
    nearest = nearest_real(brain[:1], brain[1:])
    from monai.metrics import SSIMMetric

    cube = float(SSIMMetric(spatial_dims=3, data_range=1.0)(brain[:1], brain[1:]))
    assert nearest["ssim"][0] < cube - 0.1  # 0.67 against 0.83 here


def test_ms_ssim_diversity_is_one_for_copies_and_lower_for_distinct_images():
    copies = _volumes(1, 0).repeat(4, 1, 1, 1, 1)
    assert pairwise_ms_ssim(copies) == pytest.approx(1.0, abs=1e-5)
    assert pairwise_ms_ssim(_volumes(4, 1)) < 0.9
    assert pairwise_ms_ssim(_volumes(3, 2, size=64)) < 0.9  # five scales fit at 64^3


def test_mmd_and_fid_are_zero_for_identical_sets_and_grow_with_a_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    assert gaussian_mmd(x, x) == pytest.approx(0.0, abs=1e-12)
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)
    near, far = gaussian_mmd(x, x + 0.5), gaussian_mmd(x, x + 2.0)
    assert 0 < near < far
    assert fid(x, x + 2.0) == pytest.approx(5 * 2.0**2, rel=1e-6)  # same covariance: |mean shift|^2


def test_layer_features_of_a_monai_resnet():
    net = build_classifier("resnet3d", 2, widths=(4, 8, 8, 16))
    features = LayerFeatures(net, "avgpool")(_volumes(5, 3), batch_size=2)
    assert features.shape == (5, 16) and np.isfinite(features).all()


def test_quality_report_flags_a_generator_that_copies_training_images(tmp_path):
    import nibabel as nib
    import pandas as pd

    from pipeline.evaluate.synthetic_quality import quality_report

    def save(volume: torch.Tensor, name: str) -> str:
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(volume[0].numpy(), np.eye(4)), path)
        return str(path)

    real_images = _volumes(5, 0, size=16)
    real = pd.DataFrame({"image": [save(v, f"real{i}") for i, v in enumerate(real_images)], "diagnosis": "AD"})
    copies = [save(real_images[i], f"copy{i}") for i in (0, 3)]
    novel = [save(v, f"novel{i}") for i, v in enumerate(_volumes(3, 7, size=16))]
    synthetic = pd.DataFrame({"image": copies + novel, "diagnosis": "AD", "generator": ["copier"] * 2 + ["novel"] * 3})

    def report_with_encoder(seed: int) -> pd.DataFrame:
        torch.manual_seed(seed)  # the encoder is random: its seed, not the test order, must decide it
        net = build_classifier("resnet3d", 2, widths=(4, 8, 8, 16))
        return quality_report(synthetic, real, encoder=LayerFeatures(net, "avgpool"), size=16).set_index("generator")

    report = report_with_encoder(0)
    assert report.loc["copier", "memorized"] == 2 and report.loc["copier", "nearest_ssim_mean"] == pytest.approx(1.0)
    # independent draws from the real images' distribution: not copies (one may still beat the small
    # real-real reference by chance, which is why the report gives a fraction, not a verdict)
    assert report.loc["novel", "memorized_fraction"] < 1 and report.loc["novel", "nearest_ssim_mean"] < 0.99
    assert report.loc["novel", "n_real"] == 5 and report.loc["copier", "memorized_fraction"] == 1
    # a random encoder's features order the two generators' MMD most of the time, not always (about 1 in 7
    # encoders puts the copier above): the median over seven encoders must
    margins = []
    for seed in range(7):
        by_seed = report_with_encoder(seed)
        margins.append(by_seed.loc["novel", "mmd"] - by_seed.loc["copier", "mmd"])
    assert np.median(margins) > 0.05, margins
