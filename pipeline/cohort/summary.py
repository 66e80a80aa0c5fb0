"""A per-site summary of a cohort table: subjects, images, age and diagnosis."""

from __future__ import annotations

import pandas as pd

from pipeline.cohort.schema import DIAGNOSES

__all__ = ["summarize", "format_summary"]


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """One row per site (and a total): subjects, images, age mean/sd/min/max, sex and diagnosis counts.

    Age statistics are over images (age at scan); sex and diagnosis counts are over subjects.
    """

    def one(group: pd.DataFrame) -> dict:
        subjects = group.drop_duplicates("subject")
        row = {
            "subjects": group["subject"].nunique(),
            "images": len(group),
            "age_mean": group["age"].mean(),
            "age_sd": group["age"].std(ddof=1) if len(group) > 1 else 0.0,
            "age_min": group["age"].min(),
            "age_max": group["age"].max(),
            "female": int((subjects["sex"] == "F").sum()),
        }
        for dx in DIAGNOSES:
            row[dx] = int((subjects["diagnosis"] == dx).sum())
        return row

    rows = {site: one(group) for site, group in table.groupby("site", sort=True)}
    rows["all"] = one(table)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("site").reset_index()


def format_summary(summary: pd.DataFrame) -> str:
    """Render :func:`summarize` as a fixed-width text table."""
    lines = [
        f"{'site':<12}{'subj':>6}{'imgs':>6}{'age (mean±sd, range)':>26}{'F':>5}"
        + "".join(f"{d:>6}" for d in DIAGNOSES)
    ]
    for _, r in summary.iterrows():
        age = f"{r.age_mean:5.1f}±{r.age_sd:4.1f} ({r.age_min:4.1f}-{r.age_max:4.1f})"
        lines.append(
            f"{r.site:<12}{r.subjects:>6}{r.images:>6}{age:>26}{r.female:>5}" + "".join(f"{r[d]:>6}" for d in DIAGNOSES)
        )
    return "\n".join(lines)
