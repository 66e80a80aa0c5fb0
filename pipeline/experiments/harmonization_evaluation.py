"""Harmonization evaluation: ``mriharmony evaluate harmonization --raw DERIV --harmonized HARM [--site S] --out EVAL``.

For the harmonized (target) site against the reference site (the harmonizer's output site), on the
subjects of one split (``test`` by default; ``all`` includes subjects the harmonizer was trained on, which
flatters it), every condition is scored the same way:

- ``identity``: the preprocessed images unchanged; ``cyclegan`` (a pairwise CycleGAN) or ``many_to_one`` (a
  many-to-one harmonizer, whose folder holds every site: ``site`` names the one evaluated): the harmonized
  images of HARM; ``histogram`` and ``zscore``: the baselines of :mod:`pipeline.evaluate.intensity_baselines`,
  fitted on the reference site's training images; ``combat``: ComBat on the regional features
  (:mod:`pipeline.evaluate.combat`), fitted on the training rows of both sites and applied without the
  evaluated rows' age and diagnosis, which the biology checks predict (features only, so it enters the
  feature-level probe and the biological-signal check, not the image-level ones). On a site the
  many-to-one harmonizer never saw, ComBat is left out and the report says why (``not_applicable``): it
  cannot harmonize a site without being refitted on that site's images, which is what the comparison is about.
- Site probe (:mod:`pipeline.evaluate.site_probe`): linear on 8^3 volumes, MONAI CNN on 16^3 volumes,
  and linear on the regional features; subject-level cross-validation, bootstrap intervals. Beside the raw
  probe (``adjustment`` ``none``), two deconfounded ones for the linear and feature probes:
  ``residualized`` (features residualized for age, sex and diagnosis on the training folds) and
  ``traveling`` (the traveling subjects alone: the same anatomy at both sites, so a perfect harmonizer
  brings it to chance).
- Biology leak (:mod:`pipeline.evaluate.biology_leak`): a CN-vs-AD probe and an age regressor per
  condition, paired to the identity's; a harmonizer must not push them below it.
- t-SNE of the 8^3 volumes (:mod:`pipeline.evaluate.tsne`), one panel per image condition.
- Traveling subjects (present at both sites in the split): MAE / PSNR / SSIM of the target-site image
  under each condition against the same subject's real reference-site image, inside the union of both
  images' brain masks (:mod:`pipeline.evaluate.fidelity`), whole-cube values beside; ``oracle`` is each
  target image histogram-matched to its own reference image (uses the answer: a bound, not a method).
- Biological signal (:mod:`pipeline.evaluate.biological_signal`): age slope, AD effect and site effect
  of the regional T1 measures per condition, pooled over both sites (site as a fixed effect).
- Biology within site (:mod:`pipeline.evaluate.within_site_biology`): inside each site, on its own
  (non-traveling) subjects, the hippocampal and ventricular AD effects, the age slopes and a CN-vs-AD probe,
  per condition with intervals, paired to the identity; "kept" when the intervals overlap, "floor" where the
  raw effect's interval already includes zero (chance), so that "kept" cannot fail there.
- Traveling paired test (:mod:`pipeline.evaluate.traveling_paired`): the within-subject difference of each
  regional measure between the two sites, per condition, with its interval and p-value.

Writes ``site_probe.tsv``, ``tsne.tsv`` and ``tsne.png``, ``traveling.tsv``, ``features.tsv``,
``biological.tsv``, ``biology_leak.tsv``, ``within_site.tsv``, ``traveling_paired.tsv`` and ``evaluation.json``
(everything, with the settings) into EVAL.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from pipeline import __version__
from pipeline.atomic import write_table
from pipeline.cohort import attach_splits, find_splits_file, read_splits
from pipeline.evaluate.biological_signal import biological_effects
from pipeline.evaluate.biology_leak import biology_probes, paired_to_reference
from pipeline.evaluate.combat import ComBat
from pipeline.evaluate.fidelity import image_fidelity
from pipeline.evaluate.intensity_baselines import fit_intensity_baseline
from pipeline.evaluate.regional_features import REGIONS, regional_means
from pipeline.evaluate.site_probe import confound_design, probe_row, site_probe, traveling_rows
from pipeline.evaluate.traveling_paired import traveling_paired_test
from pipeline.evaluate.tsne import tsne_figure, tsne_table
from pipeline.evaluate.within_site_biology import within_site_biology
from pipeline.preprocess.batch import read_preprocessed
from pipeline.run.records import EvaluationRecord

__all__ = ["evaluate_harmonization", "format_evaluation", "describe_harmonized", "HarmonizedFolder", "BASELINE_NAMES"]

BASELINE_NAMES = ("identity", "histogram", "zscore", "combat")
FEATURES = [f"{r}_mean" for r in REGIONS]
TRAVEL_METRICS = ("mae", "psnr", "ssim", "mae_cube", "psnr_cube", "ssim_cube")  # in the brain mask; whole cube
log = logging.getLogger("mriharmony.evaluate")


def _load(path: str) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


def _pool(arrays: list[np.ndarray], size: int) -> np.ndarray:
    return np.stack(
        [torch.nn.functional.adaptive_avg_pool3d(torch.from_numpy(a)[None, None], size)[0, 0].numpy() for a in arrays]
    )


@dataclass(frozen=True)
class HarmonizedFolder:
    """What a `mriharmony harmonize` folder's dataset_description.json says it holds."""

    folder: Path
    kind: str
    input_sites: tuple[str, ...]
    output_site: str
    unseen_sites: tuple[str, ...]


def describe_harmonized(harmonized_dir: Path) -> HarmonizedFolder:
    """Kind, input, output and unseen sites of a `mriharmony harmonize` folder (its dataset_description.json)."""
    description = harmonized_dir / "dataset_description.json"
    if not description.exists():
        raise FileNotFoundError(f"{description} does not exist (expected the output folder of `mriharmony harmonize`)")
    info = json.loads(description.read_text())
    inputs = info["InputSites"] if "InputSites" in info else [info["InputSite"]]  # InputSite: older folders
    return HarmonizedFolder(
        harmonized_dir,
        info.get("Kind", "cyclegan"),
        tuple(inputs),
        info["OutputSite"],
        tuple(info.get("UnseenSites", ())),
    )


def _condition_names(described: Sequence[HarmonizedFolder]) -> list[str]:
    """``cyclegan`` / ``many_to_one`` for one folder of a kind, ``<kind>_seed<k>`` for several."""
    counts = {kind: sum(d.kind == kind for d in described) for kind in {d.kind for d in described}}
    seen: dict[str, int] = {}
    names = []
    for d in described:
        k = seen[d.kind] = seen.get(d.kind, -1) + 1
        names.append(d.kind if counts[d.kind] == 1 else f"{d.kind}_seed{k}")
    return names


def _tables(
    raw_dir: Path, harmonized_dirs: Sequence[Path], splits_file, site: str | None
) -> tuple[pd.DataFrame, str, str, list[str], list[HarmonizedFolder]]:
    """The raw table of the evaluated site and the reference site with one ``harmonized_<k>`` image column per
    harmonized folder."""
    from pipeline.harmonize import read_harmonized

    described = [describe_harmonized(folder) for folder in harmonized_dirs]
    first = described[0]
    if site is None:
        if len(first.input_sites) != 1:
            raise ValueError(
                f"{first.folder} harmonizes {list(first.input_sites)} -> {first.output_site}: name the site to "
                f"evaluate (--site)"
            )
        site = first.input_sites[0]
    target, reference = site, first.output_site
    for d in described:
        if target not in d.input_sites or d.output_site != reference:
            raise ValueError(
                f"{d.folder} harmonizes {list(d.input_sites)} -> {d.output_site}, not {target} -> {reference} like "
                f"{first.folder}; pass harmonizers of one site pair"
            )
    raw = attach_splits(read_preprocessed(raw_dir), read_splits(find_splits_file(raw_dir, splits_file)))
    raw = raw[raw["site"].isin([target, reference])].copy()
    columns = []
    for k, folder in enumerate(harmonized_dirs):
        harmonized = read_harmonized(folder)
        harmonized = harmonized[harmonized["harmonized"].astype(str).str.lower() == "true"]
        columns.append(f"harmonized_{k}")
        raw[columns[-1]] = raw.merge(
            harmonized[["subject", "session", "site", "image_cube"]].rename(columns={"image_cube": columns[-1]}),
            on=["subject", "session", "site"],
            how="left",
        )[columns[-1]].to_numpy()
    return raw.reset_index(drop=True), target, reference, columns, described


#: why ComBat is not a comparison on a site the many-to-one harmonizer never saw
COMBAT_UNSEEN = (
    "not applicable: the site was never seen by the many-to-one harmonizer, and ComBat cannot harmonize a site "
    "without being refitted on that site's own images"
)


def evaluate_harmonization(
    raw_dir: str | Path,
    harmonized_dir: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    baselines: Sequence[str] = BASELINE_NAMES,
    split: str = "test",
    splits_file: str | Path | None = None,
    probes: Sequence[str] = ("linear", "cnn"),
    n_resamples: int = 1000,
    seed: int = 0,
    site: str | None = None,
) -> dict:
    """Evaluate harmonization (see the module docstring); returns what evaluation.json holds.

    ``harmonized_dir``: one ``mriharmony harmonize`` folder (condition ``cyclegan``, or ``many_to_one`` for a
    many-to-one harmonizer), or several - one per harmonizer seed, each trained on the same subjects, pairwise
    and many-to-one side by side - scored as ``<kind>_seed<k>`` so the spread over harmonizer seeds shows.
    ``site``: the site to evaluate against the harmonizers' reference site (needed when a folder holds several;
    default: the one input site). When a many-to-one harmonizer never saw it, ComBat is left out (it would have
    to be refitted on that site: the report says so under ``not_applicable``).
    """
    unknown = sorted(set(baselines) - set(BASELINE_NAMES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; allowed: {list(BASELINE_NAMES)}")
    started = time.perf_counter()
    out = Path(out)
    folders = [Path(harmonized_dir)] if isinstance(harmonized_dir, (str, Path)) else [Path(h) for h in harmonized_dir]
    table, target, reference, harmonized_columns, described = _tables(Path(raw_dir), folders, splits_file, site)
    unseen = any(target in d.unseen_sites for d in described)
    not_applicable = {"combat": COMBAT_UNSEEN} if unseen and "combat" in baselines else {}
    rows = (table if split == "all" else table[table["split"] == split]).reset_index(drop=True)
    for folder, column in zip(folders, harmonized_columns):
        missing = rows.loc[(rows["site"] == target) & rows[column].isna(), "subject"]
        if len(missing):
            raise ValueError(
                f"{folder}: no harmonized image for {target} subject(s) {sorted(missing)[:5]} of split {split}"
            )
    if rows["site"].nunique() < 2:
        raise ValueError(
            f"split {split!r} has images of {sorted(set(rows['site']))} only; need {target} and {reference}"
        )
    is_target = (rows["site"] == target).to_numpy()
    raw_images = [_load(p) for p in rows["image_cube"]]
    masks = [np.asarray(nib.load(p).dataobj) > 0 for p in rows["mask_cube"]]
    conditions: dict[str, list[np.ndarray]] = {"identity": [a for a, _ in raw_images]}
    names = _condition_names(described)
    for name, column in zip(names, harmonized_columns):
        conditions[name] = [(_load(h)[0] if t else a) for (a, _), h, t in zip(raw_images, rows[column], is_target)]
    reference_train = table[(table["site"] == reference) & (table["split"] == "train")]
    for name in ("histogram", "zscore"):
        if name in baselines:
            fitted = fit_intensity_baseline(
                name,
                (
                    (_load(i)[0], np.asarray(nib.load(m).dataobj) > 0)
                    for i, m in zip(reference_train["image_cube"], reference_train["mask_cube"])
                ),
            )
            conditions[name] = [fitted(a, m) if t else a for (a, _), m, t in zip(raw_images, masks, is_target)]
    affines = [affine for _, affine in raw_images]
    features = {
        name: pd.DataFrame([regional_means(a, aff) for a, aff in zip(arrays, affines)])
        for name, arrays in conditions.items()
    }
    if "combat" in baselines and not unseen:
        features["combat"] = _combat(table, features["identity"], rows["site"])
    demographics = rows[[c for c in ("subject", "session", "site", "age", "sex", "diagnosis") if c in rows.columns]]

    probe_rows, tsne_tables, travel_rows, effect_rows, leak_rows = [], {}, [], [], []
    confounds = confound_design(rows)
    traveling = traveling_rows(rows)
    leak_reference: dict[str, dict] = {}
    for name, arrays in conditions.items():
        pooled = {8: _pool(arrays, 8)}  # the linear probe's and t-SNE's input
        for probe in probes:
            size = 8 if probe == "linear" else 16
            if size not in pooled:
                pooled[size] = _pool(arrays, size)
            result = site_probe(rows, probe=probe, volumes=pooled[size], n_resamples=n_resamples, seed=seed)
            probe_rows.append(_probe_row(name, probe, result))
        probe_rows += _deconfounded_probes(name, "linear", rows, pooled[8], confounds, traveling, n_resamples, seed)
        leak_rows += _biology_leak(name, "linear", rows, pooled[8], leak_reference, n_resamples, seed)
        tsne_tables[name] = tsne_table(pooled[8], rows, condition=name, seed=seed)
        travel_rows += _traveling(name, arrays, masks, rows, target, reference)
    travel_rows += _traveling_oracle(conditions["identity"], masks, rows, target, reference)
    for name, table_features in features.items():
        values = table_features[FEATURES].to_numpy(np.float32)
        result = site_probe(rows, probe="linear", volumes=values, n_resamples=n_resamples, seed=seed)
        probe_rows.append(_probe_row(name, "features", result))
        probe_rows += _deconfounded_probes(name, "features", rows, values, confounds, traveling, n_resamples, seed)
        leak_rows += _biology_leak(name, "features", rows, values, leak_reference, n_resamples, seed)
        effect_rows.append(
            biological_effects(pd.concat([demographics, table_features[FEATURES]], axis=1), FEATURES, condition=name)
        )
    probe_table = _paired_to_identity(pd.DataFrame(probe_rows))
    within_site = within_site_biology(features, rows, FEATURES, exclude=traveling, n_resamples=n_resamples, seed=seed)
    traveling_paired = traveling_paired_test(features, rows, FEATURES, target=target, reference=reference)
    leak_table = pd.DataFrame(leak_rows, columns=LEAK_COLUMNS)
    tsne = pd.concat(tsne_tables.values(), ignore_index=True)
    travel = pd.DataFrame(travel_rows, columns=["condition", "subject", *TRAVEL_METRICS])
    effects = pd.concat(effect_rows, ignore_index=True)
    feature_table = pd.concat(
        [pd.concat([demographics, f[FEATURES]], axis=1).assign(condition=n) for n, f in features.items()],
        ignore_index=True,
    )
    write_table(out / "site_probe.tsv", probe_table)
    write_table(out / "tsne.tsv", tsne)
    tsne_figure(tsne_tables, out / "tsne.png", title=f"t-SNE of 8^3 volumes, {target} and {reference}, {split} split")
    write_table(out / "traveling.tsv", travel)
    write_table(out / "features.tsv", feature_table)
    write_table(out / "biological.tsv", effects)
    write_table(out / "biology_leak.tsv", leak_table)
    write_table(out / "within_site.tsv", within_site)
    write_table(out / "traveling_paired.tsv", traveling_paired)
    report = {
        "version": __version__,
        "raw": str(raw_dir),
        "harmonized": [str(f) for f in folders],
        "target_site": target,
        "reference_site": reference,
        "split": split,
        "n_images": int(len(rows)),
        "n_subjects": int(rows["subject"].nunique()),
        "conditions": list(features),
        "probes": list(probes),
        "seed": seed,
        "site_probe": probe_table.to_dict(orient="records"),
        "traveling": travel.groupby("condition", sort=False)[list(TRAVEL_METRICS)]
        .mean()
        .reset_index()
        .to_dict(orient="records")
        if len(travel)
        else [],
        "traveling_intervals": _traveling_intervals(travel, n_resamples, seed),
        "biological": effects.to_dict(orient="records"),
        "biology_leak": leak_table.to_dict(orient="records"),
        "within_site_biology": within_site.to_dict(orient="records"),
        "traveling_paired": traveling_paired.to_dict(orient="records"),
        "n_traveling": int(rows.loc[traveling, "subject"].nunique()),
        "seconds": time.perf_counter() - started,
        "harmonizer_kinds": {name: d.kind for name, d in zip(names, described)},
        "unseen_site": unseen,
        "not_applicable": not_applicable,
    }
    EvaluationRecord.from_json(report).write(out / "evaluation.json")
    return report


def format_evaluation(report: dict) -> str:
    """evaluation.json as text: the site-probe table and the traveling-subject means."""
    unseen = " (a site the many-to-one harmonizer never saw)" if report.get("unseen_site") else ""
    lines = [
        f"harmonization {report['target_site']} -> {report['reference_site']}{unseen}, split {report['split']}: "
        f"{report['n_images']} images of {report['n_subjects']} subjects",
        "site probe, balanced accuracy [95% interval] (chance 0.5 for two sites):",
    ]
    lines += [
        f"  {row['condition']:<10} {row['probe']:<9} {row.get('adjustment', 'none'):<13} "
        f"{row['balanced_accuracy']:.3f} [{row['low']:.3f}, {row['high']:.3f}]  n={row['n_subjects']}"
        for row in report["site_probe"]
    ]
    if report.get("biology_leak"):
        lines.append(
            "biology kept? diagnosis (balanced accuracy) and age (MAE, y) probes, difference to identity [95%]:"
        )
        lines += [
            f"  {row['condition']:<10} {row['input']:<9} {row['task']:<9} {row['estimate']:.3f} "
            f"({row['difference_to_identity']:+.3f} [{row['difference_low']:+.3f}, {row['difference_high']:+.3f}])"
            for row in report["biology_leak"]
        ]
    lines += [f"{name}: {why}" for name, why in report.get("not_applicable", {}).items()]
    if report["traveling"]:
        lines.append("traveling subjects against their real reference-site image (mean):")
        lines += [
            f"  {row['condition']:<10} in the brain: MAE {row['mae']:.4f}  PSNR {row['psnr']:.1f} dB  SSIM "
            f"{row['ssim']:.3f}; whole cube: MAE {row['mae_cube']:.4f}  SSIM {row['ssim_cube']:.3f}"
            for row in report["traveling"]
        ]
    return "\n".join(lines)


def _probe_row(condition: str, probe: str, result: dict, adjustment: str = "none") -> dict:
    row = probe_row(result, condition=condition, probe=probe, adjustment=adjustment)
    return {**row, "folds": result["folds"], "samples": result["samples"]}


def _paired_to_identity(table: pd.DataFrame) -> pd.DataFrame:
    """Each probe row's balanced accuracy minus the identity's (same probe, adjustment and rows), with the
    paired subject-bootstrap 95% interval; the samples column is dropped."""
    table = table.copy()
    identity = {(r.probe, r.adjustment): r for r in table.itertuples() if r.condition == "identity"}
    differences = []
    for row in table.itertuples():
        reference = identity.get((row.probe, row.adjustment))
        if reference is None:
            differences.append((float("nan"),) * 3)
            continue
        delta = np.asarray(row.samples) - np.asarray(reference.samples)
        differences.append(
            (
                row.balanced_accuracy - reference.balanced_accuracy,
                float(np.nanpercentile(delta, 2.5)),
                float(np.nanpercentile(delta, 97.5)),
            )
        )
    table[["difference_to_identity", "difference_low", "difference_high"]] = differences
    return table.drop(columns="samples")


ADJUSTMENTS = {
    "residualized": "residualized for age, sex, diagnosis (fitted on training folds)",
    "traveling": "traveling subjects only (the same anatomy at both sites)",
}
LEAK_COLUMNS = [
    "condition",
    "input",
    "task",
    "metric",
    "estimate",
    "low",
    "high",
    "n_images",
    "n_subjects",
    "difference_to_identity",
    "difference_low",
    "difference_high",
    "floor",
]


def _deconfounded_probes(
    condition: str,
    probe: str,
    rows: pd.DataFrame,
    x: np.ndarray,
    confounds: np.ndarray,
    traveling: np.ndarray,
    n_resamples: int,
    seed: int,
) -> list[dict]:
    """The linear site probe on confound residuals, and on the traveling subjects alone (when at least two)."""
    out = [
        _probe_row(
            condition,
            probe,
            site_probe(rows, probe="linear", volumes=x, covariates=confounds, n_resamples=n_resamples, seed=seed),
            "residualized",
        )
    ]
    if rows.loc[traveling, "subject"].nunique() >= 2:
        part = rows[traveling].reset_index(drop=True)
        out.append(
            _probe_row(
                condition,
                probe,
                site_probe(part, probe="linear", volumes=x[traveling], n_resamples=n_resamples, seed=seed),
                "traveling",
            )
        )
    return out


def _biology_leak(
    condition: str,
    source: str,
    rows: pd.DataFrame,
    x: np.ndarray,
    reference: dict[str, dict],
    n_resamples: int,
    seed: int,
) -> list[dict]:
    """Diagnosis and age probes on one condition's inputs, paired to the identity's (the first condition seen)."""
    probes = biology_probes(rows, x, seed=seed)
    reference.setdefault(source, probes)
    out = []
    for task, probe in probes.items():
        summary = probe.summary(n_resamples, seed)
        difference = paired_to_reference(probe, reference[source][task], n_resamples=n_resamples, seed=seed)
        out.append(
            {
                "condition": condition,
                "input": source,
                "task": task,
                "metric": summary["metric"],
                "estimate": summary["estimate"],
                "low": summary["low"],
                "high": summary["high"],
                "n_images": summary["n_images"],
                "n_subjects": summary["n_subjects"],
                "difference_to_identity": difference[0],
                "difference_low": difference[1],
                "difference_high": difference[2],
                "floor": summary.get("chance", summary.get("mean_predictor_mae")),
            }
        )
    return out


def _combat(table: pd.DataFrame, evaluated: pd.DataFrame, sites: pd.Series) -> pd.DataFrame:
    """ComBat fitted on the training rows' raw features (age protected; diagnosis too when training has
    several), applied to the evaluated rows without their covariates
    (:meth:`~pipeline.evaluate.combat.ComBat.transform_without_covariates`): the biology checks then predict
    the evaluated rows' age and diagnosis, so those may not reach the features (no covariate leak)."""
    train = table[table["split"] == "train"].reset_index(drop=True)
    train_features = pd.DataFrame([regional_means(*_load(p)) for p in train["image_cube"]])
    categorical = ["diagnosis"] if train["diagnosis"].nunique() > 1 else []
    combat = ComBat(continuous=["age"], categorical=categorical).fit(
        train_features[FEATURES].to_numpy(), train["site"], train
    )
    return pd.DataFrame(combat.transform_without_covariates(evaluated[FEATURES].to_numpy(), sites), columns=FEATURES)


def _traveling_intervals(travel: pd.DataFrame, n_resamples: int, seed: int) -> list[dict]:
    """Per condition and in-brain metric: the mean over traveling subjects with a subject-bootstrap 95%
    interval, and the paired difference to the identity (same subjects, same resamples) with its interval."""
    if travel.empty:
        return []
    out = []
    subjects = sorted(set(travel["subject"]))
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(subjects), len(subjects)) for _ in range(n_resamples)]
    wide = {
        metric: travel.pivot_table(index="subject", columns="condition", values=metric).reindex(subjects)
        for metric in ("mae", "psnr", "ssim")
    }
    for condition in dict.fromkeys(travel["condition"]):
        for metric, table in wide.items():
            values = table[condition].to_numpy(float)
            identity = table["identity"].to_numpy(float)
            means = np.array([np.nanmean(values[d]) for d in draws])
            differences = np.array([np.nanmean(values[d] - identity[d]) for d in draws])
            out.append(
                {
                    "condition": condition,
                    "metric": metric,
                    "mean": float(np.nanmean(values)),
                    "low": float(np.nanpercentile(means, 2.5)),
                    "high": float(np.nanpercentile(means, 97.5)),
                    "difference_to_identity": float(np.nanmean(values - identity)),
                    "difference_low": float(np.nanpercentile(differences, 2.5)),
                    "difference_high": float(np.nanpercentile(differences, 97.5)),
                    "n_subjects": len(subjects),
                }
            )
    return out


def _traveling_oracle(
    identity: list[np.ndarray], masks: list[np.ndarray], rows: pd.DataFrame, target: str, reference: str
) -> list[dict]:
    """The per-pair oracle: each traveling subject's target-site image histogram-matched (in its mask) to
    its own reference-site image. It uses the answer, so it is a bound for intensity mappings, not a method."""
    out = []
    for subject, part in rows.groupby("subject"):
        if set(part["site"]) >= {target, reference}:
            i = part.index[part["site"] == target][0]
            j = part.index[part["site"] == reference][0]
            matched = fit_intensity_baseline("histogram", [(identity[j], masks[j])])(identity[i], masks[i])
            arrays = {i: matched, j: identity[j]}
            out += _traveling("oracle", arrays, masks, rows.loc[[i, j]], target, reference)
    return out


def _traveling(
    condition: str,
    arrays: list[np.ndarray] | dict[int, np.ndarray],
    masks: list[np.ndarray],
    rows: pd.DataFrame,
    target: str,
    reference: str,
) -> list[dict]:
    """Fidelity of each traveling subject's target-site image to its reference-site image, inside the union of
    the two images' brain masks (the same mask for every condition), whole-cube values beside."""
    out = []
    for subject, part in rows.groupby("subject"):
        if set(part["site"]) >= {target, reference}:
            i = part.index[part["site"] == target][0]
            j = part.index[part["site"] == reference][0]
            x = torch.from_numpy(arrays[i])[None, None]
            y = torch.from_numpy(arrays[j])[None, None]
            mask = torch.from_numpy(masks[i] | masks[j])[None, None]
            out.append({"condition": condition, "subject": subject, **image_fidelity(x, y, mask)})
    return out
