"""Traveling-subject fidelity: known answers for the metrics (inside the brain, whole cube beside) and the
pairing of rows."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.evaluate import image_fidelity, traveling_fidelity
from pipeline.evaluate.fidelity import MaskedFidelityMetric, brain_mask


def test_image_fidelity_known_answers():
    reference = torch.full((1, 1, 16, 16, 16), 0.5)
    same = image_fidelity(reference.clone(), reference)
    assert same["mae"] == 0 and same["ssim"] == pytest.approx(1.0)
    shifted = image_fidelity(reference + 0.1, reference)
    assert shifted["mae"] == pytest.approx(0.1, abs=1e-6)
    assert shifted["psnr"] == pytest.approx(20.0, abs=1e-3)  # 10 log10(1 / 0.1^2)


def test_fidelity_is_measured_inside_the_brain_not_over_the_background():
    """A brain of 8^3 voxels in a 32^3 cube, off by 0.1 inside: the in-brain MAE is 0.1; over the cube the
    zero background divides it by 64 (the flattering number the whole-cube metric gave)."""
    reference = torch.zeros(1, 1, 32, 32, 32)
    reference[..., 12:20, 12:20, 12:20] = 0.5
    image = reference.clone()
    image[..., 12:20, 12:20, 12:20] += 0.1
    result = image_fidelity(image, reference)
    assert result["mae"] == pytest.approx(0.1, abs=1e-6) and result["psnr"] == pytest.approx(20.0, abs=1e-3)
    assert result["mae_cube"] == pytest.approx(0.1 / 64, abs=1e-6)
    assert result["ssim"] < result["ssim_cube"]  # the background's perfect SSIM no longer counts
    noisy = reference.clone()
    noisy[..., 12:20, 12:20, 12:20] += 0.2 * torch.rand(8, 8, 8, generator=torch.Generator().manual_seed(0)) - 0.1
    inside = image_fidelity(noisy, reference)
    assert 1 - inside["ssim"] > 5 * (1 - inside["ssim_cube"])  # the cube hides most of the loss of structure
    # the Ignite metric computes the same numbers from (prediction, [reference, mask])
    metric = MaskedFidelityMetric("mae")
    metric(image, torch.cat([reference, brain_mask(image, reference).float()], dim=1))
    assert float(metric.aggregate()) == pytest.approx(result["mae"], abs=1e-6)


def test_traveling_fidelity_pairs_subjects(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.random((16, 16, 16)).astype(np.float32)

    def save(name: str, data: np.ndarray) -> str:
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
        return str(path)

    table = pd.DataFrame(
        [
            # trav1: original off by 0.2, harmonized off by 0.05 -> harmonized is closer
            {
                "subject": "trav1",
                "site": "a",
                "harmonized": True,
                "status": "ok",
                "image_cube": save("h1", truth + 0.05),
                "source_image_cube": save("x1", truth + 0.2),
            },
            {
                "subject": "trav1",
                "site": "b",
                "harmonized": False,
                "status": "ok",
                "image_cube": save("y1", truth),
                "source_image_cube": "",
            },
            # s2 has no image at site b: not a traveling subject
            {
                "subject": "s2",
                "site": "a",
                "harmonized": True,
                "status": "ok",
                "image_cube": save("h2", truth),
                "source_image_cube": save("x2", truth),
            },
        ]
    )
    result = traveling_fidelity(table, output_site="b")
    assert list(result["subject"]) == ["trav1"]
    assert result.loc[0, "harmonized_mae"] == pytest.approx(0.05, abs=1e-5)
    assert result.loc[0, "identity_mae"] == pytest.approx(0.2, abs=1e-5)
    assert traveling_fidelity(table, output_site="b", subjects=["s2"]).empty


def test_traveling_fidelity_uses_the_union_of_both_brain_masks(tmp_path):
    """The mask files of the input and of the reference decide where the error is measured, the same mask for
    the harmonized image and the identity baseline."""
    reference = np.zeros((24, 24, 24), np.float32)
    reference[6:18, 6:18, 6:18] = 0.5
    source_mask = np.zeros_like(reference)
    source_mask[6:18, 6:18, 6:12] = 1  # the input's brain covers half the reference's
    reference_mask = (reference > 0).astype(np.float32)

    def save(name: str, data: np.ndarray) -> str:
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
        return str(path)

    table = pd.DataFrame(
        [
            {
                "subject": "t",
                "site": "a",
                "harmonized": True,
                "status": "ok",
                "image_cube": save("h", reference + 0.1 * reference_mask),
                "source_image_cube": save("x", reference * source_mask),
                "mask_cube": save("mx", source_mask),
            },
            {
                "subject": "t",
                "site": "b",
                "harmonized": False,
                "status": "ok",
                "image_cube": save("y", reference),
                "source_image_cube": "",
                "mask_cube": save("my", reference_mask),
            },
        ]
    )
    result = traveling_fidelity(table, output_site="b").iloc[0]
    assert result["harmonized_mae"] == pytest.approx(0.1, abs=1e-5)  # over the union (the reference's 12^3 brain)
    assert result["identity_mae"] == pytest.approx(0.25, abs=1e-5)  # half the union is 0 instead of 0.5
    assert result["identity_mae_cube"] == pytest.approx(0.25 * 12**3 / 24**3, abs=1e-5)
