"""The report's tables by their stable id: how ``report.json`` stores them, and one reader for every report.json.

Each :class:`pipeline.report.collect.Table` has an ``id`` (a kebab-case slug, unique within its section) beside its
caption, so that findings, summary rows and readers of ``report.json`` find a table by what it is, not by how its
caption reads. ``report.json`` stores a section's tables as ``{id: {"caption": ..., "records": [...]}}``; reports
written before the ids (``{caption: records}``, e.g. the committed ``docs/results/*.json``) are read by
:func:`report_tables` too, with the same ids.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    from pipeline.report.collect import Section, Table

__all__ = ["TABLE_ID", "slug", "tables_json", "records_by_id", "report_tables"]

#: what a table id looks like: lower-case words and digits joined by single hyphens
TABLE_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")

#: the ids of the tables of reports written before the ids existed, by the start of their caption (anchored
#: regular expressions; the captions of the committed docs/results reports). Other captions get their slug.
LEGACY_CAPTIONS: tuple[tuple[str, str], ...] = (
    (r"Images per site$", "images-per-site"),
    (r"Failures and images stopped by the QC gate", "failures"),
    (r"Site effects after preprocessing", "site-effects"),
    (r"Per-site medians of the image quality metrics", "site-medians"),
    (r"Site probe: ", "site-probe"),
    (r"Traveling subjects, mean with 95% interval", "traveling-mean"),
    (r"Biology kept\? ", "biology-kept"),
    (r"Traveling subjects against their real reference-site image", "traveling-metrics"),
    (r"Biological signal kept", "biological-signal"),
    (r"Traveling subjects, per subject", "traveling-per-subject"),
    (r"Brain age, pooled: ", "brain-age-pooled"),
    (r"Brain age, held_out: ", "brain-age-held-out"),
    (r"Brain age, cross_site: ", "brain-age-cross-site"),
    (r"Brain age, cross-validated: ", "brain-age-cross-validated"),
    (r"brain_age bundle on the run's test split", "brain-age-bundle"),
    (r"\w+ bundle over \d+ training seeds", "bundle-seeds"),
    (r"Test metrics$", "test-metrics"),
    (r"Augmentation grid$", "augmentation-grid"),
    (r"Synthetic-image quality$", "synthetic-quality"),
    (r"Traveling subjects against their own reference-site image", "traveling-mae"),
    (r"Retrained site probe", "site-probe"),
    (r"Biology kept: ", "biology-kept"),
    (r"Cross-site brain age: ", "brain-age-cross-site"),
    (r"Wall time per stage$", "wall-time"),
    (r"Seeds$", "seeds"),
    (r"Software$", "software"),
)


def slug(text: str) -> str:
    """``text`` as a table id: lower case, every run of other characters than letters and digits one hyphen.

    Examples:
        >>> slug("Site probe: balanced accuracy (chance 0.5)")
        'site-probe-balanced-accuracy-chance-0-5'
    """
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def tables_json(section_id: str, tables: Iterable[Table]) -> dict[str, dict[str, Any]]:
    """A section's tables as report.json stores them, ``{id: {"caption": title, "records": [...]}}``; a table id
    used twice in the section is an error (the second would hide the first)."""
    out: dict[str, dict[str, Any]] = {}
    for table in tables:
        if table.id in out:
            raise ValueError(
                f"section {section_id}: table id {table.id!r} of {table.title!r} is already used by "
                f"{out[table.id]['caption']!r}"
            )
        out[table.id] = {"caption": table.title, "records": table.records}
    return out


def records_by_id(sections: Iterable[Section]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The records of every table, by section id, then table id (what the findings read)."""
    return {s.id: {t: v["records"] for t, v in tables_json(s.id, s.tables).items()} for s in sections}


def _legacy_id(caption: str) -> str:
    return next((table_id for pattern, table_id in LEGACY_CAPTIONS if re.match(pattern, caption)), slug(caption))


def report_tables(section_json: Mapping[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """The tables of one section of a report.json as (id, caption, records), in page order.

    Reads both formats: ``{"tables": {id: {"caption": ..., "records": [...]}}}`` and the older
    ``{"tables": {caption: [...]}}``, whose tables get the id the current report gives them (the slug of the
    caption where it has none). A section without tables gives none.

    Examples:
        >>> report_tables({"tables": {"site-probe": {"caption": "Site probe: ...", "records": [{"a": 1}]}}})
        [('site-probe', 'Site probe: ...', [{'a': 1}])]
        >>> report_tables({"tables": {"Site probe: balanced accuracy": [{"a": 1}], "An extra table": []}})
        [('site-probe', 'Site probe: balanced accuracy', [{'a': 1}]), ('an-extra-table', 'An extra table', [])]
    """
    tables = section_json.get("tables") or {}
    out: list[tuple[str, str, list[dict[str, Any]]]] = []
    seen: set[str] = set()
    for key, value in tables.items():
        if isinstance(value, Mapping):  # the current format: id -> caption and records
            table_id, caption, records = key, str(value.get("caption", key)), list(value.get("records", []))
        else:  # before the ids: caption -> records
            caption, records = key, list(value)
            table_id = _legacy_id(caption)
            if table_id in seen:  # two old captions of one id: the second keeps its own slug
                table_id = slug(caption)
        seen.add(table_id)
        out.append((table_id, caption, records))
    return out
