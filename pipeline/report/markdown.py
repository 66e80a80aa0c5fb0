"""``mriharmony report --markdown``: a run's report.json as a deterministic markdown results page.

    mriharmony report --markdown REPORT_JSON_OR_RUN_DIR [--out FILE]

The page holds what the JSON holds and nothing else: a header naming the source file and the run's version
(the report's own ``run`` and ``generated`` fields are quoted as the file has them; no time or path of the
machine that renders it), the headline findings, the summary, then every section with its tables (every
record, numbers formatted as in the HTML report by :func:`pipeline.report.build.format_cell`) and notes.
Figures are named, not drawn. Each table carries an HTML anchor from its id, so that the docs can link to
``results/study.md#<id>``; rendering the same JSON twice gives the same text, byte for byte.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipeline.atomic import write_text
from pipeline.report.build import format_cell
from pipeline.report.tables import report_tables
from pipeline.run import RunLayout

__all__ = ["results_markdown", "report_json_path", "write_results_markdown"]


def _tables(section_json: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(id, caption, records) of each table of a report.json section, in the file's order, in either format
    (:func:`pipeline.report.tables.report_tables`)."""
    return report_tables(section_json)


def _text(value: Any) -> str:
    """A value as one table cell: numbers as :func:`format_cell` writes them, lists and dicts on one line."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return format_cell(value)


def _cell(value: Any) -> str:
    """:func:`_text`, escaped for a markdown table cell (pipes, HTML brackets, line breaks)."""
    text = _text(value).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
    return "<br>".join(text.splitlines()) if "\n" in text else text


def _table(records: list[dict[str, Any]]) -> list[str]:
    """A markdown table of ``records``: the columns in the order they first appear, a blank cell for a
    record that lacks a column."""
    if not records:
        return ["(no rows)"]
    columns = list(dict.fromkeys(k for record in records for k in record))
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for record in records:
        lines.append("| " + " | ".join(_cell(record[c]) if c in record else "" for c in columns) + " |")
    return lines


def _notes(notes: list[str]) -> list[str]:
    """One bullet per one-line note; a note of several lines (a configuration file) as a code block."""
    lines: list[str] = []
    for note in notes:
        text = str(note).rstrip()
        if "\n" in text:
            fence = "````" if "```" in text else "```"
            lines += ["", fence, *(line.rstrip() for line in text.splitlines()), fence, ""]
        else:
            lines.append(f"- {text}")
    return lines


def _anchor_ids(report: dict[str, Any]) -> dict[tuple[str, int], str]:
    """Every table's anchor, keyed by (section id, index in the section): its id, or ``SECTION-ID`` where the
    id is another table's too or an anchor of the page itself (the findings, the summary, a section)."""
    sections = report.get("sections") or {}
    keys = [
        ((sid, i), table_id) for sid, section in sections.items() for i, (table_id, _, _) in enumerate(_tables(section))
    ]
    taken = {"headline-findings", "summary", *sections}
    counts: dict[str, int] = {}
    for _, table_id in keys:
        counts[table_id] = counts.get(table_id, 0) + 1
    return {
        key: (table_id if counts[table_id] == 1 and table_id not in taken else f"{key[0]}-{table_id}")
        for key, table_id in keys
    }


def results_markdown(report: dict[str, Any], *, source: str) -> str:
    """The markdown results page of ``report`` (a report.json as ``mriharmony report`` writes it).

    Args:
        report: the parsed report.json.
        source: how the page names the file it was made from (a path relative to the repository, as the
            regenerating command is given it); it is printed as is.

    Returns:
        The page, ending with one newline. Nothing in it depends on when or where it is rendered.
    """
    lines = [
        "# Results",
        "",
        f"Generated from `{source}` by `mriharmony report --markdown`. The run: mriharmony "
        f"{report.get('version', 'unknown version')}, run folder `{report.get('run', 'unknown')}`, report "
        f"written {report.get('generated', 'at an unknown time')}. Numbers are formatted as in the HTML report "
        "(3 decimals below 10, 2 below 100, 1 above; n/a where missing); the JSON holds them unrounded. "
        "Do not edit this page by hand: regenerate it.",
    ]
    findings = report.get("findings") or []
    if findings:
        lines += ["", '<a id="headline-findings"></a>', "", "## Headline findings", ""]
        lines += [f"- **{f.get('topic', '')}**: {f.get('text', '')}" for f in findings]
    summary = report.get("summary") or {}
    if summary:
        lines += ["", '<a id="summary"></a>', "", "## Summary", ""]
        lines += _table([{"measure": k, "value": v} for k, v in summary.items()])
    anchors = _anchor_ids(report)
    for sid, section in (report.get("sections") or {}).items():
        lines += ["", f'<a id="{sid}"></a>', "", f"## {section.get('title', sid)}"]
        if not section.get("present", True):
            missing = ", ".join(f"`{m}`" for m in section.get("missing") or []) or "its inputs"
            lines += ["", f"Not in this run: {missing} not found."]
            continue
        if section.get("intro"):
            lines += ["", str(section["intro"]).strip()]
        if section.get("missing"):
            lines += ["", "Not found: " + ", ".join(f"`{m}`" for m in section["missing"]) + "."]
        for i, (_, caption, records) in enumerate(_tables(section)):
            lines += ["", f'<a id="{anchors[(sid, i)]}"></a>', "", f"### {caption}", ""]
            lines += _table(records)
        if section.get("notes"):
            lines += ["", "Notes:", ""] + _notes(section["notes"])
        if section.get("figures"):
            lines += ["", "Figures (in report.html only): " + "; ".join(str(f) for f in section["figures"]) + "."]
    return _join(lines)


def _join(lines: list[str]) -> str:
    """The lines as one text: no trailing spaces, no two blank lines in a row outside code blocks, no blank
    line at either end, one final newline."""
    out: list[str] = []
    fence = ""
    for line in (line.rstrip() for line in lines):
        if not fence and line.startswith("```"):
            fence = line
        elif fence and line == fence:
            fence = ""
        elif not fence and not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def report_json_path(report_or_run: str | os.PathLike) -> Path:
    """The report.json named by ``report_or_run``: the file itself, or a run folder's ``report/report.json``."""
    path = Path(report_or_run)
    if path.is_dir():
        path = RunLayout(path).report_json
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such report.json (write it with `mriharmony report RUN_DIR`)")
    return path


def write_results_markdown(report_or_run: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Render the report.json of ``report_or_run`` (a file or a run folder) with :func:`results_markdown` and
    write the page atomically to ``out`` (default: the JSON's path with ``.md``); returns the page's path.

    The page names its source by its path relative to the current folder (as given, if it lies outside), so
    regenerating it from the repository root gives the same text on any machine.
    """
    path = report_json_path(report_or_run)
    relative = os.path.relpath(path)
    source = Path(relative).as_posix() if not relative.startswith("..") else str(report_or_run)
    page = results_markdown(json.loads(path.read_text()), source=source)
    return write_text(Path(out) if out is not None else path.with_suffix(".md"), page)
