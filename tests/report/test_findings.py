"""Headline findings: a method beats the identity only when its paired interval excludes 0, a method
that does not is said not to, and an underpowered finding shows no numbers."""

from __future__ import annotations

from pipeline.report.findings import MIN_TEST_SUBJECTS, headline_findings


def _probe(condition, accuracy, difference, low, high, n=40, adjustment="none"):
    return {
        "condition": condition,
        "probe": "linear",
        "adjustment": adjustment,
        "balanced_accuracy": accuracy,
        "low": accuracy - 0.05,
        "high": accuracy + 0.05,
        "chance": 0.5,
        "n_subjects": n,
        "difference_to_identity": difference,
        "difference_low": low,
        "difference_high": high,
    }


def _tables(rows):
    return {"harmonization": {"Site probe: balanced accuracy": rows}}


def test_verdicts_follow_the_paired_interval():
    rows = [
        _probe("identity", 0.93, 0.0, 0.0, 0.0),
        _probe("cyclegan", 0.58, -0.35, -0.45, -0.25),
        _probe("histogram", 0.90, -0.03, -0.10, 0.04),
        _probe("zscore", 0.97, 0.04, 0.01, 0.08),
    ]
    (finding,) = headline_findings(_tables(rows))
    assert not finding.underpowered and finding.n == 40
    text = finding.text
    assert "identity 0.93 [0.88, 0.98]" in text
    assert "cyclegan 0.58 [0.53, 0.63], beats identity (-0.35 [-0.45, -0.25])" in text
    assert "histogram 0.90 [0.85, 0.95], does not beat identity (-0.03 [-0.10, 0.04])" in text
    assert "zscore 0.97 [0.92, 1.02], worse than identity (+0.04 [0.01, 0.08])" in text


def test_underpowered_findings_show_no_numbers():
    rows = [_probe("identity", 0.93, 0.0, 0.0, 0.0, n=8), _probe("cyclegan", 0.58, -0.35, -0.45, -0.25, n=8)]
    (finding,) = headline_findings(_tables(rows))
    assert (
        finding.underpowered
        == f"n = 8 subjects < {MIN_TEST_SUBJECTS}; see the study run (mriharmony demo --scale study)"
    )
    assert "0.58" not in finding.text and "beats" not in finding.text and "underpowered" in finding.text


def test_penalty_and_biology_findings():
    penalty = [
        {
            "train_site": "ukb",
            "test_site": "oasis",
            "condition": c,
            "runs": 6,
            "n_test": 25,
            "penalty": p,
            "penalty_low": p - 0.5,
            "penalty_high": p + 0.5,
            "diff_mae": d,
            "diff_low": d - 0.4,
            "diff_high": d + 0.4,
            "compared_with": "raw" if not c.startswith("features") else "features_raw",
            "underpowered": "",
        }
        for c, p, d in (("raw", 3.0, 0.0), ("cyclegan", 1.0, -2.0), ("histogram", 2.9, -0.1))
    ]
    leak = [
        {
            "condition": c,
            "input": "features",
            "task": "age",
            "estimate": e,
            "low": e - 1,
            "high": e + 1,
            "difference_to_identity": d,
            "difference_low": d - 0.3,
            "difference_high": d + 0.3,
            "floor": 8.5,
            "n_subjects": 30,
        }
        for c, e, d in (("identity", 6.0, 0.0), ("cyclegan", 8.0, 2.0), ("histogram", 6.1, 0.1))
    ]
    tables = {
        "brain-age": {"Brain age, cross_site: trained on one site": penalty},
        "harmonization": {"Biology kept? Diagnosis and age probes": leak},
    }
    biology, cross = headline_findings(tables)
    assert "cyclegan 8.00 (loses biology" in biology.text and "histogram 6.10 (keeps it" in biology.text
    assert "raw 3.00 [2.50, 3.50]" in cross.text
    assert "cyclegan 1.00 [0.50, 1.50], beats raw (-2.00 [-2.40, -1.60])" in cross.text
    assert "histogram 2.90 [2.40, 3.40], does not beat raw" in cross.text


def test_brain_age_is_judged_against_the_mean_predictor_by_its_paired_interval():
    pooled = [
        {
            "condition": c,
            "runs": 3,
            "n_test": 30,
            "mae_mean": m,
            "mean_predictor_mae": 8.0,
            "vs_mean": m - 8.0,
            "vs_mean_low": m - 8.0 - w,
            "vs_mean_high": m - 8.0 + w,
            "underpowered": "",
        }
        for c, m, w in (("raw", 7.8, 0.6), ("features_raw", 6.0, 0.8), ("to_source", 9.0, 0.5))
    ]
    (finding,) = headline_findings({"brain-age": {"Brain age, pooled: pooled controls": pooled}})
    assert "mean predictor 8.00" in finding.title and not finding.underpowered
    assert "CNN 7.80 (does not beat the mean predictor: -0.20 [-0.80, 0.40])" in finding.text
    assert "ridge on regional mean T1 6.00 (beats the mean predictor: -2.00 [-2.80, -1.20])" in finding.text
    assert "worse than the mean predictor: +1.00" in finding.text
    few = [dict(r, n_test=12) for r in pooled]
    (small,) = headline_findings({"brain-age": {"Brain age, pooled: pooled controls": few}})
    assert small.underpowered and "6.00" not in small.text
    assert "None beats it" not in finding.text  # one model does
    # nobody beats it: the best one's difference says how many subjects it would take ((0.6 / 0.2)^2 x 30)
    behind = [r for r in pooled if r["condition"] != "features_raw"]
    (none,) = headline_findings({"brain-age": {"Brain age, pooled: pooled controls": behind}})
    assert (
        "None beats it: at the best model's difference (CNN, -0.20) the interval would exclude 0 from about "
        "270 test subjects." in none.text
    )
