"""Measure how hard the phantom's tasks are, from its true volumes (a benchmark, prints numbers).

    python -m pipeline.phantom.calibrate --subjects 300 --resolution 2 --out calibration.json

Draws latent subjects with the demographics of the chosen sites, builds their anatomy (no
rendering) and fits simple models on the true ICV-normalised ventricle and hippocampal volumes:

* brain age: linear regression on controls, 5-fold cross-validated MAE (on the two volumes, and
  with cortical GM volume added), beside the MAE of predicting the training mean (the baseline);
* CN vs AD: logistic regression on the two volumes and age, 5-fold cross-validated balanced
  accuracy (chance 0.5).

Realistic difficulty means both are clearly better than their baselines and far from perfect.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import balanced_accuracy_score, mean_absolute_error
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.phantom.anatomy import Effects, build_anatomy
from pipeline.phantom.generate import PhantomSpec, plan_subjects
from pipeline.phantom.scanner import load_site_profiles
from pipeline.phantom.template import load_template

__all__ = ["anatomy_table", "task_difficulty"]


def anatomy_table(spec: PhantomSpec) -> pd.DataFrame:
    """True volumes and demographics of every latent subject of ``spec`` (no images rendered)."""
    _, sites = load_site_profiles(spec.profiles)
    template = load_template(spec.resolution)
    rows = []
    for job in plan_subjects(spec, sites):
        anatomy = build_anatomy(template, job.latent, spec.effects)
        rows.append(
            {
                "subject": job.subject,
                "site": job.sessions[0][1],
                "age": job.latent.age,
                "sex": job.latent.sex,
                "diagnosis": job.latent.diagnosis,
                **anatomy.volumes,
            }
        )
    return pd.DataFrame(rows)


def task_difficulty(table: pd.DataFrame, seed: int = 0) -> dict[str, float]:
    """Cross-validated brain-age MAE (controls) and CN-vs-AD balanced accuracy on true volumes."""
    features = np.column_stack(
        [table["ventricles_ml"] / table["brain_ml"], table["hippocampus_ml"] / table["brain_ml"]]
    )
    cn = (table["diagnosis"] == "CN").to_numpy()
    age = table["age"].to_numpy()
    folds = KFold(5, shuffle=True, random_state=seed)
    with_gm = np.column_stack([features, table["gm_ml"] / table["brain_ml"]])
    model = make_pipeline(StandardScaler(), LinearRegression())
    predicted = cross_val_predict(model, features[cn], age[cn], cv=folds)
    predicted_gm = cross_val_predict(model, with_gm[cn], age[cn], cv=folds)
    baseline = cross_val_predict(model, np.zeros((cn.sum(), 1)), age[cn], cv=folds)
    out = {
        "controls": int(cn.sum()),
        "brain_age_mae": float(mean_absolute_error(age[cn], predicted)),
        "brain_age_r": float(np.corrcoef(age[cn], predicted)[0, 1]),
        "brain_age_mae_with_gm": float(mean_absolute_error(age[cn], predicted_gm)),
        "brain_age_mae_mean_baseline": float(mean_absolute_error(age[cn], baseline)),
    }
    both = table["diagnosis"].isin(["CN", "AD"]).to_numpy()
    if both.sum() >= 10 and (table["diagnosis"] == "AD").sum() >= 5:
        x = np.column_stack([features[both], age[both]])
        y = (table["diagnosis"][both] == "AD").to_numpy().astype(int)
        clf = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced"))
        pred = cross_val_predict(clf, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=seed))
        out.update(
            {
                "cn_vs_ad_subjects": int(both.sum()),
                "cn_vs_ad_balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=300, help="subjects per site (default: %(default)s)")
    parser.add_argument("--sites", default="adni,oasis,hospital", help="site demographics to draw from")
    parser.add_argument("--resolution", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args()
    spec = PhantomSpec(
        sites=tuple(args.sites.split(",")),
        subjects_per_site=args.subjects,
        traveling=0,
        resolution=args.resolution,
        seed=args.seed,
        effects=Effects(),
    )
    start = time.perf_counter()
    table = anatomy_table(spec)
    result = {
        "spec": {
            "sites": args.sites,
            "subjects_per_site": args.subjects,
            "resolution": args.resolution,
            "seed": args.seed,
        },
        **task_difficulty(table, args.seed),
        "seconds": time.perf_counter() - start,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        from pipeline.atomic import write_json

        write_json(args.out, result)


if __name__ == "__main__":
    main()
