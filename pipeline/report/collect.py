"""Gather what a run folder holds into report sections: tables (raw numbers), figures and notes.

The run folder layout is :class:`pipeline.run.RunLayout` (``mriharmony demo --out RUN``); each part may be absent, and a
section then says which file it looked for. Numbers are copied from the files the stages wrote, never
recomputed, so the page and ``report.json`` show exactly what the run measured.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from pipeline import figures as fig
from pipeline.preprocess.quality import IQM_NAMES
from pipeline.report.tables import TABLE_ID
from pipeline.run import (
    AugmentationGridRecord,
    BenchmarkSummary,
    BrainAgePredictions,
    ClassificationMetrics,
    CrossValidatedSummary,
    EvaluationRecord,
    ManyToOneSummary,
    RunLayout,
    RunSummary,
    SeedsSummary,
    SiteEffectsRecord,
)
from pipeline.run.layout import BENCHMARK_PROTOCOLS
from pipeline.table_paths import resolve_paths
from pipeline.versions import package_versions

__all__ = ["Table", "Figure", "Section", "collect_sections", "software_versions", "SECTION_IDS"]

SECTION_IDS = (
    "preprocessing",
    "harmonization",
    "brain-age",
    "ad-classification",
    "augmentation",
    "many-to-one",
    "provenance",
)
PACKAGES = (
    "mriharmony",
    "torch",
    "monai",
    "numpy",
    "scipy",
    "scikit-learn",
    "SimpleITK",
    "antspyx",
    "deepbet",
    "nibabel",
    "pandas",
    "dask",
    "statsmodels",
    "matplotlib",
)


@dataclass
class Table:
    """A table: ``columns`` are (key, header) pairs over ``records`` (raw values, formatted only in HTML).

    ``id`` is a stable kebab-case slug, unique within its section: the findings, the summary and readers of
    report.json find the table by it (:mod:`pipeline.report.tables`), so the caption (``title``) can be reworded.
    """

    id: str
    title: str
    columns: list[tuple[str, str]]
    records: list[dict[str, Any]]
    note: str = ""

    def __post_init__(self) -> None:
        if not TABLE_ID.fullmatch(self.id):
            raise ValueError(f"table {self.title!r}: id {self.id!r} is not a kebab-case slug (e.g. 'site-probe')")


@dataclass
class Figure:
    title: str
    uri: str  # a data: URI
    caption: str = ""


@dataclass
class Section:
    id: str
    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # files looked for and not found

    @property
    def present(self) -> bool:
        return bool(self.tables or self.figures)


def _read_tsv(path: Path) -> pd.DataFrame | None:
    """A table the run wrote (None when absent; empty when the stage had no rows)."""
    if not path.exists():
        return None
    if not path.read_text().strip():
        return pd.DataFrame()
    return resolve_paths(
        pd.read_csv(
            path,
            sep="\t",
            keep_default_na=False,
            na_values=["n/a", "NaN", "nan", ""],
            dtype={"subject": str, "session": str},
        ),
        path.parent,
    )


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(table.to_json(orient="records"))  # NaN -> null, numpy -> Python


def _image_figure(path: Path, title: str, caption: str = "") -> Figure:
    return Figure(title, fig.data_uri(path.read_bytes()), caption)


def _look(section: Section, path: Path) -> bool:
    if not path.exists():
        section.missing.append(str(path))
        return False
    return True


def _preprocessing_settings(ok: pd.DataFrame) -> list[str]:
    """What the skull strip ran as, read from the first finished image's sidecar (a lighter setting is said)."""
    if ok.empty or "sidecar" not in ok.columns or not Path(str(ok["sidecar"].iloc[0])).exists():
        return []
    config = json.loads(Path(str(ok["sidecar"].iloc[0])).read_text()).get("Config", {}).get("skullstrip", {})
    if config.get("method") == "deepbet" and config.get("precision") == "bf16":
        return [
            "Skull strip: deepbet under bf16 autocast, a lighter configuration than the default fp32 (its masks "
            "agreed with fp32 at Dice 0.9997-0.9998 on the phantom's 2 mm heads)."
        ]
    return [
        f"Skull strip: {config.get('method', 'unknown')}"
        + (f" ({config['precision']})" if "precision" in config else "")
        + "."
    ]


def preprocessing_section(run: Path) -> Section:
    """Images processed and failed per site, mask volumes, registration similarity, the QC mosaic."""
    layout = RunLayout(run)
    section = Section(
        "preprocessing",
        "Preprocessing QC",
        "N4 bias correction, skull strip, rigid (6-DOF) registration to MNI152, 2 mm box, 64^3, [0, 1].",
    )
    path = layout.preprocessed_table
    if not _look(section, path):
        return section
    table = _read_tsv(path)
    ok = table[table["status"] == "ok"]
    section.notes += _preprocessing_settings(ok)
    rows = []
    for site, part in table.groupby("site"):
        good = part[part["status"] == "ok"]
        rows.append(
            {
                "site": site,
                "images": len(part),
                "ok": len(good),
                "failed": int((part["status"] == "failed").sum()),
                "qc_failed": int((part["status"] == "qc_failed").sum()),
                "mask_ml_median": good["mask_volume_ml"].median(),
                "mask_ml_min": good["mask_volume_ml"].min(),
                "mask_ml_max": good["mask_volume_ml"].max(),
                "registration_similarity_median": good["registration_similarity"].median(),
                "seconds_median": good["seconds"].median(),
            }
        )
    section.tables.append(
        Table(
            "images-per-site",
            "Images per site",
            [
                ("site", "site"),
                ("images", "images"),
                ("ok", "ok"),
                ("failed", "failed"),
                ("qc_failed", "stopped by QC"),
                ("mask_ml_median", "mask ml (median)"),
                ("mask_ml_min", "min"),
                ("mask_ml_max", "max"),
                ("registration_similarity_median", "registration similarity"),
                ("seconds_median", "s per image"),
            ],
            rows,
            "Mask volume: the skull-strip mask in native space. Registration similarity: Pearson correlation of the "
            "rigidly registered brain with the template inside the template's brain mask (1 = perfect).",
        )
    )
    failures = _read_tsv(layout.failures)
    if failures is not None and len(failures):
        section.tables.append(
            Table(
                "failures",
                "Failures and images stopped by the QC gate (the cohort went on without them)",
                [(c, c) for c in ("subject", "session", "site", "step", "reason")],
                _records(failures),
                "Step qc: the image was processed but is not a usable brain (thresholds in "
                "configs/preprocess.yaml, section qc); later stages leave it out unless run with "
                "--include-qc-failed.",
            )
        )
    else:
        section.notes.append("No image failed.")
    if len(ok):
        section.figures.append(
            Figure("Mask volume per site", fig.data_uri(fig.site_strip_plot(ok, "mask_volume_ml", "brain mask (ml)")))
        )
        section.figures.append(
            Figure(
                "Registration similarity per site",
                fig.data_uri(fig.site_strip_plot(ok, "registration_similarity", "registration similarity")),
            )
        )
        iqms = [(c, c.replace("_", " ")) for c in IQM_NAMES if c in ok.columns]
        if iqms:
            section.figures.append(
                Figure(
                    "Image quality metrics per site",
                    fig.data_uri(fig.site_strip_panels(ok, iqms)),
                    "MRIQC's definitions: SNR in white matter, GM/WM CNR, CJV (lower is better), "
                    "EFC, FBER, and the WM/GM intensity ratio; site effects show here first.",
                )
            )
        pictures = [
            (f"{r.subject} ({r.site})", r.qc)
            for r in ok.groupby("site").head(3).itertuples()
            if isinstance(r.qc, str) and Path(r.qc).exists()
        ]
        if pictures:
            section.figures.append(
                Figure(
                    "QC mosaic",
                    fig.data_uri(fig.qc_mosaic(pictures)),
                    "The first three images of each site in the 2 mm MNI box: brain mask (red) and template brain "
                    "(cyan, dashed).",
                )
            )
    effects = SiteEffectsRecord.read(layout.site_effects_record)
    if effects is not None:
        section.tables.append(
            Table(
                "site-effects",
                "Site effects after preprocessing (every subject; linear site probe)",
                [
                    ("sites", "sites"),
                    ("probe", "probe"),
                    ("adjustment", "adjustment"),
                    ("balanced_accuracy", "balanced accuracy"),
                    ("low", "95% low"),
                    ("high", "95% high"),
                    ("chance", "chance"),
                    ("n_subjects", "subjects"),
                ],
                effects.probes,
                "mriharmony evaluate site-effects: how well the site is found from the preprocessed "
                "images (8^3 volumes) and from regional mean T1, raw, residualized for age / sex / diagnosis, and "
                "on the traveling subjects alone (only the scanner differs). Real scanners: told apart almost "
                "perfectly from preprocessed T1 images (Glocker et al. 2019); 15 datasets at 73% from derived "
                "measures (Wachinger et al. 2021).",
            )
        )
        section.tables.append(
            Table(
                "site-medians",
                "Per-site medians of the image quality metrics and regional mean T1",
                [(k, k) for k in effects.per_site[0]],
                effects.per_site,
            )
        )
    stopped = table[table["status"] == "qc_failed"]
    pictures = [
        (f"{r.subject} ({r.site})", r.qc) for r in stopped.itertuples() if isinstance(r.qc, str) and Path(r.qc).exists()
    ]
    if pictures:
        section.figures.append(
            Figure(
                "Stopped by the QC gate",
                fig.data_uri(fig.qc_mosaic(pictures)),
                "Every image with status qc_failed, as preprocessed; the reasons are in the table above.",
            )
        )
    return section


#: an estimate with its interval and its paired difference to the identity, with its interval
PAIRED_TO_IDENTITY = [
    ("estimate", "estimate"),
    ("low", "95% low"),
    ("high", "95% high"),
    ("difference_to_identity", "vs identity"),
    ("difference_low", "95% low"),
    ("difference_high", "95% high"),
]


def harmonization_section(run: Path) -> Section:
    """Traveling-subject fidelity and the evaluation (site probes, t-SNE, biological signal)."""
    layout = RunLayout(run)
    section = Section("harmonization", "Harmonization evaluation")
    evaluation = EvaluationRecord.read(layout.evaluation_record)
    if _look(section, layout.evaluation_record):
        section.intro = (
            f"{evaluation.target_site} harmonized to {evaluation.reference_site} (the reference site) by the "
            f"CycleGAN ({sum(c.startswith('cyclegan') for c in evaluation.conditions)} harmonizer seed(s): "
            f"{', '.join(c for c in evaluation.conditions if c.startswith('cyclegan'))}), beside the baselines "
            f"{', '.join(c for c in evaluation.conditions if not c.startswith('cyclegan'))}; "
            f"{evaluation.split} split: {evaluation.n_images} images of {evaluation.n_subjects} subjects."
        )
        section.tables.append(
            Table(
                "site-probe",
                "Site probe: balanced accuracy of predicting the site (chance 0.5; lower is better)",
                [
                    ("condition", "condition"),
                    ("probe", "probe"),
                    ("adjustment", "adjustment"),
                    ("balanced_accuracy", "balanced accuracy"),
                    ("low", "95% low"),
                    ("high", "95% high"),
                    ("difference_to_identity", "vs identity"),
                    ("difference_low", "95% low"),
                    ("difference_high", "95% high"),
                    ("n_subjects", "subjects"),
                    ("folds", "folds"),
                ],
                evaluation.site_probe,
                "linear: logistic regression on 8^3 volumes; cnn: a small 3D CNN on 16^3; features: regional mean T1 "
                "(ComBat acts on these). Adjustment none: the raw probe, confounded by the sites' different ages and "
                "diagnoses; residualized: every feature residualized for age, sex and diagnosis on the training folds; "
                "traveling: the traveling subjects only (the same anatomy at both sites). Subject-level "
                "cross-validation repeated with different fold splits (and CNN initialisations); intervals: "
                "two-level bootstrap (a repeat, then subjects), so they carry the fold-split variance; vs identity: "
                "paired difference (same repeats, same subject resamples). Older runs (no repeats) used one split.",
            )
        )
        if evaluation.site_probe:
            section.figures.append(
                Figure(
                    "Site probes with 95% intervals",
                    fig.data_uri(fig.probe_dot_plot(evaluation.site_probe)),
                    "Dots: balanced accuracy; bars: subject-bootstrap 95% interval; dashed: chance.",
                )
            )
        if evaluation.traveling_intervals:
            section.tables.append(
                Table(
                    "traveling-mean",
                    "Traveling subjects, mean with 95% interval and paired difference to identity",
                    [
                        ("condition", "condition"),
                        ("metric", "metric"),
                        ("mean", "mean"),
                        ("low", "95% low"),
                        ("high", "95% high"),
                        ("difference_to_identity", "vs identity"),
                        ("difference_low", "95% low"),
                        ("difference_high", "95% high"),
                        ("n_subjects", "subjects"),
                    ],
                    evaluation.traveling_intervals,
                    "In the brain mask. oracle: each subject's target-site image histogram-matched to its own "
                    "reference-site image; it uses the answer, so it bounds what an intensity mapping can reach.",
                )
            )
        if evaluation.biology_leak:
            section.tables.append(
                Table(
                    "biology-kept",
                    "Biology kept? Diagnosis and age probes per condition, paired to identity",
                    [
                        ("condition", "condition"),
                        ("input", "input"),
                        ("task", "task"),
                        ("metric", "metric"),
                        *PAIRED_TO_IDENTITY,
                        ("floor", "floor"),
                        ("n_subjects", "subjects"),
                    ],
                    evaluation.biology_leak,
                    "diagnosis: CN vs AD balanced accuracy (floor: chance); age: ridge regression "
                    "MAE on controls (floor: the training-fold mean). A harmonizer that erased atrophy would fall "
                    "toward the floor: its difference to identity would exclude 0 in the bad direction.",
                )
            )
        if evaluation.within_site_biology:
            section.tables.append(
                Table(
                    "biology-within-site",
                    "Biology within site: AD effects, age slopes and a CN-vs-AD probe inside each site, per condition",
                    [
                        ("site", "site"),
                        ("effect", "effect"),
                        ("measure", "measure"),
                        ("condition", "condition"),
                        *PAIRED_TO_IDENTITY,
                        ("kept", "kept"),
                        ("floor", "floor"),
                        ("n_subjects", "subjects"),
                        ("unit", "unit"),
                    ],
                    sorted(
                        evaluation.within_site_biology,
                        key=lambda r: (r["site"], r["effect"], r["measure"]),
                    ),
                    "Inside one site the scanner is constant, so these effects are biology, not site. The site's own "
                    "subjects (traveling subjects left out). AD: Cohen's d of AD minus CN; age: slope of the "
                    "standardized measure per decade on controls; diagnosis probe: CN-vs-AD balanced accuracy on the "
                    "regional means. Intervals: subject bootstrap; vs identity: paired on the same resamples. kept: "
                    "the interval overlaps the identity's. floor: the raw effect's interval already includes 0 "
                    "(chance for the probe), so 'kept' cannot fail there.",
                )
            )
        elif evaluation.biology_leak:
            section.notes.append(
                "Biology within site: no site of this split has at least 3 CN and 3 AD subjects or 5 controls, "
                "so no within-site effect was measured (older runs did not measure it)."
            )
        if evaluation.traveling_paired:
            section.tables.append(
                Table(
                    "traveling-paired",
                    "Traveling subjects, paired test: site difference of each regional measure within subject",
                    [
                        ("condition", "condition"),
                        ("measure", "measure"),
                        ("difference", "difference"),
                        ("low", "95% low"),
                        ("high", "95% high"),
                        ("p_value", "p"),
                        ("n_subjects", "subjects"),
                        ("unit", "unit"),
                    ],
                    evaluation.traveling_paired,
                    "Each traveling subject's evaluated-site measure minus its reference-site measure (the same "
                    "anatomy), in SD of the raw reference site; t interval and paired t-test per measure, Hotelling's "
                    "T^2 over all (measure 'all'). A harmonizer should bring the differences to 0.",
                )
            )
        if evaluation.traveling:
            section.tables.append(
                Table(
                    "traveling-metrics",
                    "Traveling subjects against their real reference-site image (mean)",
                    [
                        ("condition", "condition"),
                        ("mae", "MAE (brain)"),
                        ("psnr", "PSNR (dB, brain)"),
                        ("ssim", "SSIM (brain)"),
                        ("mae_cube", "MAE (whole cube)"),
                        ("ssim_cube", "SSIM (whole cube)"),
                    ],
                    evaluation.traveling,
                    "Brain: inside the union of both images' brain masks. Whole cube: the 64^3 cube with its zero "
                    "background, which shrinks MAE and inflates SSIM (for comparison with older figures only).",
                )
            )
        if evaluation.biological:
            section.tables.append(
                Table(
                    "biological-signal",
                    "Biological signal kept (regional mean T1; OLS with site as a fixed effect)",
                    [
                        ("condition", "condition"),
                        ("measure", "measure"),
                        ("effect", "effect"),
                        ("estimate", "estimate"),
                        ("low", "95% low"),
                        ("high", "95% high"),
                        ("n", "n"),
                        ("unit", "unit"),
                    ],
                    evaluation.biological,
                )
            )
            section.figures.append(
                Figure(
                    "Age and AD effects per measure and method (forest plot)",
                    fig.data_uri(fig.forest_plot(evaluation.biological)),
                    "Estimates with 95% intervals of the table below, per "
                    "measure: a method keeps the biology when its interval overlaps the identity's.",
                )
            )
        else:
            section.notes.append("Biological signal: too few subjects in this split to fit age and diagnosis effects.")
        if (layout.tsne_figure).exists():
            section.figures.append(
                _image_figure(
                    layout.tsne_figure,
                    "t-SNE of 8^3 volumes (Komandur et al. 2023, Figure 2)",
                    "One point per image, coloured by site, per condition.",
                )
            )
    fidelity = _read_tsv(layout.traveling_fidelity)
    if fidelity is not None and len(fidelity):
        section.tables.append(
            Table(
                "traveling-per-subject",
                "Traveling subjects, per subject (harmonized vs unchanged)",
                [
                    ("subject", "subject"),
                    ("split", "split"),
                    ("harmonized_mae", "MAE"),
                    ("identity_mae", "MAE unchanged"),
                    ("harmonized_ssim", "SSIM"),
                    ("identity_ssim", "SSIM unchanged"),
                    ("harmonized_psnr", "PSNR"),
                    ("identity_psnr", "PSNR unchanged"),
                    ("harmonized_mae_cube", "MAE whole cube"),
                    ("identity_mae_cube", "MAE unchanged, whole cube"),
                ],
                _records(fidelity),
                "Inside the brain mask (whole-cube MAE beside). Train / val traveling subjects chose the CycleGAN "
                "checkpoint: only test rows are held out.",
            )
        )
    return section


#: the table id of each brain-age benchmark protocol (``BENCHMARK_PROTOCOLS``)
BENCHMARK_TABLE_IDS = {
    "pooled": "brain-age-pooled",
    "held_out": "brain-age-held-out",
    "cross_site": "brain-age-cross-site",
}
BENCHMARK_COLUMNS = [
    ("train_site", "trained on"),
    ("test_site", "tested on"),
    ("condition", "condition"),
    ("runs", "runs"),
    ("mae_mean", "MAE mean"),
    ("mae_low", "95% low (mean)"),
    ("mae_high", "95% high (mean)"),
    ("mae_sd", "MAE SD (runs)"),
    ("mae_sd_harmonizer", "MAE SD (harmonizer seeds)"),
    ("compared_with", "paired with"),
    ("diff_mae", "MAE difference"),
    ("diff_low", "95% low"),
    ("diff_high", "95% high"),
    ("mse_mean", "MSE"),
    ("r_mean", "r"),
    ("r2_mean", "R^2"),
    ("gap_age_r_mean", "r(gap, age)"),
    ("mean_predictor_mae", "mean-predictor MAE"),
    ("vs_mean", "vs mean predictor"),
    ("vs_mean_low", "95% low"),
    ("vs_mean_high", "95% high"),
    ("volume_linear_mae", "volume-linear MAE"),
    ("penalty", "cross-site penalty"),
    ("penalty_low", "95% low"),
    ("penalty_high", "95% high"),
    ("n_test", "n test"),
    ("underpowered", "underpowered"),
]


def brain_age_section(run: Path) -> Section:
    """The brain-age benchmark per protocol, its scatter plots, and the brain_age bundle on the demo split."""
    layout = RunLayout(run)
    section = Section(
        "brain-age",
        "Brain-age benchmark",
        "Controls of the reference and target sites; every condition of a seed is scored on the same test "
        "subjects. Raw errors only (years; lower is better): no bias-corrected error is shown, because "
        "that correction uses the test subjects' true ages and makes a constant predictor look perfect.",
    )
    for protocol, what in BENCHMARK_PROTOCOLS.items():
        summary = BenchmarkSummary.read(layout.benchmark_summary(protocol))
        if not _look(section, layout.benchmark_summary(protocol)):
            continue
        section.tables.append(
            Table(
                BENCHMARK_TABLE_IDS[protocol],
                f"Brain age, {protocol}: {what} ({summary.source_site} + {summary.target_site}, "
                f"{summary.seeds} seed(s) x {len(summary.harmonizer_seeds)} harmonizer seed(s))",
                BENCHMARK_COLUMNS,
                summary.summary,
                "Runs: brain-age seeds x harmonizer seeds. 95% low / high (mean): the interval of the mean over "
                "runs, a two-level bootstrap (runs, then test subjects). MAE difference: the condition minus its "
                "pairing (same seeds, same test subjects, same resamples). Mean predictor: the training mean age; "
                "volume-linear: a "
                "regression on true ventricle and hippocampal volumes. Underpowered: fewer than "
                f"{summary.underpowered_below_n} "
                "test subjects or fewer than 3 runs."
                + (
                    f" Left out as seen by a CycleGAN: {len(summary.excluded_seen_subjects)} subjects."
                    if protocol == "held_out"
                    else ""
                ),
            )
        )
        if protocol == "cross_site" and any(r.get("penalty") is not None for r in summary.summary):
            section.figures.append(
                Figure(
                    "Cross-site brain-age penalty per method",
                    fig.data_uri(fig.penalty_bars(summary.summary)),
                    "MAE on the other site minus the same raw model's MAE on its own "
                    "site's test controls (years), mean over runs with the two-level 95% interval.",
                )
            )
        # the benchmark's own scatter plots (test predictions of every run)
        for path in sorted(layout.benchmark_protocol(protocol).glob("scatter_*.png")):
            section.figures.append(
                _image_figure(
                    path, f"{protocol}: {path.stem.removeprefix('scatter_')}", "Test predictions of every run."
                )
            )
    cv = CrossValidatedSummary.read(layout.cross_validated_summary)
    if cv is not None:  # optional (benchmark.cross_validated_folds): not listed as missing when absent
        section.tables.append(
            Table(
                "brain-age-cross-validated",
                f"Brain age, cross-validated: every control of {', '.join(cv.sites)}, {cv.folds}-fold by subject",
                BENCHMARK_COLUMNS,
                cv.summary,
                "Each control predicted once by models that never saw that subject (folds stratified by site and age). "
                "95% low / high: a subject bootstrap. vs mean predictor: the paired difference to the training "
                "folds' mean age (same subjects, same resamples). The sites are pooled and differ in age, so part "
                "of what a model predicts can be the site.",
            )
        )
    report = BrainAgePredictions.read(layout.downstream_metrics("brain_age"))
    if _look(section, layout.downstream_metrics("brain_age")):
        rows = []
        for name, scores in {"cnn": report.cnn, **report.baselines}.items():
            low, high = scores.interval("mae")
            rows.append({"model": name, **scores.metrics, "low": low, "high": high})
        section.tables.append(
            Table(
                "brain-age-bundle",
                "brain_age bundle on the run's test split (controls of every site)",
                [
                    ("model", "model"),
                    ("mae", "MAE"),
                    ("low", "95% low"),
                    ("high", "95% high"),
                    ("mse", "MSE"),
                    ("r2", "R^2"),
                    ("r", "r"),
                    ("gap_age_r", "r(gap, age)"),
                    ("n", "images"),
                    ("n_subjects", "subjects"),
                ],
                rows,
                "Raw errors; baselines fitted on the training split. The predictions table's gap-analysis columns "
                "(a correction fitted on the val split) are not accuracy and are not shown here.",
            )
        )
        _seed_table(section, layout.downstream_seeds("brain_age"))
        predictions = _read_tsv(layout.downstream_predictions("brain_age"))
        if predictions is not None and len(predictions):
            section.figures.append(
                Figure(
                    "brain_age bundle, test split",
                    fig.data_uri(fig.scatter_figure(predictions, "brain_age bundle, test split")),
                )
            )
    return section


def _seed_table(section: Section, path: Path) -> None:
    """The bundle's CNN retrained with other seeds on the same split (``downstream.<bundle>.seeds``), if run."""
    record = SeedsSummary.read(path)
    if record is None:  # optional: a single-seed run has none
        return
    rows = [{**r, "per_seed": ", ".join(f"{v:.3f}" for v in r["per_seed"])} for r in record.summary]
    section.tables.append(
        Table(
            "bundle-seeds",
            f"{record.bundle} bundle over {len(record.seeds)} training seeds (test split)",
            [
                ("model", "model"),
                ("metric", "metric"),
                ("mean", "mean"),
                ("sd", "SD"),
                ("min", "min"),
                ("max", "max"),
                ("per_seed", "per seed"),
            ],
            rows,
            "The same split and test subjects; only the training seed differs. The table "
            "above is seed " + str(record.seeds[0]) + ".",
        )
    )


CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "auc", "f1", "precision", "recall")


def ad_classification_section(run: Path) -> Section:
    """The ad_classification bundle's test metrics beside its baselines, confusion matrices, Grad-CAM means."""
    layout = RunLayout(run)
    section = Section("ad-classification", "AD classification")
    report = ClassificationMetrics.read(layout.downstream_metrics("ad_classification"))
    if not _look(section, layout.downstream_metrics("ad_classification")):
        return section
    section.intro = (
        f"Task {report.task} ({' / '.join(report.classes)}), model {report.model}, "
        f"split {report.split}: {report.metrics['n']} images of {report.metrics['n_subjects']} subjects; "
        "baselines fitted on the training split."
    )
    models = {name: (s.metrics, s.intervals_95) for name, s in {"cnn": report.classifier, **report.baselines}.items()}
    rows = []
    for name, (metrics, intervals) in models.items():
        row: dict[str, Any] = {"model": name, "n": metrics["n"]}
        for metric in CLASSIFICATION_METRICS:
            row[metric] = metrics.get(metric)
            row[f"{metric}_interval"] = intervals.get(metric)
        rows.append(row)
    columns = [("model", "model")]
    for metric in ("balanced_accuracy", "auc", "f1", "accuracy"):
        columns += [(metric, metric.replace("_", " ")), (f"{metric}_interval", "95% interval")]
    section.tables.append(
        Table(
            "test-metrics",
            "Test metrics",
            columns + [("n", "images")],
            rows,
            "Intervals: bootstrap over test subjects.",
        )
    )
    _seed_table(section, layout.downstream_seeds("ad_classification"))
    section.figures.append(
        Figure(
            "Confusion matrices",
            fig.data_uri(
                fig.confusion_figure(
                    {name: metrics["confusion_matrix"] for name, (metrics, _) in models.items()}, report.classes
                )
            ),
        )
    )
    maps = {name: layout.gradcam("ad_classification") / f"class-{name}_mean.nii.gz" for name in report.classes}
    maps = {name: path for name, path in maps.items() if path.exists()}
    if maps:
        section.figures.append(
            Figure(
                "Grad-CAM, mean over test subjects of each true class",
                fig.data_uri(fig.gradcam_figure(maps, _mean_test_image(run, "ad_classification"))),
                "monai.visualize.GradCAM on the last residual stage, over the mean test image.",
            )
        )
    else:
        section.notes.append(
            f"No Grad-CAM maps ({layout.gradcam('ad_classification')}): run inference with --gradcam true."
        )
    return section


def _mean_test_image(run: Path, bundle: str) -> np.ndarray | None:
    layout = RunLayout(run)
    predictions = _read_tsv(layout.downstream_predictions(bundle))
    table = _read_tsv(layout.preprocessed_table)
    if predictions is None or table is None:
        return None
    paths = table[table["subject"].isin(set(predictions["subject"])) & (table["status"] == "ok")]["image_cube"]
    arrays = [np.asarray(nib.load(p).dataobj, dtype=np.float32) for p in paths if Path(p).exists()]
    return np.mean(arrays, axis=0) if arrays else None


def augmentation_section(run: Path) -> Section:
    """The augmentation grid (arms x X x Y, paired differences to none) and the synthetic-image quality."""
    layout = RunLayout(run)
    section = Section("augmentation", "Synthetic augmentation")
    summary = _read_tsv(layout.augment_grid_summary)
    if not _look(section, layout.augment_grid_summary):
        return section
    grid = AugmentationGridRecord.read(layout.augment_grid_record)
    section.intro = (
        f"AD classification trained with and without synthetic images, tested on real test subjects only; "
        f"{grid.repeats if grid else '?'} repeat(s); X: fraction of real training subjects kept, Y: extra images "
        "per class relative to its real training subjects. Difference: paired, to 'none' at the same X, "
        "with a two-level bootstrap 95% interval (repeats, then test subjects)."
    )
    if grid is not None and grid.repeats < 2:
        section.notes.append(
            "One repeat: the intervals cover the test subjects only, not what varies between training runs "
            "(see how the AD classifier's balanced accuracy moves between seeds in its seed table); a difference "
            "that excludes 0 here may not survive a second training seed. The study runs 3 repeats."
        )
    section.tables.append(
        Table(
            "augmentation-grid",
            "Augmentation grid",
            [
                ("arm", "arm"),
                ("real_fraction", "X"),
                ("synthetic_fraction", "Y"),
                ("repeats", "repeats"),
                ("n_train", "train images"),
                ("balanced_accuracy_median", "balanced accuracy"),
                ("balanced_accuracy_diff", "difference"),
                ("balanced_accuracy_diff_low", "95% low"),
                ("balanced_accuracy_diff_high", "95% high"),
                ("auc_median", "AUC"),
                ("auc_diff", "AUC difference"),
                ("cross_entropy_median", "cross-entropy"),
            ],
            _records(summary),
            "class_prior and volume_logistic are the baselines on the same test subjects.",
        )
    )
    for item in grid.skipped if grid else []:
        section.notes.append(f"skipped: {item.get('run')}: {item.get('reason')}")
    quality = _read_tsv(layout.augment_grid_quality)
    if quality is not None and len(quality):
        section.tables.append(
            Table(
                "synthetic-quality",
                "Synthetic-image quality",
                [
                    ("repeat", "repeat"),
                    ("generator", "generator"),
                    ("diagnosis", "class"),
                    ("n_synthetic", "synthetic"),
                    ("nearest_ssim_mean", "nearest-real SSIM"),
                    ("ms_ssim_synthetic", "MS-SSIM among synthetic"),
                    ("ms_ssim_real", "MS-SSIM among real"),
                    ("memorized_fraction", "memorized"),
                    ("fid", "FID"),
                    ("mmd", "MMD"),
                ],
                _records(quality),
                "Lower MS-SSIM among synthetic than among real = more diverse; memorized: nearest-real "
                "SSIM above the real images' own nearest-neighbour maximum.",
            )
        )
    return section


#: below this many traveling subjects a fidelity difference is reported as underpowered
UNDERPOWERED_TRAVELING = 10
#: the regional measures whose age slope and AD effect the many-to-one section shows
BIOLOGY_MEASURES = ("hippocampus_mean", "ventricles_mean")


def many_to_one_section(run: Path) -> Section:
    """One many-to-one harmonizer for every site (``many_to_one/summary.json``): per site, seen or held out, the
    traveling-subject fidelity, the retrained site probe, the age and AD effects, and the cross-site brain age."""
    section = Section(
        "many-to-one",
        "Many-to-one harmonization and sites never seen in training",
        "One universal generator (IGUANe's design: Roca et al. 2025) harmonizes every site to the reference site. "
        "It is trained on some sites and never sees the held-out ones, on which its generalisation is measured; "
        "every site is scored beside identity, histogram matching, z-score, ComBat (seen sites only) and, on its "
        "site, the run's pairwise CycleGAN, on the same test subjects.",
    )
    path = RunLayout(run).many_to_one_summary
    if not _look(section, path):
        return section
    record = ManyToOneSummary.read(path, nan_for_null=True)
    section.notes.append(
        f"Reference {record.reference_site}; trained on {', '.join(record.source_sites)}; never trained on "
        f"{', '.join(record.held_out_sites)}; {record.harmonizer_seeds} harmonizer seed(s)."
    )
    travel, probe, biology, brain_age = [], [], [], []
    for site, part in record.sites.items():
        status = "held out" if part["held_out"] else "seen"
        base = {"site": site, "status": status}
        for row in part["traveling_mae"]:
            travel.append({**base, **row})
        for row in part["site_probe_linear"]:
            probe.append({**base, **row})
        for row in part["biology"]:
            if row.get("measure") in BIOLOGY_MEASURES:
                biology.append({**base, **row})
        for row in part["brain_age_cross_site"]:
            brain_age.append({**base, **row})
        section.notes += [f"{site}: {name} {why}" for name, why in part["not_applicable"].items()]
        if part["n_traveling"] < UNDERPOWERED_TRAVELING:
            section.notes.append(
                f"{site}: underpowered for fidelity: {part['n_traveling']} traveling subjects "
                f"(< {UNDERPOWERED_TRAVELING}); read the intervals, not the means"
            )
    interval = [("low", "95% low"), ("high", "95% high")]
    difference = [
        ("difference_to_identity", "minus identity"),
        ("difference_low", "95% low"),
        ("difference_high", "95% high"),
    ]
    section.tables.append(
        Table(
            "traveling-mae",
            "Traveling subjects against their own reference-site image (in-brain MAE, test split)",
            [
                ("site", "site"),
                ("status", "site is"),
                ("condition", "condition"),
                ("mean", "MAE"),
                *interval,
                *difference,
                ("n_subjects", "n"),
            ],
            travel,
            "Lower is better; the interval of the difference is paired (the same subjects and resamples).",
        )
    )
    section.tables.append(
        Table(
            "site-probe",
            "Retrained site probe, linear on 8^3 volumes (balanced accuracy; 0.5 = the sites are indistinguishable)",
            [
                ("site", "site"),
                ("status", "site is"),
                ("condition", "condition"),
                ("balanced_accuracy", "balanced accuracy"),
                *interval,
                *difference,
                ("n_subjects", "n"),
            ],
            probe,
        )
    )
    section.tables.append(
        Table(
            "biology-kept",
            "Biology kept: age slope (per decade) and AD effect (residual SD) of regional mean T1",
            [
                ("site", "site"),
                ("status", "site is"),
                ("condition", "condition"),
                ("measure", "measure"),
                ("effect", "effect"),
                ("estimate", "estimate"),
                *interval,
            ],
            biology,
            "A harmonizer should leave these where identity has them.",
        )
    )
    if brain_age:
        section.tables.append(
            Table(
                "brain-age-cross-site",
                "Cross-site brain age: trained on one site's raw controls, tested on the other's",
                [
                    ("site", "held-out site"),
                    ("condition", "condition"),
                    ("train_site", "trained on"),
                    ("test_site", "tested on"),
                    ("mae_mean", "MAE (y)"),
                    ("mae_low", "95% low"),
                    ("mae_high", "95% high"),
                    ("penalty", "penalty (y)"),
                    ("penalty_low", "95% low"),
                    ("penalty_high", "95% high"),
                    ("n_test", "n"),
                    ("underpowered", "underpowered"),
                ],
                brain_age,
                "penalty: the MAE above the same model's own-site MAE (Bashyam et al. 2022).",
            )
        )
    return section


def software_versions() -> dict[str, str]:
    """The platform, Python and the versions of the packages the pipeline runs on."""
    return {"platform": platform.platform(), **package_versions(PACKAGES)}


SEED_KEYS = ("seed", "seeds")


def _seeds(config: Any, prefix: str = "") -> dict[str, Any]:
    """Every ``seed`` / ``seeds`` value in a nested config, by dotted key."""
    found: dict[str, Any] = {}
    if isinstance(config, dict):
        for key, value in config.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key in SEED_KEYS and not isinstance(value, dict):
                found[name] = value
            else:
                found.update(_seeds(value, name))
    return found


def provenance_section(run: Path) -> Section:
    """Configuration, seeds, software versions and per-stage wall time."""
    layout = RunLayout(run)
    section = Section("provenance", "Configuration, seeds, versions and timings")
    summary = RunSummary.read(layout.summary)
    if _look(section, layout.summary):
        seconds = summary.seconds
        rows = [{"stage": k, "seconds": v} for k, v in seconds.items()]
        rows.append({"stage": "total", "seconds": float(sum(seconds.values()))})
        section.tables.append(
            Table(
                "wall-time",
                "Wall time per stage",
                [("stage", "stage"), ("seconds", "seconds")],
                rows,
                "This machine; the report's own time is recorded in summary.json after it is written.",
            )
        )
    config_path = layout.config
    if _look(section, config_path):
        import yaml

        config = yaml.safe_load(config_path.read_text())
        seeds = _seeds(config)
        section.tables.append(
            Table(
                "seeds",
                "Seeds",
                [("key", "config key"), ("value", "value")],
                [{"key": k, "value": v} for k, v in seeds.items()],
                "Bundles not given a seed use their config's default (0).",
            )
        )
        section.notes.append("Configuration (config.yaml):\n" + config_path.read_text())
    section.tables.append(
        Table(
            "software",
            "Software",
            [("package", "package"), ("version", "version")],
            [{"package": k, "version": v} for k, v in software_versions().items()],
        )
    )
    return section


COLLECTORS = (
    preprocessing_section,
    harmonization_section,
    brain_age_section,
    ad_classification_section,
    augmentation_section,
    many_to_one_section,
    provenance_section,
)


def collect_sections(run: str | Path) -> list[Section]:
    """Every report section of a run folder, in page order."""
    return [collect(Path(run)) for collect in COLLECTORS]
