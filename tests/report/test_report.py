"""The run report: its numbers are the run's files, absent parts are named, bad folders are refused."""

from __future__ import annotations

import json
import math
import re
import shutil

import pandas as pd
import pytest
from markupsafe import escape

from pipeline.cli import main
from pipeline.report import SECTION_IDS, build_report, format_cell
from pipeline.report.collect import BENCHMARK_TABLE_IDS, collect_sections
from pipeline.report.findings import MIN_TEST_SUBJECTS, MIN_TRAVELING_SUBJECTS, TOPIC_WORDS
from pipeline.report.tables import report_tables
from pipeline.table_paths import read_table


def _same(a, b) -> bool:
    """Equal values, NaN / None equal to each other (JSON writes NaN as null in records)."""
    if isinstance(a, dict):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    missing = lambda v: v is None or (isinstance(v, float) and math.isnan(v))  # noqa: E731
    if missing(a) or missing(b):
        return missing(a) and missing(b)
    return a == pytest.approx(b) if isinstance(a, float) else a == b


@pytest.fixture(scope="module")
def report(tiny_demo):
    out, _ = tiny_demo
    return out, json.loads((out / "report" / "report.json").read_text()), (out / "report" / "report.html").read_text()


def test_report_numbers_are_the_run_files(report):
    out, page, html = report
    sections = page["sections"]
    # every section but many-to-one, which the tiny demo's configuration has no section for
    assert list(sections) == list(SECTION_IDS)
    assert all(s["present"] for k, s in sections.items() if k != "many-to-one")
    # only what the run skipped is missing: the held-out and cross-site protocols have too few controls here
    skipped = [str(out / "benchmark" / p / "summary.json") for p in ("held_out", "cross_site")]
    assert {k: s["missing"] for k, s in sections.items() if s["missing"]} == {
        "brain-age": skipped,
        "many-to-one": [str(out / "many_to_one" / "summary.json")],
    }
    preprocessed = read_table(out / "preprocessed" / "preprocessed.tsv")
    per_site = sections["preprocessing"]["tables"]["images-per-site"]["records"]
    assert {r["site"]: r["ok"] for r in per_site} == (preprocessed["status"] == "ok").groupby(
        preprocessed["site"]
    ).sum().to_dict()
    assert {r["site"]: r["mask_ml_median"] for r in per_site} == pytest.approx(
        preprocessed.groupby("site")["mask_volume_ml"].median().to_dict()
    )
    evaluation = json.loads((out / "evaluation" / "evaluation.json").read_text())
    probe = sections["harmonization"]["tables"]["site-probe"]
    assert probe["caption"].startswith("Site probe") and _same(probe["records"], evaluation["site_probe"])
    ran = [p for p in ("pooled", "held_out", "cross_site") if (out / "benchmark" / p / "summary.json").exists()]
    assert "pooled" in ran
    for protocol in ran:
        bench = json.loads((out / "benchmark" / protocol / "summary.json").read_text())
        records = sections["brain-age"]["tables"][BENCHMARK_TABLE_IDS[protocol]]["records"]
        assert _same(records, bench["summary"])
    # the summary shows raw errors only: nothing a constant predictor could be made to look good by
    assert not [k for k, v in page["summary"].items() if "corrected" in k or "corrected" in str(v)]
    assert any(k.startswith("brain-age raw MAE, pooled") for k in page["summary"])
    metrics = json.loads((out / "ad_classification" / "eval" / "metrics.json").read_text())
    cnn = sections["ad-classification"]["tables"]["test-metrics"]["records"][0]
    assert cnn["model"] == "cnn" and _same(cnn["balanced_accuracy"], metrics["metrics"]["balanced_accuracy"])
    assert _same(cnn["balanced_accuracy_interval"], metrics["intervals_95"]["balanced_accuracy"])
    grid = pd.read_csv(out / "augment_grid" / "summary.tsv", sep="\t")
    records = sections["augmentation"]["tables"]["augmentation-grid"]["records"]
    assert [r["arm"] for r in records] == list(grid["arm"])
    assert [r["balanced_accuracy_diff"] for r in records] == pytest.approx(
        list(grid["balanced_accuracy_diff"]), nan_ok=True
    )
    seconds = json.loads((out / "summary.json").read_text())["seconds"]
    timings = {r["stage"]: r["seconds"] for r in sections["provenance"]["tables"]["wall-time"]["records"]}
    assert {k: v for k, v in timings.items() if k != "total"} == pytest.approx(
        {k: v for k, v in seconds.items() if k != "report"}
    )
    versions = {r["package"]: r["version"] for r in sections["provenance"]["tables"]["software"]["records"]}
    assert versions["torch"].startswith("2.") and versions["mriharmony"] == page["version"]
    seeds = {r["key"]: r["value"] for r in sections["provenance"]["tables"]["seeds"]["records"]}
    assert seeds["phantom.seed"] == 0 and seeds["benchmark.seeds"] == 2 and seeds["evaluation.seed"] == 0
    # every figure is inside the page, and nothing on it points anywhere else
    n_figures = sum(len(s["figures"]) for s in sections.values())
    assert html.count('<img src="data:image/png;base64,') == n_figures >= 8
    assert not re.findall(r'(?:src|href)="(?!data:|#)', html)
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    for section in SECTION_IDS:
        present = "no" if section == "many-to-one" else "yes"  # the tiny demo has no many-to-one section
        assert f'<section id="{section}" data-present="{present}">' in html


def test_every_table_of_a_run_has_an_id_used_once_in_its_section(report):
    out, page, _ = report
    for section in collect_sections(out):
        ids = [t.id for t in section.tables]
        assert len(ids) == len(set(ids)), (section.id, ids)
        # report.json keeps them under these ids, beside their captions, in page order
        stored = report_tables(page["sections"][section.id])
        assert [(i, c) for i, c, _ in stored] == [(t.id, t.title) for t in section.tables]


def test_a_tiny_run_says_underpowered_in_one_statement_and_shows_no_finding(report):
    _, page, html = report
    findings = page["findings"]
    assert findings and all(f["underpowered"] for f in findings)  # a handful of test subjects: nothing is a finding
    for finding in findings:
        assert "underpowered" in finding["text"] and "see the study run" in finding["text"]
        assert not re.search(r"identity \d", finding["text"])  # no numbers that could be read as a result
    # one statement, not one line per table: each topic once, with the n it has and the n it needs
    statement = page["underpowered"]
    assert statement.startswith("Underpowered at this size, each needs the study run (mriharmony demo --scale study): ")
    topics = list(dict.fromkeys(f["topic"] for f in findings))
    assert {"site probe", "traveling subjects", "brain age"} <= set(topics)
    for topic in topics:  # with its n, or (biology within site) why it could not be measured at all
        assert statement.count(TOPIC_WORDS.get(topic, topic) + " (") == 1, topic
    assert re.search(rf"site probe \(n = [\d-]+ < {MIN_TEST_SUBJECTS} subjects\)", statement)
    assert re.search(rf"fidelity \(n = \d+ < {MIN_TRAVELING_SUBJECTS} traveling subjects\)", statement)
    assert '<section id="findings">' in html and html.count('class="underpowered"') == 1
    assert html.count("<li data-topic=") == 0 and str(escape(statement)) in html  # no powered finding here
    probes = [v for k, v in page["summary"].items() if k.startswith("site probe")]
    assert probes and all("underpowered: n = " in v for v in probes)


def test_report_of_a_partial_run_names_what_is_missing(tiny_demo, tmp_path):
    out, _ = tiny_demo
    run = tmp_path / "run"
    shutil.copytree(out / "preprocessed", run / "preprocessed", ignore=shutil.ignore_patterns("sub-*"))
    result = build_report(run)
    page = json.loads(result.json.read_text())["sections"]
    assert page["preprocessing"]["present"] and not page["preprocessing"]["missing"]
    assert page["harmonization"]["missing"] == [str(run / "evaluation" / "evaluation.json")]
    assert not page["ad-classification"]["present"] and not page["augmentation"]["present"]
    assert str(run / "benchmark" / "pooled" / "summary.json") in page["brain-age"]["missing"]
    html = result.html.read_text()
    assert html.count("Not in this run") == sum(len(s["missing"]) for s in page.values())
    assert result.summary[0] == ("preprocessed images", "12 of 12 (0 failed)")


def test_report_refuses_a_folder_with_nothing_to_report(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nothing to report" in err and str(tmp_path / "preprocessed" / "preprocessed.tsv") in err
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "n/a"),
        (float("nan"), "n/a"),
        (True, "yes"),
        (3, "3"),
        (0.12345, "0.123"),
        (12.345, "12.35"),
        (1234.56, "1234.6"),
        ([0.5, 1.0], "[0.500, 1.000]"),
        ("CN", "CN"),
    ],
)
def test_format_cell(value, text):
    assert format_cell(value) == text
