"""Harmonization baselines: identity changes nothing, histogram matching makes the in-mask intensity
distribution the reference site's, z-score gives the reference mean and spread; nothing outside the mask moves."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluate.intensity_baselines import fit_intensity_baseline

RNG = np.random.default_rng(0)
MASK = np.zeros((16, 16, 16), bool)
MASK[3:13, 3:13, 3:13] = True


def _image(transform) -> np.ndarray:
    image = np.zeros(MASK.shape, np.float32)
    image[MASK] = transform(RNG.beta(5, 3, MASK.sum()))
    image[0, 0, :4] = [0.0, 0.1, 0.2, 0.3]  # outside the mask: must not move
    return image


REFERENCE = [(_image(lambda v: v), MASK) for _ in range(4)]


def test_identity_changes_nothing():
    target = _image(lambda v: v**0.5)
    out = fit_intensity_baseline("identity", REFERENCE)(target, MASK)
    assert np.array_equal(out, target) and out is not target


def test_histogram_matching_makes_the_histograms_match():
    target = _image(lambda v: 0.3 + 0.5 * v**2)  # another contrast and range
    out = fit_intensity_baseline("histogram", REFERENCE)(target, MASK)
    pooled = np.concatenate([image[MASK] for image, _ in REFERENCE])
    grid = np.linspace(0.01, 0.99, 99)
    before = np.abs(np.quantile(target[MASK], grid) - np.quantile(pooled, grid)).max()
    after = np.abs(np.quantile(out[MASK], grid) - np.quantile(pooled, grid)).max()
    assert before > 0.1 and after < 0.01
    assert np.array_equal(out[~MASK], target[~MASK])
    # the mapping is monotone: the order of voxels is kept
    order = np.argsort(target[MASK])
    assert np.all(np.diff(out[MASK][order]) >= -1e-7)


def test_zscore_gives_the_reference_mean_and_spread():
    target = _image(lambda v: 0.2 + 0.3 * v)
    out = fit_intensity_baseline("zscore", REFERENCE)(target, MASK)
    pooled = np.concatenate([image[MASK] for image, _ in REFERENCE])
    assert out[MASK].mean() == pytest.approx(pooled.mean(), abs=1e-3)
    assert out[MASK].std() == pytest.approx(pooled.std(), abs=1e-3)
    assert np.array_equal(out[~MASK], target[~MASK])


def test_unknown_baseline_is_refused():
    with pytest.raises(
        ValueError, match=r"baseline must be one of \('identity', 'histogram', 'zscore'\), got 'combat'"
    ):
        fit_intensity_baseline("combat", REFERENCE)
