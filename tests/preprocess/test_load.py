"""Every bad input the chain must refuse, with its reason; canonical reorientation keeps world positions."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pipeline.preprocess.load import InputImageError, load_t1


def _save(path: Path, data: np.ndarray, affine: np.ndarray | None = None, codes: int = 1) -> Path:
    affine = np.diag([1.0, 1.0, 1.0, 1.0]) if affine is None else affine
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=codes)
    img.set_sform(affine, code=codes)
    nib.save(img, path)
    return path


def _text(path: Path) -> Path:
    path.write_text("hello")
    return path


def _singular(path: Path) -> Path:
    """An sform that collapses the y axis (qform unset): nibabel can write it, nothing can use it."""
    img = nib.Nifti1Image(_head(), None)
    img.header.set_sform(np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]), code=1)
    img.header.set_qform(None, code=0)
    nib.save(img, path)
    return path


def _head(shape=(20, 22, 24)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random(shape).astype(np.float32) * 100


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda d: d / "missing.nii.gz", "file does not exist"),
        (lambda d: _text(d / "text.nii.gz"), "not a NIfTI image"),
        (lambda d: _save(d / "flat.nii.gz", _head((20, 22))), "image has shape (20, 22); expected a 3D volume"),
        (lambda d: _save(d / "four.nii.gz", np.stack([_head()] * 3, -1)), "image has shape (20, 22, 24, 3)"),
        (lambda d: _save(d / "nan.nii.gz", np.where(_head() > 99, np.nan, _head())), "voxels are NaN or Inf"),
        (lambda d: _save(d / "inf.nii.gz", np.where(_head() > 99, np.inf, _head())), "voxels are NaN or Inf"),
        (
            lambda d: _save(d / "zero.nii.gz", np.zeros((20, 22, 24), np.float32)),
            "image is constant (every voxel is 0)",
        ),
        (lambda d: _save(d / "tiny.nii.gz", _head(), np.diag([0.01, 1, 1, 1.0])), "voxel size [0.01, 1.0, 1.0] mm"),
        (lambda d: _save(d / "huge.nii.gz", _head(), np.diag([20, 1, 1, 1.0])), "voxel size [20.0, 1.0, 1.0] mm"),
        (lambda d: _singular(d / "singular.nii.gz"), "singular or non-finite affine"),
        (
            lambda d: _save(d / "noaffine.nii.gz", _head(), codes=0),
            "no orientation: qform_code and sform_code are both 0",
        ),
    ],
)
def test_bad_inputs_refused_with_reason(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(InputImageError) as err:
        load_t1(path)
    assert reason in err.value.reason and str(path) in str(err.value)


def test_truncated_gzip(tmp_path):
    full = _save(tmp_path / "full.nii.gz", _head((40, 40, 40)))
    raw = full.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputImageError, match="truncated or corrupt"):
        load_t1(cut)


def test_four_d_first_volume_on_request(tmp_path):
    vols = np.stack([_head(), _head() * 2, _head() * 3], -1)
    path = _save(tmp_path / "four.nii.gz", vols)
    img = load_t1(path, four_d="first")
    np.testing.assert_allclose(img.get_fdata(), vols[..., 0], rtol=1e-6)


def test_reorients_to_ras_keeping_world_positions(tmp_path):
    data = np.zeros((10, 12, 14), np.float32)
    data[2, 3, 4] = 1.0
    lps = np.array([[-2.0, 0, 0, 50], [0, -1.5, 0, 30], [0, 0, 1.2, -20], [0, 0, 0, 1]])
    path = _save(tmp_path / "lps.nii.gz", data, lps)
    before = path.read_bytes()
    img = load_t1(path)
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    ijk = np.argwhere(img.get_fdata() == 1.0)[0]
    np.testing.assert_allclose(img.affine @ np.r_[ijk, 1], lps @ np.array([2, 3, 4, 1.0]))
    assert path.read_bytes() == before  # the input is never modified
