"""The volume baseline printed beside every CNN: a linear model on ventricle and hippocampal volumes.

A logistic regression (diagnosis) or a linear regression (age) on the log of a few regional volumes,
fitted on the training split's subjects only and evaluated on the same rows as the CNN. On the phantom
the volumes are the ground truth in ``derivatives/phantom/truth.tsv`` (found from the images' ``source``
paths); on real data pass any table with ``subject`` (and ``session``) and volume columns, for example
FreeSurfer aseg volumes exported to TSV, with ``columns`` naming them.

If a CNN does not beat this baseline, the CNN has not learnt more than two numbers per brain carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "VOLUME_COLUMNS",
    "find_phantom_volumes",
    "read_volume_table",
    "attach_volumes",
    "volume_classifier",
    "volume_regressor",
]

VOLUME_COLUMNS: tuple[str, ...] = ("ventricles_ml", "hippocampus_ml")
PHANTOM_TRUTH = Path("derivatives") / "phantom" / "truth.tsv"


def find_phantom_volumes(table: pd.DataFrame) -> Path | None:
    """The phantom's truth.tsv above the images' ``source`` paths (None when the cohort is not a phantom)."""
    if "source" not in table.columns or table.empty:
        return None
    for parent in Path(str(table["source"].iloc[0])).parents:
        if (parent / PHANTOM_TRUTH).exists():
            return parent / PHANTOM_TRUTH
    return None


def read_volume_table(path: str | Path, columns: Sequence[str] = VOLUME_COLUMNS) -> pd.DataFrame:
    """``subject``, ``session`` and the volume ``columns`` of a TSV; errors name the file and the column."""
    table = pd.read_csv(
        path, sep="\t", dtype={"subject": str, "session": str}, keep_default_na=False, na_values=["n/a", ""]
    )
    missing = [c for c in ("subject", *columns) if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected subject, optional session and {list(columns)}")
    if "session" not in table.columns:
        table["session"] = ""
    table["session"] = table["session"].fillna("")
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce")
        if not (values > 0).all():
            bad = table.loc[~(values > 0), "subject"].tolist()[:5]
            raise ValueError(f"{path}: column {column!r} must hold positive volumes; bad for subjects {bad}")
        table[column] = values
    return table[["subject", "session", *columns]]


def attach_volumes(table: pd.DataFrame, volumes: pd.DataFrame, columns: Sequence[str] = VOLUME_COLUMNS) -> pd.DataFrame:
    """``table`` with the volume columns joined on subject and session; every row must find its volumes."""
    keyed = volumes.drop_duplicates(["subject", "session"])
    merged = table.drop(columns=[c for c in columns if c in table.columns]).merge(
        keyed, on=["subject", "session"], how="left", validate="many_to_one"
    )
    missing = merged[merged[list(columns)].isna().any(axis=1)]
    if len(missing):
        raise ValueError(
            f"no volumes for {len(missing)} image(s), e.g. subject {missing['subject'].iloc[0]!r} "
            f"session {missing['session'].iloc[0]!r}"
        )
    return merged


def _features(table: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    return np.log(table[list(columns)].to_numpy(float))


def volume_classifier(
    train: pd.DataFrame, evaluate: pd.DataFrame, *, n_classes: int, columns: Sequence[str] = VOLUME_COLUMNS
) -> np.ndarray:
    """Class probabilities (len(evaluate), n_classes) of a class-balanced logistic regression on log volumes,
    fitted on ``train`` (``label`` = class index). Classes absent from training get probability 0."""
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=1000))
    model.fit(_features(train, columns), train["label"].astype(int))
    probabilities = np.zeros((len(evaluate), n_classes))
    probabilities[:, model.classes_] = model.predict_proba(_features(evaluate, columns))
    return probabilities


def volume_regressor(
    train: pd.DataFrame, evaluate: pd.DataFrame, *, columns: Sequence[str] = VOLUME_COLUMNS
) -> np.ndarray:
    """Predicted ``label`` (age) of ``evaluate`` by a linear regression on log volumes fitted on ``train``."""
    model = make_pipeline(StandardScaler(), LinearRegression())
    model.fit(_features(train, columns), train["label"].astype(float))
    return model.predict(_features(evaluate, columns))
