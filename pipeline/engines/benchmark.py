"""Speed of the CycleGAN on this machine: training steps, inference, and achieved FLOP rate.

    python -m pipeline.engines.benchmark --out cyclegan_speed.json

Prints (and writes as JSON):

* seconds per full CycleGAN training step (both generators and discriminators, forward and
  backward, the paper's widths) at 32^3 and 64^3, batch 1 and 4, and the process's peak memory;
* generator inference volumes per second at 64^3 (batch 1, no gradients);
* the generator's multiply-accumulate count per 64^3 volume (counted by forward hooks on every
  convolution), the achieved GFLOP/s of inference (2 FLOP per MAC) and its fraction of the
  machine's fp32 matmul peak, measured here with a 2048x2048 matmul.

Random volumes are enough: the cost does not depend on the values.
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

__all__ = ["count_macs", "matmul_peak_gflops", "time_training_step", "time_inference", "main"]


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


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    parser.add_argument("--sizes", default="32,64", help="training cube sizes (default: %(default)s)")
    parser.add_argument("--batches", default="1,4", help="training batch sizes (default: %(default)s)")
    args = parser.parse_args(argv)
    result: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(), "training": []}
    for size in [int(s) for s in args.sizes.split(",")]:
        for batch in [int(b) for b in args.batches.split(",")]:
            seconds = time_training_step(size, batch)
            row = {"size": size, "batch": batch, "seconds_per_step": round(seconds, 3),
                   "peak_rss_mb_so_far": round(_peak_mb())}
            result["training"].append(row)
            print(f"train step {size}^3 batch {batch}: {seconds:.2f} s (peak RSS so far {row['peak_rss_mb_so_far']} MB)",
                  flush=True)
    macs = count_macs(HarmonizationGenerator3D(), (1, 1, 64, 64, 64))
    seconds = time_inference(64)
    peak = matmul_peak_gflops()
    achieved = 2 * macs / seconds / 1e9
    result["inference"] = {"size": 64, "seconds_per_volume": round(seconds, 3), "volumes_per_second": round(1 / seconds, 2),
                           "generator_gmacs": round(macs / 1e9, 2), "achieved_gflops": round(achieved, 1),
                           "matmul_peak_gflops": round(peak, 1), "fraction_of_peak": round(achieved / peak, 3)}
    result["peak_rss_mb"] = round(_peak_mb())
    inf = result["inference"]
    print(f"generator inference 64^3: {inf['seconds_per_volume']} s/volume ({inf['volumes_per_second']} volumes/s); "
          f"{inf['generator_gmacs']} GMAC/volume -> {inf['achieved_gflops']} GFLOP/s = "
          f"{100 * inf['fraction_of_peak']:.0f}% of the fp32 matmul peak ({inf['matmul_peak_gflops']} GFLOP/s)")
    print(f"peak RSS {result['peak_rss_mb']} MB")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
