"""Brain-age metrics against hand-computed values; bias correction fitted on train only."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluate.regression import BiasCorrection, bootstrap_interval, regression_metrics


def test_metrics_by_hand():
    m = regression_metrics([60, 70, 80], [62, 67, 80])
    assert m["mae"] == pytest.approx((2 + 3 + 0) / 3) and m["mse"] == pytest.approx((4 + 9 + 0) / 3)
    assert m["mean_gap"] == pytest.approx(-1 / 3) and m["n"] == 3
    perfect = regression_metrics([60, 70, 80], [60, 70, 80])
    assert perfect["mae"] == 0 and perfect["r"] == pytest.approx(1.0)
    constant = regression_metrics([60, 70, 80], [70, 70, 70])  # predict-the-mean: r undefined, MAE 20/3
    assert constant["mae"] == pytest.approx(20 / 3) and np.isnan(constant["r"])


def test_bias_correction_removes_regression_to_the_mean():
    rng = np.random.default_rng(0)
    age = rng.uniform(50, 90, 200)
    predicted = 70 + 0.5 * (age - 70) + rng.normal(0, 1, 200)  # shrunk towards 70
    correction = BiasCorrection.fit(age[:100], predicted[:100])  # train half only
    assert correction.slope == pytest.approx(-0.5, abs=0.05) and correction.intercept == pytest.approx(35, abs=3)
    gap = correction.corrected_gap(age[100:], predicted[100:])
    assert abs(np.corrcoef(age[100:], gap)[0, 1]) < 0.2 < abs(np.corrcoef(age[100:], predicted[100:] - age[100:])[0, 1])
    np.testing.assert_allclose(correction.corrected_prediction(age, predicted) - age, correction.corrected_gap(age, predicted))


def test_bootstrap_interval_contains_the_estimate():
    rng = np.random.default_rng(1)
    y = rng.uniform(50, 90, 60)
    pred = y + rng.normal(0, 5, 60)
    mae = lambda a, b: float(np.mean(np.abs(a - b)))  # noqa: E731
    low, high = bootstrap_interval(y, pred, mae, n_resamples=500)
    assert low < mae(y, pred) < high and high - low < 3
    assert all(np.isnan(bootstrap_interval(y[:2], pred[:2], mae)))
