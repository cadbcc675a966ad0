"""Throughput calibration before a grid: achieved TFLOP/s and MFU of each training loop at a profile's sizes.

Issue 15's GPU command starts with this (``scripts/reference_on_gpu.sh``): in about ``--seconds`` it measures
the device's practical matmul peak (a large bf16 GEMM on CUDA, fp32 on CPU) and then times one training step
of each loop the grid runs, at the profile's own sizes and batch sizes:

* ``pretrain <model>``: the encoder alone, forward + backward, ``pretrain.batch_size`` samples (a ProViCNet
  sample is one 2.5D stack, a ProFound sample one 3D crop);
* ``finetune <model>``: the segmentation task model (encoder + dense head, the heaviest head), forward +
  backward, ``finetune.batch_size`` volumes.

Model FLOPs of a step = 3 x the forward's (``FlopCounterMode``; the rule of ``bench_training.py``), under bf16
autocast on CUDA as the training engine runs (``transferlimits.training.autocast_context``). MFU is printed
against the measured peak and, with ``--peak-tflops``, against the vendor's dense bf16 peak. ``--set`` takes the
runner's profile overrides, so the CPU rehearsal calibrates the same profile shrunk to tiny sizes.

Run: ``python benchmarks/calibrate_gpu.py --profile reference [--seconds 60] [--peak-tflops 989] [--out F.json]``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable

import torch

from bench_training import step_flops
from estimate_reference import _inputs
from transferlimits.config import get_profile
from transferlimits.models import get_model
from transferlimits.models.heads import build_task_model
from transferlimits.runner.overrides import parse_overrides
from transferlimits.runtime import resolve_device
from transferlimits.tasks import get_task
from transferlimits.training import autocast_context


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, seconds: float) -> float:
    """Best achieved TFLOP/s of an n x n x n matmul (bf16 on CUDA, fp32 on CPU) within ``seconds``."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    best, t_end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e12


def _loss(out) -> torch.Tensor:
    if isinstance(out, tuple):
        out = out[0]
    if hasattr(out, "maps"):
        return sum(m.float().mean() for m in out.maps)
    if hasattr(out, "tokens"):
        return out.tokens.float().mean() + out.pooled.float().mean()
    return out.float().mean()


def loops(profile, device: torch.device) -> dict[str, tuple[torch.nn.Module, Callable[[], object]]]:
    """``{loop name: (model, forward)}`` for the pre-training and fine-tuning loops of every model."""
    out = {}
    for name in profile.models:
        adapter = get_model(name)
        torch.manual_seed(0)
        enc = adapter.encoder_for_profile(profile).to(device)
        x = tuple(t.to(device) for t in _inputs(name, profile, profile.pretrain.batch_size))
        if x[0].ndim == 5 and len(x) == 2:  # 2.5D volume -> a batch of single stacks, as pre-training draws them
            x = (x[0][:, 0], x[1][:, 0])
        out[f"pretrain {name}"] = (enc, lambda enc=enc, x=x: enc.forward_features(*x))
        recipe = profile.finetune_for("segmentation")
        net = build_task_model(name, adapter.encoder_for_profile(profile), get_task("segmentation"),
                               width=recipe.decoder_width, out_size=profile.grid.shape,
                               slice_step=profile.provicnet_slice_step, full_res=recipe.full_res_skip,
                               residual=recipe.residual, light=recipe.light_decoder).to(device)
        v = tuple(t.to(device) for t in _inputs(name, profile, max(2, recipe.batch_size)))
        out[f"finetune {name}"] = (net, lambda net=net, v=v: net(*v))
    return out


def calibrate(profile, device: torch.device, seconds: float, peak_tflops: float | None,
              peak: float | None = None) -> dict:
    """Measure the peak (unless given), then each loop for an equal share of ``seconds``; prints and returns the rows."""
    if peak is None:
        peak = matmul_peak(device, min(5.0, seconds / 6))
        seconds -= min(5.0, seconds / 6)
    print(f"[calibrate] {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}): "
          f"matmul peak {peak:.1f} TFLOP/s measured" + (f", nominal {peak_tflops}" if peak_tflops else ""), flush=True)
    todo = loops(profile, device)
    share = max(1.0, seconds / max(1, len(todo)))
    rows = []
    for name, (model, forward) in todo.items():
        model.train()
        flops = step_flops(forward)
        times, t_end = [], time.perf_counter() + share
        while time.perf_counter() < t_end or len(times) < 2:
            t0 = time.perf_counter()
            model.zero_grad(set_to_none=True)
            with autocast_context(device):
                loss = _loss(forward())
            loss.backward()
            sync(device)
            times.append(time.perf_counter() - t0)
        sec = sorted(times[1:])[len(times[1:]) // 2]  # the first step is warm-up
        tflops = flops / sec / 1e12
        row = {"loop": name, "gflop_per_step": flops / 1e9, "s_per_step": sec, "steps": len(times),
               "tflops": tflops, "mfu_measured_peak": tflops / peak,
               "mfu_nominal_peak": tflops / peak_tflops if peak_tflops else None}
        rows.append(row)
        print(f"[calibrate] {name:22s} {row['gflop_per_step']:10.1f} GFLOP/step {sec:8.4f} s/step {tflops:8.2f} TFLOP/s "
              f"MFU {100 * row['mfu_measured_peak']:5.1f} % of measured peak"
              + (f", {100 * row['mfu_nominal_peak']:5.1f} % of nominal" if peak_tflops else ""), flush=True)
    return {"profile": profile.name, "device": str(device), "peak_tflops_measured": peak,
            "peak_tflops_nominal": peak_tflops, "loops": rows}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="reference", help="study profile (default: reference)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="profile override (as `run --set`)")
    ap.add_argument("--seconds", type=float, default=60.0, help="time budget of the whole calibration (default 60)")
    ap.add_argument("--device", default="auto", help="torch device (default: cuda when present, else cpu)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="vendor dense bf16 peak, e.g. 989 (H100/H200)")
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args(argv)
    profile = get_profile(args.profile, **parse_overrides(args.set, args.profile))
    result = calibrate(profile, resolve_device(args.device), args.seconds, args.peak_tflops)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
