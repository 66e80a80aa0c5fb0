"""The run report: one self-contained HTML page and a JSON with the same numbers (``mriharmony report``)."""

from __future__ import annotations

from pipeline.report.build import ReportResult, build_report, format_cell, summary_rows
from pipeline.report.collect import SECTION_IDS, collect_sections
from pipeline.report.tables import report_tables

__all__ = [
    "ReportResult",
    "build_report",
    "collect_sections",
    "format_cell",
    "report_tables",
    "summary_rows",
    "SECTION_IDS",
]
