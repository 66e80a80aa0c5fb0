"""Brain-age metrics against hand-computed values; the gap correction is fitted on validation predictions,
needs no test age and is refused for a model without age signal; bootstrap intervals cover the truth."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.metrics.regression import AgeBiasCorrection, bootstrap_interval, regression_metrics


def test_metrics_by_hand():
    m = regression_metrics([60, 70, 80], [62, 67, 80])
    assert m["mae"] == pytest.approx((2 + 3 + 0) / 3) and m["mse"] == pytest.approx((4 + 9 + 0) / 3)
    assert m["mean_gap"] == pytest.approx(-1 / 3) and m["n"] == 3
    assert m["r2"] == pytest.approx(1 - (4 + 9 + 0) / 200)
    assert m["gap_age_r"] == pytest.approx(np.corrcoef([60, 70, 80], [2, -3, 0])[0, 1])
    perfect = regression_metrics([60, 70, 80], [60, 70, 80])
    assert perfect["mae"] == 0 and perfect["r"] == pytest.approx(1.0) and perfect["r2"] == 1.0
    constant = regression_metrics([60, 70, 80], [70, 70, 70])  # predict-the-mean: r undefined, MAE 20/3
    assert constant["mae"] == pytest.approx(20 / 3) and np.isnan(constant["r"])
    assert constant["r2"] == pytest.approx(0.0) and constant["gap_age_r"] == pytest.approx(-1.0)


def test_a_constant_predictor_cannot_look_good():
    """The trap (de Lange et al. 2022): the usual correction predicted + (age - (a age + b)) uses the test
    subjects' true age and gives a constant predictor an MAE near 0. The metrics here show it as what it is
    (R^2 <= 0, corr(gap, age) = -1), and the gap correction refuses a model with no age signal."""
    rng = np.random.default_rng(0)
    age = rng.uniform(50, 90, 80)
    constant = np.full(80, 70.0) + rng.normal(0, 0.3, 80)
    val, test = slice(0, 40), slice(40, 80)
    trap = constant[test] + (age[test] - np.polyval(np.polyfit(age[val], constant[val], 1), age[test]))
    assert np.mean(np.abs(trap - age[test])) < 0.5  # what a "bias-corrected MAE" would show
    m = regression_metrics(age[test], constant[test])
    assert m["mae"] > 8 and m["r2"] < 0.05 and m["gap_age_r"] < -0.99
    correction = AgeBiasCorrection.fit(age[val], constant[val])
    assert not correction.usable()


def test_gap_correction_fitted_on_validation_needs_no_test_age():
    rng = np.random.default_rng(0)
    age = rng.uniform(50, 90, 200)
    predicted = 70 + 0.5 * (age - 70) + rng.normal(0, 1, 200)  # shrunk towards 70
    correction = AgeBiasCorrection.fit(age[:100], predicted[:100])  # the validation half only
    assert correction.slope == pytest.approx(0.5, abs=0.05) and correction.intercept == pytest.approx(35, abs=3)
    assert correction.usable() and correction.n == 100
    corrected = correction.corrected_prediction(predicted[100:])  # the test subjects' ages are not passed
    gap, raw_gap = corrected - age[100:], predicted[100:] - age[100:]
    assert abs(np.corrcoef(age[100:], gap)[0, 1]) < 0.2 < abs(np.corrcoef(age[100:], raw_gap)[0, 1])
    with pytest.raises(ValueError, match="at least 3 validation subjects"):
        AgeBiasCorrection.fit([60, 70], [61, 69])


def _coverage(truth: float, intervals: list[tuple[float, float]]) -> float:
    return float(np.mean([low <= truth <= high for low, high in intervals]))


def test_bootstrap_intervals_cover_the_true_mae_on_simulated_data():
    """300 simulated test sets with a known population MAE (errors N(0, 5): MAE = 5 sqrt(2 / pi)): the 95%
    intervals must contain it about 95% of the time; an interval that ignores the sampling of subjects
    (here: one image's error resampled as if it were many subjects) does not."""
    rng = np.random.default_rng(1)
    truth = 5 * np.sqrt(2 / np.pi)
    mae = lambda a, b: float(np.mean(np.abs(a - b)))  # noqa: E731
    plain, clustered, naive = [], [], []
    for k in range(300):
        y = rng.uniform(50, 90, 40)
        pred = y + rng.normal(0, 5, 40)
        plain.append(bootstrap_interval(y, pred, mae, n_resamples=300, seed=k))
        # two images per subject with the same error: the cluster bootstrap must count subjects, not images
        subjects = np.repeat(np.arange(20), 2)
        error = np.repeat(rng.normal(0, 5, 20), 2)
        y2 = np.repeat(rng.uniform(50, 90, 20), 2)
        clustered.append(bootstrap_interval(y2, y2 + error, mae, n_resamples=300, seed=k, groups=subjects))
        naive.append(bootstrap_interval(y2, y2 + error, mae, n_resamples=300, seed=k))
    assert 0.88 <= _coverage(truth, plain) <= 0.99
    assert 0.86 <= _coverage(truth, clustered) <= 0.99  # 0.92 here: 20 clusters under-cover a little
    assert _coverage(truth, naive) < _coverage(truth, clustered) - 0.05  # images counted as subjects: too narrow
    assert all(np.isnan(bootstrap_interval(np.arange(2.0), np.arange(2.0), mae)))
