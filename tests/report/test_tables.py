"""Tables by stable id: report.json stores them under their id, one id per table in a section, and one reader
gives (id, caption, records) for reports of either format, with the same ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.report.collect import Section, Table
from pipeline.report.tables import report_tables, tables_json

REPO = Path(__file__).resolve().parents[2]
#: the tables the findings and the summary read, by section
READ_BY_FINDINGS = {
    "preprocessing": {"images-per-site", "site-effects"},
    "harmonization": {"site-probe", "traveling-mean", "biology-kept", "traveling-metrics"},
    "brain-age": {"brain-age-pooled", "brain-age-cross-site", "brain-age-cross-validated", "brain-age-bundle"},
}


def _table(table_id: str, caption: str, records: list[dict]) -> Table:
    return Table(table_id, caption, [("a", "a")], records)


def test_both_formats_read_with_the_same_ids():
    tables = [
        _table("site-probe", "Site probe: balanced accuracy of predicting the site", [{"a": 1}]),
        _table("traveling-mean", "Traveling subjects, mean with 95% interval", [{"a": 2}]),
        _table("software", "Software", []),
    ]
    new = {"title": "Harmonization evaluation", "tables": tables_json("harmonization", tables)}
    assert new["tables"]["site-probe"] == {"caption": tables[0].title, "records": [{"a": 1}]}
    old = {"title": "Harmonization evaluation", "tables": {t.title: t.records for t in tables}}
    expected = [(t.id, t.title, t.records) for t in tables]
    assert report_tables(new) == report_tables(old) == expected
    # an old caption the current report has no id for gets its slug; a section without tables gives none
    assert report_tables({"tables": {"A table of 2026 (old)": [{"a": 1}]}}) == [
        ("a-table-of-2026-old", "A table of 2026 (old)", [{"a": 1}])
    ]
    assert report_tables({"title": "Nothing here", "present": False}) == []


def test_a_table_id_is_a_slug_used_once_per_section():
    with pytest.raises(ValueError, match="not a kebab-case slug"):
        _table("Site probe", "Site probe", [])
    with pytest.raises(ValueError, match="section harmonization: table id 'site-probe' of 'Another' is already used"):
        tables_json("harmonization", [_table("site-probe", "Site probe", []), _table("site-probe", "Another", [])])
    # the same id in two sections is fine (the seed tables of brain-age and ad-classification)
    sections = [Section(s, s, tables=[_table("bundle-seeds", "Seeds", [])]) for s in ("brain-age", "ad-classification")]
    assert [list(tables_json(s.id, s.tables)) for s in sections] == [["bundle-seeds"], ["bundle-seeds"]]


@pytest.mark.parametrize("path", sorted((REPO / "docs" / "results").rglob("*report.json")), ids=lambda p: p.name)
def test_committed_reports_read_with_the_current_ids(path):
    """The committed study reports (written before the ids, or after) give the ids the findings read."""
    sections = json.loads(path.read_text())["sections"]
    for section_id, section in sections.items():
        ids = [table_id for table_id, _, _ in report_tables(section)]
        assert len(ids) == len(set(ids)), (section_id, ids)
        assert READ_BY_FINDINGS.get(section_id, set()) <= set(ids), section_id
