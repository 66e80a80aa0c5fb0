"""Generate a phantom multisite cohort as a BIDS dataset with a ground-truth derivatives folder.

Layout written under ``out``::

    dataset_description.json  README  participants.tsv  participants.json
    sub-<site><NNN>/anat/sub-<site><NNN>_T1w.nii.gz (+ .json)          one scan per regular subject
    sub-trav<NN>/ses-<site>/anat/sub-trav<NN>_ses-<site>_T1w.nii.gz      traveling subjects, every site
    sub-trav<NN>/sub-trav<NN>_sessions.tsv                               site of each session
    derivatives/phantom/
        dataset_description.json  truth.tsv  dseg.tsv
        tpl-MNI152NLin2009aSym/tpl-MNI152NLin2009aSym_res-<r>_dseg.nii.gz   template labels
        sub-*/[ses-*/]anat/*_desc-brain_mask.nii.gz     true brain mask (native grid)
                          *_desc-bias_T1w.nii.gz        true multiplicative bias field
                          *_dseg.nii.gz                 true tissue + structure labels
                          *_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.txt   true rigid transform

The transform follows the fMRIPrep / ANTs convention: an ITK transform (LPS) that, used to
resample the T1w image onto the template grid, maps template points to T1w points. It is the
exact 6-DOF head pose; the subject's own anatomy (head size, deformation, atrophy) is what remains
after it, as after any rigid registration. ``truth.tsv`` has one row per image: latent subject,
true age, sex, diagnosis, site, the true volumes and every latent parameter drawn.

Determinism: subject k's anatomy uses the random stream (seed, k) and its rendering at site j the
stream (seed, k, j), so results do not depend on the number of worker processes.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from scipy import ndimage as ndi
from tqdm import tqdm

from pipeline import __version__
from pipeline.atomic import save_nifti, write_json, write_table, write_text
from pipeline.phantom.anatomy import Effects, LatentSubject, build_anatomy
from pipeline.phantom.scanner import (
    ScannerProfile,
    SiteProfile,
    load_site_profiles,
    mixed_coil_pattern,
    render,
    scaled_profile,
)
from pipeline.phantom.template import LABELS, TEMPLATE_NAME, load_template, template_labels
from pipeline.run import StageMarker

__all__ = ["PhantomSpec", "PhantomResult", "generate_phantom", "plan_subjects"]

DERIVATIVE = Path("derivatives") / "phantom"


@dataclass(frozen=True)
class PhantomSpec:
    """What to generate. The defaults make the cohort of ``mriharmony demo``."""

    sites: tuple[str, ...] = ("adni", "oasis", "ukb")
    subjects_per_site: int = 20
    traveling: int = 4
    resolution: float = 2.0
    seed: int = 0
    effects: Effects = field(default_factory=Effects)
    profiles: str | None = None  # YAML of site profiles; None = configs/phantom_sites.yaml


@dataclass
class PhantomResult:
    root: Path
    truth: pd.DataFrame
    seconds: float
    reused: bool = False  # True when a complete dataset of the same spec was found and kept

    @property
    def truth_path(self) -> Path:
        return self.root / DERIVATIVE / "truth.tsv"


@dataclass(frozen=True)
class _Job:
    index: int
    subject: str
    latent: LatentSubject
    sessions: tuple[tuple[str, str], ...]  # (session label or "", site)


def _truncated_normal(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float) -> float:
    for _ in range(1000):
        x = rng.normal(mean, sd)
        if lo <= x <= hi:
            return float(x)
    return float(np.clip(mean, lo, hi))


def plan_subjects(spec: PhantomSpec, sites: dict[str, SiteProfile]) -> list[_Job]:
    """Draw the demographics of every latent subject (deterministic from the seed)."""
    unknown = [s for s in spec.sites if s not in sites]
    if unknown:
        raise ValueError(f"unknown site(s) {unknown}; the site profiles define: {sorted(sites)}")
    if spec.subjects_per_site < 0 or spec.traveling < 0:
        raise ValueError("subjects_per_site and traveling must be >= 0")
    jobs: list[_Job] = []
    index = 0
    for j, name in enumerate(spec.sites):
        demo = sites[name].demographics
        rng = np.random.default_rng([spec.seed, 1000 + j])
        labels, probs = zip(*sorted(demo.diagnosis.items()))
        for i in range(spec.subjects_per_site):
            age = round(_truncated_normal(rng, demo.age_mean, demo.age_sd, demo.age_min, demo.age_max), 1)
            sex = "F" if rng.random() < demo.female else "M"
            dx = str(rng.choice(labels, p=np.array(probs) / sum(probs)))
            subject = f"{name}{i + 1:03d}"
            latent = LatentSubject(subject, age, sex, dx, (spec.seed, index))
            jobs.append(_Job(index, subject, latent, (("", name),)))
            index += 1
    rng = np.random.default_rng([spec.seed, 999])
    for i in range(spec.traveling):
        subject = f"trav{i + 1:02d}"
        latent = LatentSubject(
            subject, round(float(rng.uniform(55, 80)), 1), "F" if rng.random() < 0.5 else "M", "CN", (spec.seed, index)
        )
        jobs.append(_Job(index, subject, latent, tuple((name, name) for name in spec.sites)))
        index += 1
    return jobs


def _itk_rigid_text(template_to_scanner: np.ndarray) -> str:
    """ITK text transform (LPS) mapping template points to T1w points (fMRIPrep/ANTs convention)."""
    flip = np.diag([-1.0, -1.0, 1.0])
    matrix = flip @ template_to_scanner[:3, :3] @ flip
    offset = flip @ template_to_scanner[:3, 3]
    params = " ".join(f"{v:.10g}" for v in list(matrix.ravel()) + list(offset))
    return (
        "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
        f"Parameters: {params}\nFixedParameters: 0 0 0\n"
    )


def _nifti(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return img


def _entities(subject: str, session: str) -> tuple[Path, str]:
    folder = Path(f"sub-{subject}") / (f"ses-{session}" if session else "") / "anat"
    stem = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    return folder, stem


def _run_job(
    job: _Job, root: str, spec: PhantomSpec, reference: ScannerProfile, sites: dict[str, SiteProfile]
) -> list[dict]:
    """Build one latent subject's anatomy and render it at each of its sites (one task)."""
    template = load_template(spec.resolution)
    anatomy = build_anatomy(template, job.latent, spec.effects)
    rows = []
    for session, site in job.sessions:
        j = spec.sites.index(site)
        profile = scaled_profile(sites[site].scanner, reference, spec.effects.site)
        coil = mixed_coil_pattern(
            np.random.default_rng([spec.seed, 2000 + j]).normal(0.0, 1.0, size=9),
            np.random.default_rng([spec.seed, 1999]).normal(0.0, 1.0, size=9),
            spec.effects.site,
        )
        rendering = render(
            anatomy,
            template,
            profile,
            resolution=spec.resolution,
            rng=np.random.default_rng([spec.seed, job.index, j]),
            coil_pattern=coil,
        )
        folder, stem = _entities(job.subject, session)
        raw = Path(root) / folder
        truth = Path(root) / DERIVATIVE / folder
        save_nifti(raw / f"{stem}_T1w.nii.gz", _nifti(rendering.image, rendering.affine))
        zooms = np.sqrt((rendering.affine[:3, :3] ** 2).sum(0))
        write_json(
            raw / f"{stem}_T1w.json",
            {
                "Manufacturer": "mriharmony phantom",
                "ManufacturersModelName": site,
                "InstitutionName": site,
                "SliceThickness": float(zooms[int(np.argmax(zooms))]),
            },
        )
        save_nifti(truth / f"{stem}_desc-brain_mask.nii.gz", _nifti(rendering.brain_mask, rendering.affine))
        # the bias field is kept inside the head (dilated) and rounded to 1e-4: exact enough for
        # scoring bias correction, and 20x smaller than the full float32 field
        head = ndi.binary_dilation(rendering.dseg > 0, iterations=2)
        bias = np.where(head, np.round(rendering.bias_field, 4), 0.0).astype(np.float32)
        save_nifti(truth / f"{stem}_desc-bias_T1w.nii.gz", _nifti(bias, rendering.affine))
        save_nifti(truth / f"{stem}_dseg.nii.gz", _nifti(rendering.dseg, rendering.affine))
        write_text(
            truth / f"{stem}_from-T1w_to-{TEMPLATE_NAME}_mode-image_xfm.txt",
            _itk_rigid_text(rendering.template_to_scanner),
        )
        rows.append(
            {
                "subject": job.subject,
                "session": session,
                "site": site,
                "latent_id": job.latent.latent_id,
                "traveling": len(job.sessions) > 1,
                "age": job.latent.age,
                "sex": job.latent.sex,
                "diagnosis": job.latent.diagnosis,
                **anatomy.volumes,
                **anatomy.params,
                **rendering.params,
                "path": str(folder / f"{stem}_T1w.nii.gz"),
            }
        )
    return rows


def _spec_record(spec: PhantomSpec) -> dict:
    """The spec as plain JSON data (stored in the derivative's dataset_description.json)."""
    return json.loads(json.dumps({**asdict(spec), "effects": asdict(spec.effects)}))


def _resume_marker(root: Path, spec: PhantomSpec) -> StageMarker:
    """The dataset's resume record, kept in the ground-truth derivative's dataset_description.json."""
    return StageMarker(root / DERIVATIVE / "dataset_description.json", {"spec": _spec_record(spec)}, key="Resume")


def _existing(root: Path, spec: PhantomSpec) -> pd.DataFrame | None:
    """The truth table of a complete dataset generated with the same spec, else None.

    The derivative's dataset_description.json and truth.tsv are written last, so their presence
    with a matching spec means every image was written.
    """
    truth = root / DERIVATIVE / "truth.tsv"
    if not _resume_marker(root, spec).is_complete(truth):
        return None
    table = pd.read_csv(
        truth, sep="\t", dtype={"subject": str, "session": str}, keep_default_na=False, na_values=["n/a"]
    )
    if not all((root / p).exists() for p in table["path"]):
        return None
    return table


def _write_dataset_files(root: Path, spec: PhantomSpec, jobs: list[_Job], truth: pd.DataFrame) -> None:
    write_json(
        root / "dataset_description.json",
        {
            "Name": "mriharmony phantom multisite cohort",
            "BIDSVersion": "1.9.0",
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["mriharmony"],
            "GeneratedBy": [{"Name": "mriharmony-phantom", "Version": __version__}],
            "HowToAcknowledge": "Synthetic data built on the ICBM 2009a MNI152 template (Fonov et al. 2011).",
        },
    )
    write_text(
        root / "README",
        (
            "Synthetic multisite T1w cohort generated by `mriharmony phantom` from the MNI152 2009a template.\n"
            f"Sites: {', '.join(spec.sites)}; {spec.subjects_per_site} subjects per site; {spec.traveling} traveling "
            f"subjects scanned at every site; base resolution {spec.resolution} mm; seed {spec.seed}.\n"
            "Ground truth (masks, bias fields, labels, rigid transforms, volumes) is in derivatives/phantom/.\n"
        ),
    )
    participants = pd.DataFrame(
        [
            {
                "participant_id": f"sub-{job.subject}",
                "age": job.latent.age,
                "sex": job.latent.sex,
                "diagnosis": job.latent.diagnosis,
                "site": job.sessions[0][1] if len(job.sessions) == 1 else None,
            }
            for job in jobs
        ]
    )
    write_table(root / "participants.tsv", participants)
    write_json(
        root / "participants.json",
        {
            "age": {"Description": "age at scan", "Units": "year"},
            "sex": {"Description": "sex", "Levels": {"M": "male", "F": "female"}},
            "diagnosis": {
                "Description": "clinical diagnosis",
                "Levels": {"CN": "cognitively normal", "MCI": "mild cognitive impairment", "AD": "Alzheimer's disease"},
            },
            "site": {"Description": "acquisition site; n/a for traveling subjects (see their sessions.tsv)"},
        },
    )
    for job in jobs:
        if len(job.sessions) > 1:
            sessions = pd.DataFrame(
                {"session_id": [f"ses-{s}" for s, _ in job.sessions], "site": [site for _, site in job.sessions]}
            )
            write_table(root / f"sub-{job.subject}" / f"sub-{job.subject}_sessions.tsv", sessions)

    deriv = root / DERIVATIVE
    write_json(
        deriv / "dataset_description.json",
        {
            "Name": "mriharmony phantom ground truth",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "mriharmony-phantom", "Version": __version__}],
            "SourceDatasets": [{"URL": "../../"}],
            "PhantomSpec": _spec_record(spec),
            "Resume": _resume_marker(root, spec).record(),
        },
    )
    write_table(deriv / "truth.tsv", truth)
    write_table(deriv / "dseg.tsv", pd.DataFrame({"index": list(LABELS), "name": list(LABELS.values())}))
    labels, affine = template_labels(spec.resolution)
    tpl = deriv / f"tpl-{TEMPLATE_NAME}"
    save_nifti(tpl / f"tpl-{TEMPLATE_NAME}_res-{spec.resolution:g}mm_dseg.nii.gz", _nifti(labels, affine))


def generate_phantom(
    out: str | os.PathLike,
    spec: PhantomSpec = PhantomSpec(),
    *,
    workers: int | None = None,
    progress: bool = True,
    resume: bool = True,
) -> PhantomResult:
    """Generate the phantom cohort described by ``spec`` into the BIDS folder ``out``.

    Args:
        out: destination folder (created; existing files of the same names are replaced).
        spec: sites, sizes, resolution, seed and effect-size multipliers.
        workers: worker threads (default: the number of CPU cores).
        progress: show a progress bar over subjects.
        resume: keep a complete dataset already in ``out`` if it was made with the same spec.

    Returns:
        The dataset root, the ground-truth table and the wall time.
    """
    start = time.perf_counter()
    root = Path(out)
    if resume and (existing := _existing(root, spec)) is not None:
        return PhantomResult(root=root, truth=existing, seconds=time.perf_counter() - start, reused=True)
    reference, sites = load_site_profiles(spec.profiles)  # parsed once, shared by every task
    jobs = plan_subjects(spec, sites)
    if not jobs:
        raise ValueError("nothing to generate: subjects_per_site and traveling are both 0")
    workers = workers or os.cpu_count() or 1
    load_template(spec.resolution)  # build once, shared by the threads
    rows: list[dict] = []
    bar = tqdm(total=len(jobs), desc="phantom", unit="subject", disable=not progress)
    # Threads, not processes: the template (tens of MB) is shared, nothing is pickled, and the heavy
    # work (torch sampling, numpy arithmetic, zlib) releases the GIL. Torch runs one thread per task.
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1 if workers > 1 else torch_threads)
    try:
        with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            n = len(jobs)
            for result in pool.map(_run_job, jobs, [str(root)] * n, [spec] * n, [reference] * n, [sites] * n):
                rows += result
                bar.update()
    finally:
        torch.set_num_threads(torch_threads)
        bar.close()
    truth = pd.DataFrame(rows)
    _write_dataset_files(root, spec, jobs, truth)
    return PhantomResult(root=root, truth=truth, seconds=time.perf_counter() - start)
