"""``mriharmony report RUN_DIR``: one self-contained HTML page and a JSON with the same numbers.

    mriharmony report RUN_DIR [--out RUN_DIR/report]

Writes ``report.html`` (figures embedded as data URIs, inline CSS, a Content-Security-Policy that
forbids any network or file access) and ``report.json`` (every table's caption and raw records under its stable id,
the summary, the findings and the one statement of what the run is too small to answer, what was missing),
atomically. Sections: preprocessing QC, harmonization evaluation, brain-age benchmark,
AD classification, synthetic augmentation, configuration / seeds / versions / timings.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from pipeline import __version__
from pipeline.atomic import write_json, write_text
from pipeline.report.collect import BENCHMARK_TABLE_IDS, Section, collect_sections
from pipeline.report.findings import (
    MIN_TEST_SUBJECTS,
    MIN_TRAVELING_SUBJECTS,
    Finding,
    headline_findings,
    underpowered_statement,
)
from pipeline.report.tables import records_by_id, tables_json
from pipeline.run import RunLayout

__all__ = ["ReportResult", "build_report", "format_cell", "summary_rows"]

TEMPLATE = Path(__file__).with_name("template.html.j2")


@dataclass
class ReportResult:
    html: Path
    json: Path
    sections: list[Section]
    summary: list[tuple[str, str]]
    findings: list[Finding]

    @property
    def underpowered(self) -> str:
        """The one statement of what this run is too small to answer ("" when nothing is)."""
        return underpowered_statement(self.findings)

    @property
    def summary_text(self) -> str:
        """The powered findings, then the one underpowered statement, then the summary rows."""
        width = max((len(k) for k, _ in self.summary), default=0)
        lines = [
            f"report: {self.html}",
            "headline findings:",
            *(f"  - {f.line}" for f in self.findings if not f.underpowered),
            *([f"  - {self.underpowered}"] if self.underpowered else []),
            *(f"  {k:<{width}}  {v}" for k, v in self.summary),
        ]
        return "\n".join(lines)


def format_cell(value: Any) -> str:
    """How a table value reads on the page: 3 decimals below 10, fewer above, n/a for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_cell(v) for v in value) + "]"
    return str(value)


def summary_rows(sections: list[Section]) -> list[tuple[str, str]]:
    """The headline numbers of each section, one line each (the demo prints these); tables are found by id."""
    tables = records_by_id(sections)

    def _table(section: str, table_id: str) -> list[dict[str, Any]]:
        return tables.get(section, {}).get(table_id, [])

    rows: list[tuple[str, str]] = []
    per_site = _table("preprocessing", "images-per-site")
    if per_site:
        ok, total = sum(r["ok"] for r in per_site), sum(r["images"] for r in per_site)
        rows.append(("preprocessed images", f"{ok} of {total} ({total - ok} failed)"))
    probes = _table("harmonization", "site-probe")
    for probe, adjustment in dict.fromkeys((r["probe"], r.get("adjustment", "none")) for r in probes):
        part = [r for r in probes if (r["probe"], r.get("adjustment", "none")) == (probe, adjustment)]
        values = ", ".join(f"{r['condition']} {format_cell(r['balanced_accuracy'])}" for r in part)
        n = min(r["n_subjects"] for r in part)
        power = f" (underpowered: n = {n} subjects; see the study run)" if n < MIN_TEST_SUBJECTS else ""
        label = probe if adjustment == "none" else f"{probe}, {adjustment}"
        rows.append((f"site probe ({label}), chance {format_cell(part[0]['chance'])}", values + power))
    traveling = _table("harmonization", "traveling-metrics")
    if traveling:
        intervals = [r for r in _table("harmonization", "traveling-mean") if r["metric"] == "mae"]
        n = min((r["n_subjects"] for r in intervals), default=0)
        power = f" (underpowered: n = {n} traveling subjects; see the study run)" if n < MIN_TRAVELING_SUBJECTS else ""
        rows.append(
            ("traveling-subject MAE", ", ".join(f"{r['condition']} {format_cell(r['mae'])}" for r in traveling) + power)
        )
    for protocol in ("pooled", "held_out", "cross_site"):
        records = _table("brain-age", BENCHMARK_TABLE_IDS[protocol])
        for route in dict.fromkeys((r["train_site"], r["test_site"]) for r in records):
            part = [r for r in records if (r["train_site"], r["test_site"]) == route]
            text = ", ".join(
                f"{r['condition']} {r['mae_mean']:.2f} [{format_cell(r['mae_low'])}, {format_cell(r['mae_high'])}]"
                for r in part
            )
            where = route[0] if route[0] == route[1] else f"{route[0]} -> {route[1]}"
            power = " (underpowered)" if any(r["underpowered"] for r in part) else ""
            rows.append(
                (
                    f"brain-age raw MAE, {protocol}, {where} (years)",
                    f"{text}; mean predictor {part[0]['mean_predictor_mae']:.2f}{power}",
                )
            )
    metrics = _table("ad-classification", "test-metrics")
    if metrics:
        n = metrics[0]["n"]
        power = f" (underpowered: n = {n} test images; see the study run)" if n < MIN_TEST_SUBJECTS else ""
        rows.append(
            (
                "AD classification balanced accuracy",
                ", ".join(f"{r['model']} {format_cell(r['balanced_accuracy'])}" for r in metrics) + power,
            )
        )
    grid = _table("augmentation", "augmentation-grid")
    if grid:
        rows.append(
            (
                "augmentation: balanced accuracy, difference to none",
                ", ".join(
                    f"{r['arm']} {format_cell(r['balanced_accuracy_median'])}"
                    + ("" if r["arm"] == "none" else f" ({r['balanced_accuracy_diff']:+.2f})")
                    for r in grid
                ),
            )
        )
    timings = _table("provenance", "wall-time")
    if timings:
        rows.append(("wall time", f"{timings[-1]['seconds'] / 60:.1f} min"))
    return rows


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE.parent)), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["cell"] = format_cell
    return env


def build_report(run: str | Path, out: str | Path | None = None) -> ReportResult:
    """Write ``report.html`` and ``report.json`` for the run folder ``run`` (default into ``run/report``)."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run folder (expected the --out folder of `mriharmony demo`)")
    sections = collect_sections(run)
    if not any(s.present for s in sections if s.id != "provenance"):
        raise ValueError(
            f"{run}: nothing to report: none of {', '.join(m for s in sections for m in s.missing)} exists"
        )
    out = Path(out) if out is not None else RunLayout(run).report
    summary = summary_rows(sections)
    findings = headline_findings(records_by_id(sections))
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    html = (
        _environment()
        .get_template(TEMPLATE.name)
        .render(
            run=str(run.resolve()),
            version=__version__,
            generated=generated,
            sections=sections,
            summary=summary,
            findings=[f for f in findings if not f.underpowered],
            underpowered=underpowered_statement(findings),
        )
    )
    html_path = write_text(out / RunLayout(run).report_html.name, html)
    json_path = write_json(
        out / RunLayout(run).report_json.name,
        {
            "run": str(run.resolve()),
            "version": __version__,
            "generated": generated,
            "summary": dict(summary),
            "findings": [
                {"topic": f.topic, "text": f.text, "n": f.n, "underpowered": f.underpowered} for f in findings
            ],
            "underpowered": underpowered_statement(findings),
            "sections": {
                s.id: {
                    "title": s.title,
                    "present": s.present,
                    "intro": s.intro,
                    "missing": s.missing,
                    "tables": tables_json(s.id, s.tables),
                    "notes": s.notes,
                    "figures": [f.title for f in s.figures],
                }
                for s in sections
            },
        },
    )
    return ReportResult(html=html_path, json=json_path, sections=sections, summary=summary, findings=findings)
