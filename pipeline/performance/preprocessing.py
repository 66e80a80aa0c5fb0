"""Accuracy and speed of the preprocessing chain on a phantom cohort, beside a reference chain.

    python -m pipeline.performance.preprocessing --resolution 1 --subjects-per-site 1 --out bench.json
    python -m pipeline.performance.preprocessing --resolution 2 --cohort 20,100 --workers 1,2 --out cohort.json   # Dask
    python -m pipeline.performance.preprocessing --real-head --out real_head.json   # Colin27 moved by known motions

Per image and step it prints brain-mask Dice vs the true mask, the correlation of estimated and
true log bias field inside the brain, the registration error (mean mm at the template's brain
voxels vs the true transform) and seconds, for

* ``ours``: the configured chain (configs/preprocess.yaml);
  its three core steps are timed one by one, and the full chain (load ... write) once more as the
  batch runs it (``seconds_full_chain``);
* ``reference``: antspyx defaults: ``ants.n4_bias_field_correction`` without mask, template-mask
  stripping, ``ants.registration(type_of_transform='Rigid')`` with its default iterations.

Both use the same fixed image (the 2 mm template box) and run in this process with the machine's
threads, one image at a time; peak memory is the
process's maximum resident set. ``--cohort N[,M]`` instead times ``run_preprocess`` on phantom cohorts of N (and M)
images with each ``--workers`` count of local Dask workers, and reads every worker's peak resident memory after
the run: it must not grow with the cohort (a worker holds one image at a time).

``--real-head`` runs both chains on a real head instead (Colin27, ``scripts/fetch_colin27.sh``; the phantom
is built from the registration target and flatters registration), moved by known rigid motions onto oblique,
anisotropic grids with a bias field, Rician noise and int16 storage (:data:`REAL_HEAD_MOTIONS`). Per head:
brain-mask Dice against the BET mask moved the same way, the transform error against the truth (the motion
composed with the unmoved head's own transform from a dense registration, :data:`DENSE_REGISTRATION`) at the
template's brain points, the pose invariance (correlation of the 2 mm output with the unmoved head's inside
its brain mask; beside it the same for our brain resampled with the true transform: noise and interpolation
keep both below 1), and
seconds per step as the sidecar records them.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import ants
import nibabel as nib
import numpy as np

from pipeline.atomic import write_json
from pipeline.cohort import load_cohort
from pipeline.mni import TEMPLATE_NAME
from pipeline.phantom import PhantomSpec, generate_phantom
from pipeline.phantom.real_head import HeadMotion, find_colin27, move_head
from pipeline.preprocess.accuracy import bias_correlation, canonical_array, dice, motion_error_mm, registration_error_mm
from pipeline.preprocess.chain import preprocess_image
from pipeline.preprocess.config import PreprocessConfig, RegisterConfig, load_preprocess_config
from pipeline.preprocess.load import load_t1
from pipeline.preprocess.n4 import n4_correct
from pipeline.preprocess.register import rigid_register, template_box_image, to_ants
from pipeline.preprocess.skullstrip import skull_strip, template_mask
from pipeline.preprocess.space import to_template_box


def _truth(root: Path, path: str, suffix: str) -> Path:
    rel = Path(path).relative_to(root)
    return root / "derivatives" / "phantom" / rel.parent / rel.name.replace("_T1w.nii.gz", f"_{suffix}")


def _ours(img: nib.Nifti1Image, config: PreprocessConfig, workdir: str) -> dict:
    t = {}
    start = time.perf_counter()
    corrected, log_bias = n4_correct(img, config.n4)
    t["n4"] = time.perf_counter() - start
    start = time.perf_counter()
    mask = skull_strip(corrected, config.skullstrip)
    t["skullstrip"] = time.perf_counter() - start
    start = time.perf_counter()
    brain = nib.Nifti1Image(np.asarray(corrected.dataobj, dtype=np.float32) * mask, corrected.affine)
    transform = rigid_register(brain, config.register, workdir).transform
    t["register"] = time.perf_counter() - start
    return {"log_bias": np.asarray(log_bias.dataobj), "mask": mask, "transform": transform, "seconds": t}


def _reference(img: nib.Nifti1Image, workdir: str) -> dict:
    t = {}
    moving = to_ants(np.asarray(img.dataobj), img.affine)
    start = time.perf_counter()
    shifted = moving - float(moving.min()) + 1e-3
    corrected = ants.n4_bias_field_correction(shifted)
    log_bias = np.log(shifted.numpy() / np.maximum(corrected.numpy(), 1e-6))
    t["n4"] = time.perf_counter() - start
    start = time.perf_counter()
    corrected_img = nib.Nifti1Image(corrected.numpy().astype(np.float32), img.affine)
    mask = template_mask(corrected_img)
    t["skullstrip"] = time.perf_counter() - start
    start = time.perf_counter()
    brain = to_ants(corrected.numpy() * mask, img.affine)
    reg = ants.registration(
        template_box_image("t1"), brain, type_of_transform="Rigid", outprefix=str(Path(workdir) / "ref_")
    )
    t["register"] = time.perf_counter() - start
    return {
        "log_bias": log_bias,
        "mask": mask,
        "transform": reg["fwdtransforms"][0],
        "seconds": t,
        "corrected": (corrected.numpy() * mask).astype(np.float32),
    }


def accuracy_benchmark(root: Path, config: PreprocessConfig, reference: bool) -> list[dict]:
    rows = []
    for _, row in load_cohort(root).table.iterrows():
        img = load_t1(row["path"])
        true_mask = canonical_array(_truth(root, row["path"], "desc-brain_mask.nii.gz")) > 0
        true_bias = canonical_array(_truth(root, row["path"], "desc-bias_T1w.nii.gz"))
        true_xfm = _truth(root, row["path"], f"from-T1w_to-{TEMPLATE_NAME}_mode-image_xfm.txt")
        chains = {"ours": lambda d: _ours(img, config, d)}
        if reference:
            chains["reference"] = lambda d: _reference(img, d)
        for name, run in chains.items():
            with tempfile.TemporaryDirectory() as workdir:
                out = run(workdir)
                result = {
                    "image": Path(row["path"]).name,
                    "chain": name,
                    "mask_dice": dice(out["mask"], true_mask),
                    "bias_r": bias_correlation(out["log_bias"], true_bias, true_mask),
                    "registration_error_mm": registration_error_mm(out["transform"], true_xfm),
                    **{f"seconds_{k}": v for k, v in out["seconds"].items()},
                    "seconds_total": sum(out["seconds"].values()),
                }
            if name == "ours":  # the whole chain as the batch runs it: load ... write, outputs included
                with tempfile.TemporaryDirectory() as tmp:
                    record = preprocess_image(row.to_dict(), config, tmp)
                result["seconds_full_chain"] = json.loads(record["step_seconds"])["total"]
            rows.append(result)
            print(
                f"{result['image']:<36} {name:<9} dice {result['mask_dice']:.3f}  bias r {result['bias_r']:.3f}  "
                f"reg {result['registration_error_mm']:.2f} mm  "
                + "  ".join(f"{k} {v:.1f}s" for k, v in out["seconds"].items())
                + f"  total {result['seconds_total']:.1f}s"
                + (f"  full chain {result['seconds_full_chain']:.1f}s" if "seconds_full_chain" in result else ""),
                flush=True,
            )
    return rows


#: The benchmark's acquisitions of the real head: rotations up to 15 degrees, translations up to 12 mm, the
#: grids and axis orderings of three scanners (1 x 1 x 1.2 LPS, 0.94 x 0.94 x 1.5 PIR, 1.2 x 1 x 1 ASL), tilted.
REAL_HEAD_MOTIONS = (
    HeadMotion(
        rotation_deg=(12, -5, 8),
        translation_mm=(10, -6, 4),
        zooms=(1, 1, 1.2),
        orientation="LPS",
        obliquity_deg=(6, 0, 3),
        seed=1,
    ),
    HeadMotion(
        rotation_deg=(-8, 14, -4),
        translation_mm=(-5, 11, -8),
        zooms=(0.94, 0.94, 1.5),
        orientation="PIR",
        obliquity_deg=(0, -7, 4),
        seed=2,
    ),
    HeadMotion(
        rotation_deg=(4, 7, -15),
        translation_mm=(3, -4, 12),
        zooms=(1.2, 1, 1),
        orientation="ASL",
        obliquity_deg=(-5, 3, 0),
        seed=3,
    ),
)
#: The unmoved head's own transform, the truth's first half: every level down to 2 mm, dense sampling, the 1 mm
#: image itself (downsampled, the unmoved head's grid lines up with the template's and its 2 mm version
#: registers 0.2 mm off: the grid-alignment artefact of mutual information).
DENSE_REGISTRATION = RegisterConfig(
    iterations=(200, 100, 50),
    shrink_factors=(4, 2, 1),
    smoothing_sigmas=(2, 1, 0),
    random_sampling_rate=1.0,
    moving_voxel_mm=0,
)


def _composed_transform(reference: str | Path, motion_ras: np.ndarray, path: Path) -> Path:
    """The true template->T1w transform of a moved head (motion after ``reference``) as an ITK file."""
    import SimpleITK as sitk

    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    motion_lps = flip @ motion_ras @ flip
    moved = sitk.AffineTransform(3)
    moved.SetMatrix(motion_lps[:3, :3].ravel().tolist())
    moved.SetTranslation(motion_lps[:3, 3].tolist())
    composite = sitk.CompositeTransform(3)
    composite.AddTransform(moved)  # applied last
    composite.AddTransform(sitk.ReadTransform(str(reference)))
    sitk.WriteTransform(composite, str(path))
    return path


def real_head_benchmark(
    config: PreprocessConfig,
    reference: bool,
    motions: tuple[HeadMotion, ...] = REAL_HEAD_MOTIONS,
    cache: str | None = None,
) -> list[dict]:
    """Both chains on Colin27 moved by ``motions`` (see the module docstring); one row per head and chain."""
    colin = find_colin27(cache)
    head, bet = nib.load(str(colin.head)), nib.load(str(colin.brain))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        unmoved = {"subject": "colin27", "session": "", "site": "real", "path": str(colin.head)}
        dense = PreprocessConfig(**{**config.__dict__, "register": DENSE_REGISTRATION})
        record = preprocess_image(unmoved, dense, tmp / "unmoved")
        if record["status"] != "ok":
            raise RuntimeError(f"the unmoved head failed: {record['reason']}")
        truth_image = nib.load(record["image_2mm"]).get_fdata()
        truth_mask = nib.load(record["mask_2mm"]).get_fdata() > 0
        for i, motion in enumerate(motions):
            moved, moved_bet, matrix = move_head(head, motion, bet)
            path = tmp / f"sub-moved{i}_T1w.nii.gz"
            nib.save(moved, path)
            bet_mask = np.asarray(nib.as_closest_canonical(moved_bet).dataobj) > 0
            true_xfm = _composed_transform(record["transform"], matrix, tmp / f"true{i}.tfm")
            img = load_t1(path)
            mine = preprocess_image(
                {"subject": f"moved{i}", "session": "", "site": "real", "path": str(path)}, config, tmp / "ours"
            )
            if mine["status"] != "ok":
                raise RuntimeError(f"moved head {i}: {mine['step']}: {mine['reason']}")
            mask = canonical_array(mine["mask_native"]) > 0
            corrected, _ = n4_correct(img, config.n4)  # our own brain, resampled with the true transform
            with_truth, _ = to_template_box(
                nib.Nifti1Image(np.asarray(corrected.dataobj) * mask, img.affine), mask, true_xfm
            )
            steps = json.loads(mine["step_seconds"])
            chains = {
                "ours": {
                    "mask": mask,
                    "transform": mine["transform"],
                    "image": nib.load(mine["image_2mm"]).get_fdata(),
                    "seconds": {k: v for k, v in steps.items() if k != "total"},
                }
            }
            if reference:
                with tempfile.TemporaryDirectory() as workdir:
                    out = _reference(img, workdir)
                    corrected = nib.Nifti1Image(out.pop("corrected"), img.affine)
                    out["image"], _ = to_template_box(corrected, out["mask"], out["transform"])
                    chains["reference"] = out
                    rows.append(
                        _real_head_row(
                            i,
                            motion,
                            "reference",
                            out,
                            bet_mask,
                            record["transform"],
                            matrix,
                            truth_image,
                            truth_mask,
                            with_truth,
                        )
                    )
            rows.insert(
                len(rows) - (1 if reference else 0),
                _real_head_row(
                    i,
                    motion,
                    "ours",
                    chains["ours"],
                    bet_mask,
                    record["transform"],
                    matrix,
                    truth_image,
                    truth_mask,
                    with_truth,
                ),
            )
    return rows


def _real_head_row(
    i: int,
    motion: HeadMotion,
    chain: str,
    out: dict,
    bet_mask: np.ndarray,
    reference: str,
    matrix: np.ndarray,
    truth_image: np.ndarray,
    truth_mask: np.ndarray,
    with_truth: np.ndarray,
) -> dict:
    row = {
        "image": f"moved{i} {motion.orientation} {'x'.join(f'{z:g}' for z in motion.zooms)} mm",
        "chain": chain,
        "mask_dice_vs_bet": dice(out["mask"], bet_mask),
        "transform_error_mm": motion_error_mm(out["transform"], reference, matrix),
        "pose_r": float(np.corrcoef(out["image"][truth_mask], truth_image[truth_mask])[0, 1]),
        "pose_r_true_transform": float(np.corrcoef(with_truth[truth_mask], truth_image[truth_mask])[0, 1]),
        **{f"seconds_{k}": v for k, v in out["seconds"].items()},
    }
    row["seconds_total"] = float(sum(out["seconds"].values()))
    print(
        f"{row['image']:<26} {chain:<9} dice {row['mask_dice_vs_bet']:.3f}  error {row['transform_error_mm']:.2f} mm  "
        f"r {row['pose_r']:.4f} (true transform {row['pose_r_true_transform']:.4f})  "
        + "  ".join(f"{k} {v:.1f}s" for k, v in out["seconds"].items())
        + f"  total {row['seconds_total']:.1f}s",
        flush=True,
    )
    return row


def _worker_peak_rss_mb() -> float:
    """This process's resident high-water mark (VmHWM). Not ru_maxrss: Linux carries that across fork and exec,
    so a spawned Dask worker would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cohort_benchmark(root: Path, config: PreprocessConfig, workers: list[int]) -> dict:
    """Wall time, images per minute and each Dask worker's peak resident memory of ``run_preprocess`` on the
    cohort ``root``, for each worker count (a fresh local cluster each time, single-threaded workers as the
    default cluster has them; the peak is read from every worker after the run)."""
    import logging

    from dask.distributed import Client, LocalCluster

    from pipeline.parallel import SINGLE_THREAD_ENV
    from pipeline.preprocess.batch import run_preprocess

    out = {}
    for n in workers:
        with (
            tempfile.TemporaryDirectory() as tmp,
            LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.WARNING,
                env=SINGLE_THREAD_ENV,
            ) as cluster,
            Client(cluster) as client,
        ):
            start = time.perf_counter()
            result = run_preprocess(
                root, Path(tmp) / "deriv", config, scheduler=cluster.scheduler_address, progress=False
            )
            wall = time.perf_counter() - start
            peaks = sorted(client.run(_worker_peak_rss_mb).values())
        out[f"workers_{n}"] = {
            "images": len(result.table),
            "ok": len(result.ok),
            "wall_seconds": wall,
            "images_per_minute": 60.0 * len(result.table) / wall,
            "worker_peak_rss_mb": peaks,
            "max_worker_peak_rss_mb": max(peaks),
        }
        print(
            f"{len(result.table)} images, {n} worker(s): {wall:.1f} s "
            f"({60.0 * len(result.table) / wall:.1f} images/min), "
            f"peak memory per worker {', '.join(f'{m:.0f}' for m in peaks)} MB",
            flush=True,
        )
    return out


def _means(rows: list[dict]) -> dict:
    """Per chain: the mean of every number over the images, with the images' count."""
    summary = {}
    for chain in sorted({r["chain"] for r in rows}):
        mine = [r for r in rows if r["chain"] == chain]
        summary[chain] = {k: float(np.mean([r[k] for r in mine])) for k in mine[0] if k not in ("image", "chain")}
        summary[chain]["images"] = len(mine)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=float, default=1.0)
    parser.add_argument("--sites", default="adni,oasis,ukb")
    parser.add_argument("--subjects-per-site", type=int, default=1)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--no-reference", action="store_true", help="skip the antspyx-defaults reference chain")
    parser.add_argument(
        "--real-head",
        action="store_true",
        help="Colin27 moved by known motions instead of the phantom (scripts/fetch_colin27.sh first)",
    )
    parser.add_argument(
        "--cohort", default="", help="comma-separated cohort sizes (images): time run_preprocess on each"
    )
    parser.add_argument(
        "--workers", default="1,2", help="comma-separated Dask worker counts for --cohort (default 1,2)"
    )
    parser.add_argument("--config", default=None)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    config = load_preprocess_config(args.config)
    sites = tuple(args.sites.split(","))
    sizes = [int(v) for v in args.cohort.split(",") if v]
    workers = [int(v) for v in args.workers.split(",") if v]
    results: dict = {"resolution": args.resolution, "config": config.to_dict()}
    if args.real_head:
        rows = real_head_benchmark(config, not args.no_reference)
        results["images"] = rows
        results["mean"] = _means(rows)
        print(json.dumps(results["mean"], indent=2))
    elif sizes:
        results["cohort"] = {}
        for size in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                spec = PhantomSpec(
                    sites=sites,
                    subjects_per_site=int(np.ceil(size / len(sites))),
                    traveling=0,
                    resolution=args.resolution,
                    seed=args.seed,
                )
                root = generate_phantom(Path(tmp) / "bids", spec, progress=False).root
                results["cohort"][str(size)] = cohort_benchmark(root, config, workers)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            spec = PhantomSpec(
                sites=sites,
                subjects_per_site=args.subjects_per_site,
                traveling=0,
                resolution=args.resolution,
                seed=args.seed,
            )
            root = generate_phantom(Path(tmp) / "bids", spec, progress=False).root
            rows = accuracy_benchmark(root, config, not args.no_reference)
        results["images"] = rows
        results["mean"] = _means(rows)
        print(json.dumps(results["mean"], indent=2))
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak memory (this process): {results['peak_rss_mb']:.0f} MB")
    if args.out:
        write_json(args.out, results)


if __name__ == "__main__":
    main()
