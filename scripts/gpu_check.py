"""One GPU check: the CUDA paths no CPU test reaches, the bundles at 64^3 with the paper-size networks, torchrun
with nccl, and the speed figures; one JSON, a non-zero exit on any failure. Run it through scripts/gpu_check.sh.

Steps (each recorded as ok / failed with its seconds and, on failure, the error):

1. ``environment``: torch, CUDA, the device, bfloat16 support.
2. ``cyclegan_trainer`` / ``conditional_gan_trainer``: one training step each in fp32, float16 autocast with
   gradient scalers, bfloat16 autocast and channels_last_3d; losses finite, parameters moved.
3. ``bundles``: a small phantom (2 sites, true masks), then one epoch of each trainable bundle at 64^3 with the
   paper-size networks through ``python -m monai.bundle run`` (CycleGAN with amp bfloat16 and channels_last,
   brain age with amp float16, AD classification, the conditional GAN at 64^3), and the brain-age and
   harmonization inference configs on what they wrote.
4. ``torchrun_nccl``: the brain_age multi-GPU overlay under ``torchrun --nproc_per_node=1`` with nccl.
5. ``speed``: CycleGAN training steps per second at 64^3, batch 4 and 8, fp32 against bfloat16; generator
   inference volumes per second (fp32, bfloat16); peak GPU memory of each.

``--dry-run`` runs the same steps on the CPU at toy sizes (16^3-32^3, narrow networks, batch 1-2, gloo instead
of nccl), so the script stays runnable where no GPU is; its numbers mean nothing.

    python scripts/gpu_check.py --out gpu_check [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class Check:
    """The run's settings (GPU or dry run) and the record of every step."""

    def __init__(self, out: Path, dry_run: bool, break_step: str | None = None):
        import torch

        self.out, self.dry_run, self.break_step = out, dry_run, break_step
        self.device = "cpu" if dry_run else "cuda:0"
        if not dry_run and not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run with --dry-run to check the script on a CPU")
        self.size = 32 if dry_run else 64
        self.steps: dict[str, dict[str, Any]] = {}

    def run(self, name: str, fn: Callable[[], dict]) -> None:
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            if name == self.break_step:
                raise RuntimeError(f"--break {name}: a deliberate failure")
            record = {"status": "ok", **fn()}
        except Exception as exc:  # noqa: BLE001 - every step is recorded; the exit status reports failures
            record = {
                "status": "failed",
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-3000:],
            }
        record["seconds"] = round(time.perf_counter() - start, 1)
        self.steps[name] = record
        print(
            f"   {record['status']} ({record['seconds']} s)"
            + (f": {record.get('error')}" if record["status"] != "ok" else ""),
            flush=True,
        )

    def bundle(self, *args: str, torchrun: bool = False, timeout: int = 600) -> str:
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        head = (
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]
            if torchrun
            else [sys.executable]
        )
        proc = subprocess.run(
            [*head, "-m", "monai.bundle", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(f"monai.bundle {' '.join(args[:3])} failed: {(proc.stdout + proc.stderr)[-2000:]}")
        return proc.stdout + proc.stderr


def environment(check: Check) -> dict:
    import monai
    import torch

    info = {
        "torch": torch.__version__,
        "monai": monai.__version__,
        "cuda_available": torch.cuda.is_available(),
        "dry_run": check.dry_run,
    }
    if torch.cuda.is_available():
        info.update(
            cuda=torch.version.cuda,
            device=torch.cuda.get_device_name(0),
            bf16_supported=torch.cuda.is_bf16_supported(),
            memory_gb=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
        )
    return info


def _moved(before: list, after: list) -> bool:
    return any(not a.equal(b) for a, b in zip(before, after))


def cyclegan_trainer(check: Check) -> dict:
    import torch

    from pipeline.engines import CycleGANTrainer
    from pipeline.nets import HarmonizationGenerator3D, PatchDiscriminator3D

    size, result = check.size, {}  # 32^3 at least: the PatchGAN's instance norm needs more than 1 voxel at its end
    kw = {"channels": 4, "n_residual": 1} if check.dry_run else {}
    dkw = {"channels": 4} if check.dry_run else {}
    for mode, amp, dtype, last in (
        ("fp32", False, "float16", False),
        ("float16", True, "float16", False),
        ("bfloat16", True, "bfloat16", False),
        ("channels_last_3d", False, "float16", True),
    ):
        torch.manual_seed(0)
        fmt = torch.channels_last_3d if last else torch.contiguous_format
        nets = [
            HarmonizationGenerator3D(**kw),
            HarmonizationGenerator3D(**kw),
            PatchDiscriminator3D(**dkw),
            PatchDiscriminator3D(**dkw),
        ]
        nets = [n.to(check.device, memory_format=fmt) for n in nets]
        g_opt = torch.optim.Adam([*nets[0].parameters(), *nets[1].parameters()], lr=1e-4)
        d_opt = torch.optim.Adam([*nets[2].parameters(), *nets[3].parameters()], lr=1e-4)
        batch = {"x": torch.rand(2, 1, size, size, size), "y": torch.rand(2, 1, size, size, size)}
        trainer = CycleGANTrainer(
            check.device, 1, [batch], *nets, g_opt, d_opt, amp=amp, amp_dtype=dtype, channels_last=last
        )
        before = [p.detach().clone() for p in nets[0].parameters()]
        out = trainer._iteration(trainer, batch)
        if not all(torch.isfinite(torch.tensor(v)) for v in out.values()):
            raise RuntimeError(f"{mode}: non-finite losses {out}")
        if not _moved(before, list(nets[0].parameters())):
            raise RuntimeError(f"{mode}: G_X did not change")
        result[mode] = {k: round(float(v), 4) for k, v in out.items() if k in ("g_loss", "d_loss")}
    return result


def conditional_gan_trainer(check: Check) -> dict:
    import torch

    from pipeline.engines.conditional_gan import ConditionalGANTrainer
    from pipeline.nets.conditional_gan import ConditionalDiscriminator3D, ConditionalGenerator3D

    size, result = (16 if check.dry_run else check.size), {}
    width = 4 if check.dry_run else 32
    for mode, amp, dtype, last in (
        ("fp32", False, "float16", False),
        ("float16", True, "float16", False),
        ("bfloat16", True, "bfloat16", False),
        ("channels_last_3d", False, "float16", True),
    ):
        torch.manual_seed(0)
        fmt = torch.channels_last_3d if last else torch.contiguous_format
        g = ConditionalGenerator3D(spatial_size=size, channels=width).to(check.device, memory_format=fmt)
        d = ConditionalDiscriminator3D(spatial_size=size, channels=width).to(check.device, memory_format=fmt)
        g_opt = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))
        d_opt = torch.optim.Adam(d.parameters(), lr=4e-4, betas=(0.0, 0.9))
        batch = {"image": torch.rand(2, 1, size, size, size), "label": torch.tensor([0, 1])}
        trainer = ConditionalGANTrainer(
            check.device, 1, [batch], g, d, g_opt, d_opt, amp=amp, amp_dtype=dtype, channels_last=last
        )
        before = [p.detach().clone() for p in g.parameters()]
        out = trainer._iteration(trainer, batch)
        values = {k: float(v) for k, v in out.items() if isinstance(v, (int, float))} if isinstance(out, dict) else {}
        if not all(torch.isfinite(torch.tensor(v)) for v in values.values()):
            raise RuntimeError(f"{mode}: non-finite losses {values}")
        if not _moved(before, list(g.parameters())):
            raise RuntimeError(f"{mode}: the generator did not change")
        result[mode] = {k: round(v, 4) for k, v in values.items()}
    return result


def bundles(check: Check) -> dict:
    from pipeline.experiments.downstream_learning import prepare_phantom
    from pipeline.phantom import Effects, PhantomSpec
    from pipeline.table_paths import read_table

    data = check.out / "phantom"
    spec = PhantomSpec(
        sites=("adni", "ukb"),
        subjects_per_site=4 if check.dry_run else 8,
        traveling=2,
        resolution=4.0,
        seed=0,
        effects=Effects(ad=2.0),
    )
    preprocessed = prepare_phantom(data, spec, fractions=(0.6, 0.2, 0.2), workers=2)
    size = f"[{check.size},{check.size},{check.size}]"
    tiny = check.dry_run
    runs = check.out / "bundles"
    times: dict[str, float] = {}

    def timed(name: str, *args: str) -> None:
        start = time.perf_counter()
        check.bundle(*args)
        times[name] = round(time.perf_counter() - start, 1)

    cyclegan = (
        ["--net_kwargs#channels", "4", "--net_kwargs#n_residual", "1", "--disc_kwargs#channels", "4"] if tiny else []
    )
    timed(
        "cyclegan_train",
        "run",
        "--config_file",
        "bundles/cyclegan_harmonization/configs/train.yaml",
        "--bundle_root",
        str(runs / "cyclegan"),
        "--dataset_dir",
        str(preprocessed),
        "--source_site",
        "ukb",
        "--target_site",
        "adni",
        "--epochs",
        "1",
        "--epoch_length",
        "2",
        "--batch_size",
        "2",
        "--spatial_size",
        "[64,64,64]",
        "--amp",
        "true",
        "--amp_dtype",
        "bfloat16",
        "--channels_last",
        str(not tiny).lower(),
        *cyclegan,
    )
    timed(
        "cyclegan_inference",
        "run",
        "--config_file",
        "bundles/cyclegan_harmonization/configs/inference.yaml",
        "--bundle_root",
        str(runs / "cyclegan"),
        "--dataset_dir",
        str(preprocessed),
        "--output_dir",
        str(runs / "cyclegan" / "harmonized"),
        "--amp",
        "bfloat16",
        *cyclegan[:4],
    )
    harmonized = read_table(runs / "cyclegan" / "harmonized" / "harmonized.tsv", keep_default_na=False)
    if not (harmonized.loc[harmonized["site"] == "ukb", "harmonized"].astype(str) == "True").all():
        raise RuntimeError("the harmonization inference left ukb images unharmonized")
    brain = ["--net_kwargs#channels", "[4,8,8,16,16]", "--net_kwargs#hidden", "16"] if tiny else []
    timed(
        "brain_age_train",
        "run",
        "--config_file",
        "bundles/brain_age/configs/train.yaml",
        "--bundle_root",
        str(runs / "brain_age"),
        "--dataset_dir",
        str(preprocessed),
        "--epochs",
        "1",
        "--batch_size",
        "4",
        "--spatial_size",
        size,
        "--amp",
        str(not tiny).lower(),
        "--amp_dtype",
        "float16",
        *brain,
    )
    timed(
        "brain_age_inference",
        "run",
        "--config_file",
        "bundles/brain_age/configs/inference.yaml",
        "--bundle_root",
        str(runs / "brain_age"),
        "--dataset_dir",
        str(preprocessed),
        "--output_file",
        str(runs / "brain_age" / "predictions.tsv"),
        "--split",
        "all",
        "--spatial_size",
        size,
        "--n_resamples",
        "10",
        *brain,
    )
    ad = ["--net_kwargs#widths", "[8,16,32,64]"] if tiny else []
    timed(
        "ad_classification_train",
        "run",
        "--config_file",
        "bundles/ad_classification/configs/train.yaml",
        "--bundle_root",
        str(runs / "ad"),
        "--dataset_dir",
        str(preprocessed),
        "--epochs",
        "1",
        "--batch_size",
        "4",
        "--spatial_size",
        size,
        "--channels_last",
        str(not tiny).lower(),
        *ad,
    )
    conditional = (
        ["--net_kwargs#channels", "4", "--disc_kwargs#channels", "4", "--net_kwargs#latent_dim", "8"] if tiny else []
    )
    timed(
        "synthetic_train",
        "run",
        "--config_file",
        "bundles/synthetic_augmentation/configs/train.yaml",
        "--bundle_root",
        str(runs / "synthetic"),
        "--dataset_dir",
        str(preprocessed),
        "--epochs",
        "1",
        "--batch_size",
        "2",
        "--spatial_size",
        str(16 if tiny else 64),
        *conditional,
    )
    return {"bundle_seconds": times, "images": int(len(read_table(preprocessed / "preprocessed.tsv")))}


def torchrun_nccl(check: Check) -> dict:
    preprocessed = check.out / "phantom" / "preprocessed"
    if not preprocessed.exists():
        raise RuntimeError("needs the phantom of the bundles step")
    tiny = (
        ["--net_kwargs#channels", "[4,8,8,16,16]", "--net_kwargs#hidden", "16", "--spatial_size", "[16,16,16]"]
        if check.dry_run
        else []
    )
    root = check.out / "bundles" / "brain_age_ddp"
    log = check.bundle(
        "run",
        "--config_file",
        "['bundles/brain_age/configs/train.yaml','bundles/brain_age/configs/multi_gpu_train.yaml']",
        "--bundle_root",
        str(root),
        "--dataset_dir",
        str(preprocessed),
        "--epochs",
        "1",
        "--batch_size",
        "2",
        *tiny,
        torchrun=True,
    )
    if not (root / "models" / "model.pt").exists():
        raise RuntimeError("rank 0 wrote no models/model.pt")
    return {"backend": "gloo" if check.dry_run else "nccl", "epoch_completed": "Epoch[1] Complete" in log}


def speed(check: Check) -> dict:
    import torch

    from pipeline.engines import CycleGANTrainer
    from pipeline.nets import HarmonizationGenerator3D, PatchDiscriminator3D

    size = check.size
    kw = {"channels": 4, "n_residual": 1} if check.dry_run else {}
    dkw = {"channels": 4} if check.dry_run else {}
    cuda = check.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    result: dict[str, Any] = {"size": size, "training": [], "inference": {}}
    for batch in (1, 2) if check.dry_run else (4, 8):
        for mode in ("fp32", "bfloat16"):
            torch.manual_seed(0)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            nets = [
                n.to(check.device)
                for n in (
                    HarmonizationGenerator3D(**kw),
                    HarmonizationGenerator3D(**kw),
                    PatchDiscriminator3D(**dkw),
                    PatchDiscriminator3D(**dkw),
                )
            ]
            g_opt = torch.optim.Adam([*nets[0].parameters(), *nets[1].parameters()], lr=1e-4)
            d_opt = torch.optim.Adam([*nets[2].parameters(), *nets[3].parameters()], lr=1e-4)
            data = {"x": torch.rand(batch, 1, size, size, size), "y": torch.rand(batch, 1, size, size, size)}
            trainer = CycleGANTrainer(
                check.device, 1, [data], *nets, g_opt, d_opt, amp=mode != "fp32", amp_dtype="bfloat16"
            )
            trainer._iteration(trainer, data)  # warm-up (cuDNN autotuning, allocations)
            sync()
            steps, start = (1 if check.dry_run else 5), time.perf_counter()
            for _ in range(steps):
                trainer._iteration(trainer, data)
            sync()
            seconds = (time.perf_counter() - start) / steps
            result["training"].append(
                {
                    "batch": batch,
                    "precision": mode,
                    "steps_per_second": round(1 / seconds, 3),
                    "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
                }
            )
    net = HarmonizationGenerator3D(**kw).to(check.device).eval()
    x = torch.rand(1, 1, size, size, size, device=check.device)
    for mode in ("fp32", "bfloat16"):
        with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=mode != "fp32"):
            net(x)
            sync()
            repeats, start = (2 if check.dry_run else 20), time.perf_counter()
            for _ in range(repeats):
                net(x)
            sync()
        result["inference"][mode] = {"volumes_per_second": round(repeats / (time.perf_counter() - start), 2)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        default=os.environ.get("OUT", "gpu_check"),
        help="folder for the JSON and the runs (default: $OUT, else ./gpu_check)",
    )
    parser.add_argument("--dry-run", action="store_true", help="the same steps on the CPU at toy sizes")
    parser.add_argument("--only", default=None, help="comma-separated steps to run (default: all)")
    parser.add_argument("--break", dest="break_step", default=None, help=argparse.SUPPRESS)  # tests: a failing step
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    check = Check(out, args.dry_run, args.break_step)
    start = time.perf_counter()
    steps = {
        "environment": environment,
        "cyclegan_trainer": cyclegan_trainer,
        "conditional_gan_trainer": conditional_gan_trainer,
        "bundles": bundles,
        "torchrun_nccl": torchrun_nccl,
        "speed": speed,
    }
    chosen = args.only.split(",") if args.only else list(steps)
    unknown = sorted(set(chosen) - set(steps))
    if unknown:
        parser.error(f"--only: unknown steps {unknown}; the steps are {list(steps)}")
    for name in chosen:
        check.run(name, lambda fn=steps[name]: fn(check))
    failed = [name for name, record in check.steps.items() if record["status"] != "ok"]
    report = {
        "ok": not failed,
        "failed": failed,
        "seconds": round(time.perf_counter() - start, 1),
        "steps": check.steps,
    }
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"gpu check: {'ok' if not failed else 'FAILED: ' + ', '.join(failed)} in {report['seconds']} s -> "
        f"{out / 'gpu_check.json'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
