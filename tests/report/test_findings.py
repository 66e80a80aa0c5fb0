"""Headline findings: a method beats the identity only when its paired interval excludes 0, a method
that does not is said not to, an underpowered finding shows no numbers, the powered ones come first and the
underpowered ones make one statement; tables are found by id, not caption."""

from __future__ import annotations

from pipeline.report.build import summary_rows
from pipeline.report.collect import Section, Table
from pipeline.report.findings import MIN_TEST_SUBJECTS, headline_findings, underpowered_statement
from pipeline.report.tables import records_by_id


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
    return {"harmonization": {"site-probe": rows}}


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
        "brain-age": {"brain-age-cross-site": penalty},
        "harmonization": {"biology-kept": leak},
    }
    biology, cross, within = headline_findings(tables)
    assert within.topic == "biology within site" and within.underpowered  # no within-site table in this run
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
    (finding,) = headline_findings({"brain-age": {"brain-age-pooled": pooled}})
    assert "mean predictor 8.00" in finding.title and not finding.underpowered
    assert "CNN 7.80 (does not beat the mean predictor: -0.20 [-0.80, 0.40])" in finding.text
    assert "ridge on regional mean T1 6.00 (beats the mean predictor: -2.00 [-2.80, -1.20])" in finding.text
    assert "worse than the mean predictor: +1.00" in finding.text
    few = [dict(r, n_test=12) for r in pooled]
    (small,) = headline_findings({"brain-age": {"brain-age-pooled": few}})
    assert small.underpowered and "6.00" not in small.text
    assert "None beats it" not in finding.text  # one model does
    # nobody beats it: the best one's difference says how many subjects it would take ((0.6 / 0.2)^2 x 30)
    behind = [r for r in pooled if r["condition"] != "features_raw"]
    (none,) = headline_findings({"brain-age": {"brain-age-pooled": behind}})
    assert (
        "None beats it: at the best model's difference (CNN, -0.20) the interval would exclude 0 from about "
        "270 test subjects." in none.text
    )


def test_powered_findings_come_first_then_one_statement_of_what_this_size_cannot_answer():
    pooled = {
        "condition": "raw",
        "runs": 2,
        "n_test": 12,
        "mae_mean": 7.0,
        "mean_predictor_mae": 8.0,
        "vs_mean": -1.0,
        "vs_mean_low": -2.0,
        "vs_mean_high": 0.5,
        "underpowered": "12 test subjects < 20; 2 run(s) < 3",
    }
    traveling = [
        {
            "condition": c,
            "metric": "mae",
            "mean": m,
            "low": m - 0.01,
            "high": m + 0.01,
            "difference_to_identity": d,
            "difference_low": d - 0.01,
            "difference_high": d + 0.01,
            "n_subjects": 3,
        }
        for c, m, d in (("identity", 0.06, 0.0), ("cyclegan", 0.04, -0.02))
    ]
    tables = {
        "harmonization": {
            "site-probe": [
                _probe("identity", 0.93, 0.0, 0.0, 0.0, n=8, adjustment="traveling"),
                _probe("cyclegan", 0.58, -0.35, -0.45, -0.25, n=8, adjustment="traveling"),
                _probe("identity", 0.93, 0.0, 0.0, 0.0, n=6, adjustment="residualized"),
                _probe("cyclegan", 0.58, -0.35, -0.45, -0.25, n=6, adjustment="residualized"),
                _probe("identity", 0.93, 0.0, 0.0, 0.0),
                _probe("cyclegan", 0.58, -0.35, -0.45, -0.25),
            ],
            "traveling-mean": traveling,
        },
        "brain-age": {"brain-age-pooled": [pooled]},
    }
    findings = headline_findings(tables)
    assert [(f.topic, f.n, bool(f.underpowered)) for f in findings] == [
        ("site probe", 40, False),  # the powered one first, though the table lists it last
        ("site probe", 8, True),
        ("site probe", 6, True),
        ("traveling subjects", 3, True),
        ("brain age", 12, True),
    ]
    # one statement for the four underpowered ones: each topic once, with its n and the n it needs
    assert underpowered_statement(findings) == (
        "Underpowered at this size, each needs the study run (mriharmony demo --scale study): "
        "site probe (n = 6-8 < 20 subjects), traveling-subject fidelity (n = 3 < 10 traveling subjects), "
        "brain age against the mean predictor (n = 12 < 20 test subjects; 2 run(s) < 3)."
    )
    assert underpowered_statement(findings[:1]) == ""


def test_a_reworded_caption_keeps_its_finding_and_summary_row():
    """Findings and summary rows find tables by id: a caption can be reworded without emptying them."""
    rows = [_probe("identity", 0.93, 0.0, 0.0, 0.0), _probe("cyclegan", 0.58, -0.35, -0.45, -0.25)]
    columns = [("condition", "condition")]
    for title in ("Site probe: balanced accuracy of predicting the site", "How well the site is told apart"):
        sections = [Section("harmonization", "Harmonization", tables=[Table("site-probe", title, columns, rows)])]
        (finding,) = headline_findings(records_by_id(sections))
        assert "cyclegan 0.58 [0.53, 0.63], beats identity" in finding.text
        assert summary_rows(sections) == [
            ("site probe (linear), chance 0.500", "identity 0.930, cyclegan 0.580"),
        ]
    # and a table under another id is not read as the site probe, whatever its caption says
    other = [Section("harmonization", "Harmonization", tables=[Table("site-probe-v2", "Site probe", columns, rows)])]
    assert headline_findings(records_by_id(other)) == [] and summary_rows(other) == []


def _within(condition, effect, measure, estimate, low, high, kept=True, floor=False, n=40, site="adni"):
    return {
        "condition": condition,
        "site": site,
        "effect": effect,
        "measure": measure,
        "unit": "u",
        "estimate": estimate,
        "low": low,
        "high": high,
        "n_subjects": n,
        "difference_to_identity": 0.0 if condition == "identity" else estimate + 2.0,
        "difference_low": 0.5,
        "difference_high": 1.5,
        "floor": floor,
        "kept": kept,
    }


def test_within_site_biology_says_kept_lost_and_floor():
    rows = [
        _within("identity", "AD", "hippocampus_mean", -2.0, -2.6, -1.4),
        _within("histogram", "AD", "hippocampus_mean", -1.0, -1.3, -0.7, kept=False),
        _within("cyclegan", "AD", "hippocampus_mean", -1.9, -2.5, -1.3),
        _within("identity", "AD", "ventricles_mean", 0.1, -0.4, 0.6, floor=True),
        _within("histogram", "AD", "ventricles_mean", 0.1, -0.4, 0.6, floor=True),
        _within("identity", "age", "gm_mean", -0.5, -0.8, -0.2, n=12),
    ]
    ad, age = headline_findings({"harmonization": {"biology-within-site": rows}})
    assert ad.topic == "biology within site" and not ad.underpowered and ad.title.startswith("Biology within adni, AD")
    assert "hippocampus: identity -2.00 [-2.60, -1.40], histogram -1.00 (lost: +1.00 [0.50, 1.50])" in ad.text
    assert "cyclegan -1.90 (kept: +0.10 [0.50, 1.50])" in ad.text
    assert "at the floor, so 'kept' cannot fail: ventricles" in ad.text
    assert age.underpowered and age.n == 12  # 12 controls < 20


def test_a_split_too_small_for_any_within_site_check_says_so_in_the_statement():
    pooled = [
        {
            "condition": "identity",
            "input": "features",
            "task": "age",
            "metric": "mae",
            "estimate": 6.0,
            "low": 5.0,
            "high": 7.0,
            "n_subjects": 40,
            "difference_to_identity": 0.0,
            "difference_low": 0.0,
            "difference_high": 0.0,
            "floor": 6.2,
        }
    ]
    findings = headline_findings({"harmonization": {"biology-kept": pooled}})
    assert "at the floor" in findings[0].text  # the identity's interval reaches the mean predictor's MAE
    assert findings[-1].topic == "biology within site" and findings[-1].underpowered
    assert "biology within site (no site with 3 CN and 3 AD, or 5 controls, of its own)" in underpowered_statement(
        findings
    )
