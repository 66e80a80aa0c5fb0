"""Traveling-subject fidelity: known answers for the metrics and the pairing of rows."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.evaluate import image_fidelity, traveling_fidelity


def test_image_fidelity_known_answers():
    reference = torch.full((1, 1, 16, 16, 16), 0.5)
    same = image_fidelity(reference.clone(), reference)
    assert same["mae"] == 0 and same["ssim"] == pytest.approx(1.0)
    shifted = image_fidelity(reference + 0.1, reference)
    assert shifted["mae"] == pytest.approx(0.1, abs=1e-6)
    assert shifted["psnr"] == pytest.approx(20.0, abs=1e-3)  # 10 log10(1 / 0.1^2)


def test_traveling_fidelity_pairs_subjects(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.random((16, 16, 16)).astype(np.float32)

    def save(name: str, data: np.ndarray) -> str:
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
        return str(path)

    table = pd.DataFrame([
        # trav1: original off by 0.2, harmonized off by 0.05 -> harmonized is closer
        {"subject": "trav1", "site": "a", "harmonized": True, "status": "ok",
         "image_cube": save("h1", truth + 0.05), "source_image_cube": save("x1", truth + 0.2)},
        {"subject": "trav1", "site": "b", "harmonized": False, "status": "ok", "image_cube": save("y1", truth),
         "source_image_cube": ""},
        # s2 has no image at site b: not a traveling subject
        {"subject": "s2", "site": "a", "harmonized": True, "status": "ok", "image_cube": save("h2", truth),
         "source_image_cube": save("x2", truth)},
    ])
    result = traveling_fidelity(table, output_site="b")
    assert list(result["subject"]) == ["trav1"]
    assert result.loc[0, "harmonized_mae"] == pytest.approx(0.05, abs=1e-5)
    assert result.loc[0, "identity_mae"] == pytest.approx(0.2, abs=1e-5)
    assert traveling_fidelity(table, output_site="b", subjects=["s2"]).empty
