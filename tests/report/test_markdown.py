"""The markdown results page (``mriharmony report --markdown``): the committed study page is what its report.json
renders to, the docs' links into it name real anchors, and the renderer's cells are the HTML report's."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.report.markdown import results_markdown

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
STUDY_JSON = "docs/results/study5-report.json"
STUDY_PAGE = "docs/results/study.md"
REGENERATE = f"mriharmony report --markdown {STUDY_JSON} --out {STUDY_PAGE}"
CURRENT_DOCS = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "bundles").glob("*/docs/README.md")]
    + list((ROOT / "bundles").glob("*/configs/metadata.json"))
)


def test_the_committed_results_page_is_generated_from_the_committed_report(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the command as docs/results/README.md gives it, run from the repository root
    out = tmp_path / "study.md"
    assert main(["report", "--markdown", STUDY_JSON, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text() == (ROOT / STUDY_PAGE).read_text(), (
        f"{STUDY_PAGE} is not what {STUDY_JSON} renders to: regenerate it from the repository root with `{REGENERATE}`"
    )
    # the same text from the function, whatever the current folder
    page = results_markdown(json.loads((ROOT / STUDY_JSON).read_text()), source=STUDY_JSON)
    assert page == out.read_text()
    assert str(ROOT) not in page and str(tmp_path) not in page


def _anchors(page: str) -> set[str]:
    return set(re.findall(r'<a id="([^"]+)"></a>', page))


def test_every_link_into_the_results_page_names_one_of_its_anchors():
    anchors = _anchors((ROOT / STUDY_PAGE).read_text())
    links = {
        (doc.relative_to(ROOT).as_posix(), anchor)
        for doc in CURRENT_DOCS
        for anchor in re.findall(r"results/study\.md#([A-Za-z0-9_-]+)", doc.read_text())
    }
    assert links, "no doc links into docs/results/study.md"
    assert {(doc, a) for doc, a in links if a not in anchors} == set(), f"not an anchor of {STUDY_PAGE}"


def test_nothing_current_cites_the_archived_report():
    archived = [p.name for p in (RESULTS / "archive").glob("*.json")]
    assert archived, "docs/results/archive/ holds the superseded reports"
    cites = {
        doc.relative_to(ROOT).as_posix()
        for doc in CURRENT_DOCS
        for name in [*archived, "study-report.json"]
        if re.search(rf"(?<![\w-]){re.escape(name)}", doc.read_text())
    }
    assert cites == set()


def _tiny_report(tables: dict) -> dict:
    return {
        "run": "/runs/tiny",
        "version": "9.9.9",
        "generated": "2026-01-02 03:04 UTC",
        "summary": {"wall time": "1.5 min"},
        "findings": [{"topic": "site probe", "text": "Site probe: identity 0.99.", "n": 53, "underpowered": ""}],
        "sections": {
            "harmonization": {
                "title": "Harmonization evaluation",
                "present": True,
                "intro": "oasis harmonized to ukb.",
                "missing": [],
                "tables": tables,
                "notes": ["one note", "config:\n  a: 1\n"],
                "figures": ["Site probes with 95% intervals"],
            },
            "ad-classification": {
                "title": "AD classification",
                "present": False,
                "intro": "",
                "missing": ["run/ad_classification/eval/metrics.json"],
                "tables": {},
                "notes": [],
                "figures": [],
            },
        },
    }


CAPTION = "Site probe: balanced accuracy (chance 0.5)"
RECORDS = [
    {
        "condition": "identity",
        "balanced_accuracy": 0.98765,
        "n_subjects": 53,
        "significant": True,
        "low": None,
        "interval": [0.95, 1.0],
        "per_seed": {"seed0": 12.345, "seed1": float("nan")},
        "label": "a|b",
    },
    {"condition": "histogram", "balanced_accuracy": 123.456, "n_subjects": 7, "significant": False, "extra": "x"},
]
TABLE = [
    "| condition | balanced_accuracy | n_subjects | significant | low | interval | per_seed | label | extra |",
    "|---|---|---|---|---|---|---|---|---|",
    "| identity | 0.988 | 53 | yes | n/a | [0.950, 1.000] | {seed0: 12.35, seed1: n/a} | a\\|b |  |",
    "| histogram | 123.5 | 7 | no |  |  |  |  | x |",
]


@pytest.mark.parametrize(
    "tables,anchor",
    [
        ({CAPTION: RECORDS}, "site-probe"),  # reports before table ids: {caption: records}, a known caption's id
        ({"site-probe": {"caption": CAPTION, "records": RECORDS}}, "site-probe"),  # {id: {caption, records}}
    ],
    ids=["caption-keyed", "id-keyed"],
)
def test_the_renderer_writes_every_record_with_the_html_reports_cells(tables, anchor):
    report = _tiny_report(copy.deepcopy(tables))
    page = results_markdown(report, source="docs/results/tiny-report.json")
    lines = page.splitlines()
    assert lines[0] == "# Results"
    assert "`docs/results/tiny-report.json`" in lines[2] and "mriharmony 9.9.9" in lines[2]
    assert "2026-01-02 03:04 UTC" in lines[2] and "`/runs/tiny`" in lines[2]  # quoted from the JSON
    assert "- **site probe**: Site probe: identity 0.99." in lines
    assert "| wall time | 1.5 min |" in lines
    start = lines.index(f'<a id="{anchor}"></a>')
    assert lines[start + 1 : start + 4] == ["", f"### {CAPTION}", ""]
    assert lines[start + 4 : start + 4 + len(TABLE)] == TABLE
    assert lines[start + 4 + len(TABLE) :] == [
        "",
        "Notes:",
        "",
        "- one note",
        "",
        "```",
        "config:",
        "  a: 1",
        "```",
        "",
        "Figures (in report.html only): Site probes with 95% intervals.",
        "",
        '<a id="ad-classification"></a>',
        "",
        "## AD classification",
        "",
        "Not in this run: `run/ad_classification/eval/metrics.json` not found.",
    ]
    assert page.endswith("\n") and not page.endswith("\n\n") and all(line == line.rstrip() for line in lines)
    assert results_markdown(report, source="docs/results/tiny-report.json") == page  # deterministic


def test_both_table_formats_give_the_same_page():
    old = results_markdown(_tiny_report({CAPTION: RECORDS}), source="r.json")
    new = results_markdown(_tiny_report({"site-probe": {"caption": CAPTION, "records": RECORDS}}), source="r.json")
    assert old == new  # the same ids (pipeline.report.tables.report_tables), so links survive a re-run


def test_a_table_id_taken_elsewhere_on_the_page_gets_its_section_as_prefix():
    tables = {"summary": {"caption": "Summary", "records": [{"a": 1}]}, "seeds": {"caption": "Seeds", "records": []}}
    report = _tiny_report(tables)
    report["sections"]["ad-classification"]["present"] = True
    report["sections"]["ad-classification"]["tables"] = {"seeds": {"caption": "Seeds", "records": [{"b": 2}]}}
    anchors = _anchors(results_markdown(report, source="r.json"))
    assert {"summary", "harmonization-summary", "harmonization-seeds", "ad-classification-seeds"} <= anchors
    assert "seeds" not in anchors
    assert "(no rows)" in results_markdown(report, source="r.json")


def test_the_command_reads_a_run_folder_and_refuses_what_it_cannot_read(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "report").mkdir(parents=True)
    (run / "report" / "report.json").write_text(json.dumps(_tiny_report({CAPTION: RECORDS})))
    assert main(["report", "--markdown", str(run)]) == 0
    written = run / "report" / "report.md"  # default: beside the JSON
    assert capsys.readouterr().out.strip() == str(written)
    assert "### Site probe: balanced accuracy (chance 0.5)" in written.read_text()
    assert main(["report", "--markdown", str(tmp_path / "nothing")]) == 2
    assert "no such report.json" in capsys.readouterr().err
    assert main(["report"]) == 2  # neither a run folder nor --markdown
    assert main(["report", str(run), "--markdown", str(run)]) == 2
