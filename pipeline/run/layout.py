"""Every path of a run folder (``mriharmony demo --out RUN``), in one place.

The demo writes through it, the report reads through it, the CLI's defaults and the documented tree
(``docs/usage.md``, checked by a test against :meth:`RunLayout.tree`) come from it. To add an output, add a
property here and write it in its stage: nothing else names the path.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunLayout", "DOWNSTREAM_BUNDLES", "BENCHMARK_PROTOCOLS"]

DOWNSTREAM_BUNDLES = ("brain_age", "ad_classification")
#: the brain-age benchmark's protocols (each a folder ``benchmark/PROTOCOL``) and what each one is
BENCHMARK_PROTOCOLS = {
    "pooled": "pooled controls, 70:30 by subject (Komandur et al. 2023, Table 2)",
    "held_out": "controls no CycleGAN saw, 70:30 by subject (Komandur et al. 2023, Table 3)",
    "cross_site": "trained on one site, tested on the other",
}


@dataclass(frozen=True)
class RunLayout:
    """The files and folders of one run folder.

    Examples:
        >>> run = RunLayout("mriharmony-demo")
        >>> run.splits.as_posix(), run.cyclegan("ukb", "oasis").as_posix()
        ('mriharmony-demo/splits.tsv', 'mriharmony-demo/cyclegan/ukb-oasis')
        >>> run.relative(run.downstream_metrics("brain_age"))
        'brain_age/eval/predictions.json'
    """

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    def relative(self, path: Path) -> str:
        """``path`` relative to the run folder, with forward slashes."""
        return Path(path).relative_to(self.root).as_posix()

    # the run as a whole
    @property
    def config(self) -> Path:
        """the exact configuration of this run"""
        return self.root / "config.yaml"

    @property
    def summary(self) -> Path:
        """cohort counts, splits, seconds per stage"""
        return self.root / "summary.json"

    @property
    def logs(self) -> Path:
        """logs of each command (Dask, MONAI per-iteration lines)"""
        return self.root / "logs"

    def log(self, command: str) -> Path:
        """the log of one command"""
        return self.logs / f"{command}.log"

    # cohort
    @property
    def phantom(self) -> Path:
        """the phantom cohort as BIDS, ground truth in derivatives/"""
        return self.root / "phantom"

    @property
    def cohort(self) -> Path:
        """the validated cohort table"""
        return self.root / "cohort.tsv"

    @property
    def excluded(self) -> Path:
        """scans left out by validation, with the reason"""
        return self.root / "excluded.tsv"

    @property
    def splits(self) -> Path:
        """subject-level train / val / test split"""
        return self.root / "splits.tsv"

    # preprocessing
    @property
    def preprocessed(self) -> Path:
        """BIDS derivatives of the preprocessing (64^3 images, masks, sidecars)"""
        return self.root / "preprocessed"

    @property
    def preprocessed_table(self) -> Path:
        """one row per image: status, QC measures, paths"""
        return self.preprocessed / "preprocessed.tsv"

    @property
    def failures(self) -> Path:
        """images that failed or were stopped by QC"""
        return self.preprocessed / "failures.tsv"

    @property
    def site_effects(self) -> Path:
        """what survives preprocessing, per site pair"""
        return self.root / "site_effects"

    @property
    def site_effects_record(self) -> Path:
        """site probes and per-site intensity statistics"""
        return self.site_effects / "site_effects.json"

    # harmonization
    def cyclegan(self, source_site: str, target_site: str) -> Path:
        """the cyclegan_harmonization bundle trained on one site pair"""
        return self.root / "cyclegan" / f"{source_site}-{target_site}"

    def cyclegan_model(self, source_site: str, target_site: str) -> Path:
        """its generator to the target site (model.pt) and to the source (model_to_source.pt)"""
        return self.cyclegan(source_site, target_site) / "models" / "model.pt"

    @property
    def harmonized(self) -> Path:
        """the target site harmonized to the source (reference) site"""
        return self.root / "harmonized"

    @property
    def harmonized_table(self) -> Path:
        """the preprocessed table with harmonized paths"""
        return self.harmonized / "harmonized.tsv"

    @property
    def traveling_fidelity(self) -> Path:
        """traveling subjects: harmonized vs identity against the real image"""
        return self.harmonized / "traveling_fidelity.tsv"

    @property
    def harmonized_to_target(self) -> Path:
        """the source site harmonized to the target site"""
        return self.root / "harmonized_to_target"

    @property
    def evaluation(self) -> Path:
        """the harmonization evaluation beside its baselines"""
        return self.root / "evaluation"

    @property
    def evaluation_record(self) -> Path:
        """site probes, traveling subjects, biological signal, per harmonizer"""
        return self.evaluation / "evaluation.json"

    @property
    def tsne_figure(self) -> Path:
        """t-SNE of images before and after harmonization"""
        return self.evaluation / "tsne.png"

    # the brain-age benchmark
    @property
    def benchmark(self) -> Path:
        """the brain-age benchmark"""
        return self.root / "benchmark"

    @property
    def harmonizer_seeds(self) -> Path:
        """further CycleGANs trained on the same split"""
        return self.benchmark / "harmonizers"

    def benchmark_protocol(self, protocol: str) -> Path:
        """one protocol (pooled, held_out, cross_site): summary.json, summary.tsv, runs/"""
        return self.benchmark / protocol

    def benchmark_summary(self, protocol: str) -> Path:
        """its conditions with intervals, baselines and power"""
        return self.benchmark_protocol(protocol) / "summary.json"

    @property
    def cross_validated(self) -> Path:
        """brain age cross-validated over every control"""
        return self.benchmark / "cross_validated"

    @property
    def cross_validated_summary(self) -> Path:
        """its models against the mean predictor"""
        return self.cross_validated / "summary.json"

    # the downstream bundles
    def downstream(self, bundle: str) -> Path:
        """a downstream bundle trained on the train split (brain_age, ad_classification)"""
        return self.root / bundle

    def downstream_eval(self, bundle: str) -> Path:
        """its test-split inference"""
        return self.downstream(bundle) / "eval"

    def downstream_metrics(self, bundle: str) -> Path:
        """predictions.json (brain_age) or metrics.json (ad_classification)"""
        name = "predictions.json" if bundle == "brain_age" else "metrics.json"
        return self.downstream_eval(bundle) / name

    def downstream_predictions(self, bundle: str) -> Path:
        """one row per test subject"""
        return self.downstream_eval(bundle) / "predictions.tsv"

    def gradcam(self, bundle: str) -> Path:
        """ad_classification: Grad-CAM maps per subject and class means"""
        return self.downstream_eval(bundle) / "gradcam"

    def downstream_seeds(self, bundle: str) -> Path:
        """the same bundle over further training seeds"""
        return self.downstream(bundle) / "seeds.json"

    def downstream_seed(self, bundle: str, seed: int) -> Path:
        """one further training seed's bundle"""
        return self.downstream(bundle) / "seeds" / f"seed{seed}"

    # many-to-one harmonization
    @property
    def many_to_one(self) -> Path:
        """the many-to-one study: harmonizers, harmonized cohorts, evaluations"""
        return self.root / "many_to_one"

    def many_to_one_harmonizer(self, seed: int) -> Path:
        """one harmonizer seed's many_to_one_harmonization bundle run"""
        return self.many_to_one / "harmonizers" / f"seed{seed}"

    def many_to_one_harmonized(self, seed: int) -> Path:
        """every site harmonized to the reference by that seed"""
        return self.many_to_one / "harmonized" / f"seed{seed}"

    def many_to_one_evaluation(self, site: str) -> Path:
        """`evaluate harmonization` of one site (seen or held out)"""
        return self.many_to_one / "evaluation" / site

    def many_to_one_benchmark(self, site: str) -> Path:
        """the cross-site brain-age benchmark between the reference and a held-out site"""
        return self.many_to_one / "brain_age" / site

    @property
    def many_to_one_summary(self) -> Path:
        """per site: seen or held out, fidelity, site probe, biology, brain-age penalty"""
        return self.many_to_one / "summary.json"

    # the augmentation grid
    @property
    def augment_grid(self) -> Path:
        """the augmentation grid: one folder per repeat"""
        return self.root / "augment_grid"

    @property
    def augment_grid_summary(self) -> Path:
        """per arm: medians over repeats, paired differences to none"""
        return self.augment_grid / "summary.tsv"

    @property
    def augment_grid_record(self) -> Path:
        """the grid's settings, runs and skipped runs"""
        return self.augment_grid / "grid.json"

    @property
    def augment_grid_quality(self) -> Path:
        """synthetic-image quality per generator and class"""
        return self.augment_grid / "quality.tsv"

    # the report
    @property
    def report(self) -> Path:
        """report.html and report.json"""
        return self.root / "report"

    @property
    def report_html(self) -> Path:
        """the report page (self-contained)"""
        return self.report / "report.html"

    @property
    def report_json(self) -> Path:
        """every table of the report as records"""
        return self.report / "report.json"

    def tree(self) -> str:
        """Every path with what it holds, in definition order (the documented layout).

        Methods that take a site pair, protocol, bundle or seed are shown with placeholders.
        """
        placeholders = {
            "source_site": "SOURCE",
            "target_site": "TARGET",
            "protocol": "PROTOCOL",
            "bundle": "BUNDLE",
            "seed": "K",
            "site": "SITE",
            "command": "COMMAND",
        }
        lines = []
        for name, member in vars(type(self)).items():
            if name.startswith("_") or name in ("relative", "tree", "root"):
                continue
            if isinstance(member, property):
                path, doc = getattr(self, name), member.fget.__doc__
            elif inspect.isfunction(member):
                args = [placeholders[p] for p in list(inspect.signature(member).parameters)[1:]]
                path, doc = member(self, *args), member.__doc__
            else:
                continue
            lines.append(f"{self.relative(path):<40} {doc.strip()}")
        return "\n".join(lines)
