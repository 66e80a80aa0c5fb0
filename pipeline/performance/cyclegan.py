"""Speed of the CycleGAN on this machine: training steps, inference, and achieved FLOP rate.

    python -m pipeline.performance.cyclegan --out cyclegan_speed.json

Prints (and writes as JSON):

* seconds per full CycleGAN training step (both generators and discriminators, forward and
  backward, the paper's widths) at 32^3 and 64^3, batch 1 and 4, and the process's peak memory;
* generator inference volumes per second at 64^3 (batch 1, no gradients);
* the generator's multiply-accumulate count per 64^3 volume (counted by forward hooks on every
  convolution), the achieved GFLOP/s of inference (2 FLOP per MAC) and its fraction of the
  machine's fp32 matmul peak, measured here with a 2048x2048 matmul.

Random volumes are enough for speed: the cost does not depend on the values.

With ``--harmonizer models/model.pt --dataset DERIV`` it also measures mixed precision on real
harmonization outputs: the trained generator on the preprocessed images of its input site, fp32 against
``torch.autocast("cpu", dtype=torch.bfloat16)``, the in-mask MAE between the two outputs and the
speed-up; and, for the paper-size generator, whether channels_last_3d or ``torch.compile`` help fp32.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch
from torch import nn

from pipeline.engines.cyclegan import CycleGANTrainer
from pipeline.nets import HarmonizationGenerator3D, PatchDiscriminator3D

__all__ = [
    "count_macs",
    "matmul_peak_gflops",
    "time_training_step",
    "time_inference",
    "fp32_variants",
    "bf16_error",
    "main",
]


def count_macs(net: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass, summed over Conv3d and ConvTranspose3d layers."""
    total = 0

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        kernel = int(torch.tensor(module.kernel_size).prod())
        if isinstance(module, nn.ConvTranspose3d):  # every input voxel scatters into out_channels x kernel
            total += inputs[0].numel() * module.out_channels * kernel
        else:
            total += output.numel() * (module.in_channels // module.groups) * kernel

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]
    with torch.no_grad():
        net(torch.zeros(shape))
    for handle in handles:
        handle.remove()
    return total


def matmul_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def time_training_step(size: int, batch: int, steps: int = 2) -> float:
    """Median seconds of one CycleGAN iteration (after one warm-up step)."""
    torch.manual_seed(0)
    nets = [HarmonizationGenerator3D(), HarmonizationGenerator3D(), PatchDiscriminator3D(), PatchDiscriminator3D()]
    g_opt = torch.optim.Adam(list(nets[0].parameters()) + list(nets[1].parameters()), lr=1e-4)
    d_opt = torch.optim.Adam(list(nets[2].parameters()) + list(nets[3].parameters()), lr=1e-4)
    batchdata = {"x": torch.rand(batch, 1, size, size, size), "y": torch.rand(batch, 1, size, size, size)}
    trainer = CycleGANTrainer("cpu", 1, [batchdata], *nets, g_opt, d_opt)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        trainer._iteration(trainer, batchdata)
        times.append(time.perf_counter() - start)
    times = sorted(times[1:])
    return times[len(times) // 2]


def time_inference(size: int = 64, repeats: int = 5) -> float:
    """Seconds per volume of the paper-size generator, batch 1, no gradients."""
    net = HarmonizationGenerator3D().eval()
    x = torch.rand(1, 1, size, size, size)
    with torch.no_grad():
        net(x)
        start = time.perf_counter()
        for _ in range(repeats):
            net(x)
    return (time.perf_counter() - start) / repeats


def _seconds(net: nn.Module, x: torch.Tensor, *, bf16: bool = False, repeats: int = 5) -> float:
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        net(x)
        start = time.perf_counter()
        for _ in range(repeats):
            net(x)
    return (time.perf_counter() - start) / repeats


def fp32_variants(size: int = 64, repeats: int = 5) -> dict[str, float]:
    """Seconds per volume of the paper-size generator: fp32 as is (oneDNN convolutions), fp32 without oneDNN,
    fp32 with channels_last_3d, fp32 under ``torch.compile`` (after its warm-up), and bfloat16 autocast."""
    torch.manual_seed(0)
    net = HarmonizationGenerator3D().eval()
    x = torch.rand(1, 1, size, size, size)
    result = {"fp32": _seconds(net, x, repeats=repeats), "bf16_autocast": _seconds(net, x, bf16=True, repeats=repeats)}
    with torch.backends.mkldnn.flags(enabled=False):  # PyTorch's own kernels instead of oneDNN's
        result["fp32_without_onednn"] = _seconds(net, x, repeats=max(1, repeats // 2))
    last = HarmonizationGenerator3D().eval().to(memory_format=torch.channels_last_3d)
    last.load_state_dict(net.state_dict())
    result["fp32_channels_last_3d"] = _seconds(last, x.to(memory_format=torch.channels_last_3d), repeats=repeats)
    try:
        compiled = torch.compile(net)
        start = time.perf_counter()
        with torch.no_grad():
            compiled(x)
        result["fp32_compile_warmup"] = time.perf_counter() - start
        result["fp32_compile"] = _seconds(compiled, x, repeats=repeats)
    except Exception as exc:  # noqa: BLE001 - reported: torch.compile needs a C++ compiler on CPU
        result["fp32_compile_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}


def bf16_error(checkpoint: str | Path, dataset_dir: str | Path, *, limit: int = 20) -> dict:
    """fp32 against bfloat16 autocast on real harmonization outputs: the trained generator of ``checkpoint``
    (direction to_target) on up to ``limit`` preprocessed images of its input site (a many-to-one harmonizer's:
    of every site but its reference); in-mask MAE between the two outputs (images in [0, 1]) and seconds per
    volume of each."""
    import nibabel as nib
    import numpy as np

    from pipeline.harmonize import load_generator, read_harmonizer_info
    from pipeline.preprocess.batch import read_preprocessed

    net, info = load_generator(checkpoint, "to_target"), read_harmonizer_info(checkpoint)
    table = read_preprocessed(dataset_dir)
    if info.kind == "many_to_one":
        rows = table[table["site"] != info["reference_site"]].head(limit)
    else:
        rows = table[table["site"] == info["source_site"]].head(limit)
    errors, max_errors, fp32_s, bf16_s = [], [], [], []
    for _, row in rows.iterrows():
        x = torch.from_numpy(np.asarray(nib.load(row["image_cube"]).dataobj, dtype=np.float32))[None, None]
        mask = torch.from_numpy(np.asarray(nib.load(row["mask_cube"]).dataobj) > 0)[None, None]
        with torch.no_grad():
            start = time.perf_counter()
            exact = net(x)
            fp32_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                fast = net(x).float()
            bf16_s.append(time.perf_counter() - start)
        difference = (exact - fast).abs()[mask]
        errors.append(float(difference.mean()))
        max_errors.append(float(difference.max()))
    return {
        "checkpoint": str(checkpoint),
        "net_kwargs": dict(info["net_kwargs"]),
        "images": len(errors),
        "in_mask_mae_mean": float(np.mean(errors)),
        "in_mask_mae_max_image": float(np.max(errors)),
        "max_abs_voxel_error": float(np.max(max_errors)),
        "fp32_seconds_per_volume": float(np.median(fp32_s[1:] or fp32_s)),
        "bf16_seconds_per_volume": float(np.median(bf16_s[1:] or bf16_s)),
    }


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    parser.add_argument("--sizes", default="32,64", help="training cube sizes (default: %(default)s)")
    parser.add_argument("--batches", default="1,4", help="training batch sizes (default: %(default)s)")
    parser.add_argument(
        "--harmonizer", default=None, help="a trained models/model.pt: measure bfloat16 on real outputs"
    )
    parser.add_argument("--dataset", default=None, help="the preprocessed folder its input site's images come from")
    parser.add_argument("--skip-training", action="store_true", help="measure inference only")
    args = parser.parse_args(argv)
    result: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(), "training": []}
    for size in [] if args.skip_training else [int(s) for s in args.sizes.split(",")]:
        for batch in [int(b) for b in args.batches.split(",")]:
            seconds = time_training_step(size, batch)
            row = {
                "size": size,
                "batch": batch,
                "seconds_per_step": round(seconds, 3),
                "peak_rss_mb_so_far": round(_peak_mb()),
            }
            result["training"].append(row)
            print(
                f"train step {size}^3 batch {batch}: {seconds:.2f} s (peak RSS so far {row['peak_rss_mb_so_far']} MB)",
                flush=True,
            )
    macs = count_macs(HarmonizationGenerator3D(), (1, 1, 64, 64, 64))
    seconds = time_inference(64)
    peak = matmul_peak_gflops()
    achieved = 2 * macs / seconds / 1e9
    result["inference"] = {
        "size": 64,
        "seconds_per_volume": round(seconds, 3),
        "volumes_per_second": round(1 / seconds, 2),
        "generator_gmacs": round(macs / 1e9, 2),
        "achieved_gflops": round(achieved, 1),
        "matmul_peak_gflops": round(peak, 1),
        "fraction_of_peak": round(achieved / peak, 3),
    }
    variants = result["inference"]["variants"] = fp32_variants(64)
    print("generator 64^3 seconds/volume: " + ", ".join(f"{k} {v}" for k, v in variants.items()), flush=True)
    if args.harmonizer:
        if not args.dataset:
            parser.error("--harmonizer needs --dataset (the preprocessed folder of its input site)")
        error = result["bf16_on_real_outputs"] = bf16_error(args.harmonizer, args.dataset)
        print(
            f"bfloat16 vs fp32 on {error['images']} real images ({error['net_kwargs']}): in-mask MAE "
            f"{error['in_mask_mae_mean']:.2e} (worst image {error['in_mask_mae_max_image']:.2e}, worst voxel "
            f"{error['max_abs_voxel_error']:.2e}); {error['fp32_seconds_per_volume']:.3f} s -> "
            f"{error['bf16_seconds_per_volume']:.3f} s per volume",
            flush=True,
        )
    result["peak_rss_mb"] = round(_peak_mb())
    inf = result["inference"]
    print(
        f"generator inference 64^3: {inf['seconds_per_volume']} s/volume ({inf['volumes_per_second']} volumes/s); "
        f"{inf['generator_gmacs']} GMAC/volume -> {inf['achieved_gflops']} GFLOP/s = "
        f"{100 * inf['fraction_of_peak']:.0f}% of the fp32 matmul peak ({inf['matmul_peak_gflops']} GFLOP/s)"
    )
    print(f"peak RSS {result['peak_rss_mb']} MB")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
