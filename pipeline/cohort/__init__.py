"""Cohort tables: load a BIDS folder or a manifest, validate it, split it by subject."""

from __future__ import annotations

from pipeline.cohort.load import Cohort, load_bids, load_cohort, load_manifest, write_cohort
from pipeline.cohort.schema import DIAGNOSES, DIAGNOSIS_ALIASES, REQUIRED_COLUMNS, SEXES
from pipeline.cohort.splits import (
    LeakageError,
    attach_splits,
    check_no_leakage,
    find_splits_file,
    kfold_subjects,
    read_splits,
    split_subjects,
    write_splits,
)
from pipeline.cohort.summary import format_summary, summarize
from pipeline.cohort.validate import CohortProblem, CohortValidationError, check_image_header, validate_table

__all__ = [
    "Cohort",
    "load_cohort",
    "load_bids",
    "load_manifest",
    "write_cohort",
    "DIAGNOSES",
    "DIAGNOSIS_ALIASES",
    "REQUIRED_COLUMNS",
    "SEXES",
    "LeakageError",
    "attach_splits",
    "find_splits_file",
    "check_no_leakage",
    "kfold_subjects",
    "read_splits",
    "split_subjects",
    "write_splits",
    "format_summary",
    "summarize",
    "CohortProblem",
    "CohortValidationError",
    "check_image_header",
    "validate_table",
]
