"""Known answers for the masked min-max and the 2 mm box -> 64^3 cube geometry; config checks."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import ConfigError
from pipeline.mni import MNI_BOX_AFFINE, MNI_BOX_SHAPE
from pipeline.preprocess.config import load_preprocess_config
from pipeline.preprocess.intensity import MaskedMinMax, masked_minmax
from pipeline.preprocess.space import to_cube


def test_masked_minmax_known_values():
    image = np.array([0.0, 10.0, 20.0, 30.0, 1000.0])
    mask = np.array([0, 1, 1, 1, 0], bool)
    np.testing.assert_allclose(masked_minmax(image, mask, None), [0, 0, 0.5, 1, 0])
    values = np.arange(1000, dtype=float)
    out = MaskedMinMax(percentiles=(10, 90))(values, np.ones(1000, bool))
    assert out.min() == 0 and out.max() == 1
    assert out[500] == pytest.approx(
        (500 - np.percentile(values, 10)) / (np.percentile(values, 90) - np.percentile(values, 10))
    )
    with pytest.raises(ValueError, match="mask is empty"):
        masked_minmax(values, np.zeros(1000, bool))


def test_cube_geometry_keeps_world_positions():
    image = np.zeros(MNI_BOX_SHAPE, np.float32)
    mask = np.zeros(MNI_BOX_SHAPE, bool)
    image[35:56, 45:66, 40:61] = 1.0  # a block around MNI (0, -18, 28)
    mask[image > 0] = True
    cube, cube_mask, affine = to_cube(image, mask, 64)
    assert cube.shape == (64, 64, 64) and cube_mask.dtype == bool
    np.testing.assert_allclose(np.sqrt((affine[:3, :3] ** 2).sum(0)), [2 * 109 / 64] * 3, rtol=1e-4)  # isotropic
    centre_box = MNI_BOX_AFFINE @ np.r_[np.argwhere(mask).mean(0), 1]
    centre_cube = affine @ np.r_[np.argwhere(cube_mask).mean(0), 1]
    np.testing.assert_allclose(centre_cube[:3], centre_box[:3], atol=1.0)  # within 1 mm
    assert cube_mask.sum() * (2 * 109 / 64) ** 3 == pytest.approx(mask.sum() * 8, rel=0.1)


@pytest.mark.parametrize(
    "override, message",
    [
        ("n4.shrink_factor=0", "n4.shrink_factor: expected 'auto' or an integer >= 1, got 0"),
        ("skullstrip.method=bet", "skullstrip.method: expected one of ['deepbet', 'template', 'given'], got 'bet'"),
        (
            "register.iterations=[10]",
            "register: iterations, shrink_factors and smoothing_sigmas must have the same length",
        ),
        ("output.percentiles=[99, 1]", "output.percentiles: expected [low, high]"),
        ("n4.colour=1", "unknown key 'n4.colour'"),
    ],
)
def test_bad_config_named(override, message):
    with pytest.raises(ConfigError) as err:
        load_preprocess_config(overrides=[override])
    assert message in str(err.value)
