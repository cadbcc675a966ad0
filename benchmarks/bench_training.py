"""Training-step throughput of both encoders on this CPU: achieved GFLOP/s and fraction of the fp32 matmul peak.

For each case the script times forward + backward of the encoder (sum of its stage maps as the loss), counts the
model FLOPs of one step as 3 x the forward's (``torch.utils.flop_counter.FlopCounterMode`` on the forward;
grad-input and grad-weight each cost one forward, the rule ``bench_encoders.py`` and ``estimate_reference.py``
use), and prints GFLOP/s and the fraction of the peak it measured itself with a large sgemm. The counter's own
forward + backward count is not used: in torch 2.13 it counts the weight gradient of a grouped (depthwise)
convolution as a dense one, C times too many FLOPs, which put a ConvNeXt step above this CPU's peak. ProFound runs before
(default layout) and after the optimisation this project applies (``channels_last_stages=2``: stem and stages
1-2 in ``channels_last_3d``); its outputs are checked to agree within fp32 rounding. The CPU model and the load
are read from the machine (``/proc/cpuinfo``, ``os.getloadavg``), never typed.

Run: ``.venv/bin/python benchmarks/bench_training.py [--threads 2] [--skip-tiny] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from transferlimits.config import get_profile
from transferlimits.models.convnext3d import build_profound
from transferlimits.models.vit import build_provicnet
from transferlimits.runner.machine_peak import sgemm_peak_gflops


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load() -> str:
    """The 1/5/15-minute load averages (other jobs on a shared machine slow every timing)."""
    return "load %.2f %.2f %.2f" % os.getloadavg()


def sgemm_peak(n: int = 2048, repeats: int = 10) -> float:
    """Best achieved fp32 GFLOP/s of an n x n x n matmul at the current thread count (the practical peak)."""
    return sgemm_peak_gflops(threads=None, n=n, repeats=repeats)


def step_flops(forward: Callable[[], object]) -> float:
    """Model FLOPs of one training step: 3 x the forward's FlopCounterMode count (module doc)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward()
    return 3.0 * float(counter.get_total_flops())


def time_step(step: Callable[[], None], repeats: int) -> float:
    """Median seconds of ``step`` after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def convnext_step(size: str, shape: tuple[int, ...], channels_last: int) -> tuple[Callable[[], None], Callable[[], object]]:
    """(forward + backward, forward) of a ProFound encoder on random input of ``shape``."""
    torch.manual_seed(0)
    model = build_profound(size, channels_last_stages=channels_last)
    x = torch.randn(*shape)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        sum(m.float().mean() for m in model.forward_features(x).maps).backward()

    return step, lambda: model.forward_features(x)


def vit_step(size: str, img: int, n_slices: int) -> tuple[Callable[[], None], Callable[[], object]]:
    """(forward + backward, forward) of a ProViCNet encoder on ``n_slices`` random 2.5D stacks of ``img`` px."""
    torch.manual_seed(0)
    model = build_provicnet(size, img_size=img)
    x, pos = torch.randn(n_slices, 3, img, img), torch.rand(n_slices, 2)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        out = model.forward_features(x, pos)
        (out.tokens.mean() + out.pooled.mean()).backward()

    return step, lambda: model.forward_features(x, pos)


def same_outputs(size: str, shape: tuple[int, ...], channels_last: int) -> float:
    """Max abs difference of the stage maps between the default layout and ``channels_last`` stages."""
    torch.manual_seed(0)
    a = build_profound(size).eval()
    b = build_profound(size, channels_last_stages=channels_last).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(*shape)
    with torch.no_grad():
        return max(float((p - q).abs().max()) for p, q in zip(a.forward_features(x).maps, b.forward_features(x).maps))


def report(name: str, case: tuple[Callable[[], None], Callable[[], object]], peak: float, repeats: int) -> float:
    """Print one row for a (step, forward) case; returns the step seconds."""
    step, forward = case
    flops = step_flops(forward)
    sec = time_step(step, repeats)
    gflops = flops / sec / 1e9
    print(f"{name:58s} {flops / 1e9:9.2f} GFLOP {sec:8.3f} s {gflops:8.1f} GFLOP/s {100 * gflops / peak:5.1f} % "
          f"of peak   [{load()}]", flush=True)
    return sec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per case (median)")
    parser.add_argument("--skip-tiny", action="store_true", help="skip ConvNeXt-V2-Tiny-3D on 1x3x32x128x128")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prof = get_profile("cpu")
    peak = sgemm_peak()
    print(f"CPU: {cpu_model()} | {os.cpu_count()} logical CPUs | torch {torch.__version__} | {args.threads} "
          f"thread(s) | sgemm peak {peak:.1f} GFLOP/s fp32 | {load()}")
    d, h, w = prof.grid.shape
    bs, slices = prof.finetune.batch_size, prof.finetune.batch_size * d
    cases = [(f"profound/{prof.encoder_sizes['profound']}", prof.encoder_sizes["profound"], (bs, 3, d, h, w))]
    if not args.skip_tiny:
        cases.append(("profound/tiny (ConvNeXt-V2-Tiny-3D)", "tiny", (1, 3, 32, 128, 128)))
    n_cl = prof.finetune.channels_last_stages or 2
    for label, size, shape in cases:
        before = report(f"{label} {shape} default layout", convnext_step(size, shape, 0), peak, args.repeats)
        after = report(f"{label} {shape} channels_last_stages={n_cl}", convnext_step(size, shape, n_cl), peak,
                       args.repeats)
        diff = same_outputs(size, (1,) + shape[1:], n_cl)
        print(f"  -> speed-up {before / after:.2f}x; max |stage map difference| {diff:.2e} (fp32 rounding)")
    report(f"provicnet/{prof.encoder_sizes['provicnet']} {slices}x3x{prof.slice_size}x{prof.slice_size}",
           vit_step(prof.encoder_sizes["provicnet"], prof.slice_size, slices), peak, args.repeats)
    if not args.skip_tiny:
        report("provicnet/vits14 8x3x448x448", vit_step("vits14", 448, 8), peak, args.repeats)
    again = sgemm_peak()
    print(f"sgemm peak re-measured at the end: {again:.1f} GFLOP/s ({load()}); fractions above use "
          f"{peak:.1f}. On a shared machine the peak and every step time are lower bounds: rerun on an idle one.")


if __name__ == "__main__":
    main()
