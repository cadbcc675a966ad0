"""Forward / forward+backward throughput of the two reference-size encoders, with model FLOPs and MFU.

Encoders: ``profound`` ConvNeXt-V2-Tiny 3D on [B, 3, 64, 224, 224] (B = 1) and ``provicnet`` ViT-S/14
with registers at 448 px on [B, 3, 448, 448] (B = 3, one 2.5D stack of 3 slices each). FLOPs are counted
once per configuration with ``torch.utils.flop_counter.FlopCounterMode`` on the ``meta`` device (matmuls
and convolutions, 2 FLOPs per multiply-add); the backward pass is the gradient of ``mean(pooled^2)``.
Forward+backward model FLOPs are taken as 3 x forward (grad-input and grad-weight each cost one
forward): in torch 2.13 ``FlopCounterMode`` over-counts the backward of grouped (depthwise)
convolutions by ~C x (grad-input is counted as a dense convolution), so its raw fwd+bwd count for the
3D ConvNeXt is wrong by an order of magnitude; it is printed as ``counter_gflops_raw`` for reference.

Usage::

    python benchmarks/bench_encoders.py                         # CPU, fp32, few iterations
    python benchmarks/bench_encoders.py --device cuda           # bf16 autocast, channels-last-3d, MFU
    python benchmarks/bench_encoders.py --device cuda --peak-tflops 989 --iters 20

MFU = achieved model FLOP/s / ``--peak-tflops`` (default 989 = H100 SXM dense bf16). Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from transferlimits.models import build_encoder


def make_case(name: str, device: torch.device, batch: int | None):
    """(encoder, inputs tuple, batch size) of the reference configuration of ``name``."""
    if name == "profound":
        b = batch or 1
        enc = build_encoder("profound", "tiny")
        x = torch.randn(b, 3, 64, 224, 224, device="meta" if device.type == "meta" else "cpu")
        if device.type == "cuda":
            enc = enc.to(memory_format=torch.channels_last_3d)
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return enc.to(device), (x.to(device),), b
    b = batch or 3
    try:
        enc = build_encoder("provicnet", "vits14", img_size=448)
    except ImportError as err:  # models/vit.py is written separately
        raise SystemExit(f"provicnet encoder unavailable ({err}); run with --models profound") from err
    pos = torch.stack([torch.arange(b, dtype=torch.float32), torch.full((b,), 24.0)], dim=1)
    return enc.to(device), (torch.randn(b, 3, 448, 448, device="meta" if device.type == "meta" else "cpu").to(device),
                            pos.to(device)), b


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _step(enc, inputs, device, bf16: bool, backward: bool) -> None:
    with _autocast(device, bf16):
        pooled = enc.forward_features(*inputs).pooled
    if backward:
        pooled.float().pow(2).mean().backward()


def count_flops(name: str, batch: int | None, backward: bool) -> int:
    """FlopCounterMode count of one step (forward, or forward + backward) on the ``meta`` device."""
    meta = torch.device("meta")
    with meta:
        enc, inputs, _ = make_case(name, meta, batch)
    counter = FlopCounterMode(display=False)
    ctx = contextlib.nullcontext() if backward else torch.no_grad()
    with ctx, counter:
        _step(enc, inputs, meta, False, backward)
    return int(counter.get_total_flops())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(enc, inputs, device, bf16: bool, backward: bool, warmup: int, iters: int) -> float:
    """Mean seconds per step after ``warmup`` untimed steps."""
    ctx = contextlib.nullcontext() if backward else torch.no_grad()
    with ctx:
        for _ in range(warmup):
            _step(enc, inputs, device, bf16, backward)
        _sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            _step(enc, inputs, device, bf16, backward)
            if backward:
                enc.zero_grad(set_to_none=True)
        _sync(device)
    return (time.perf_counter() - start) / iters


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    ap.add_argument("--models", nargs="+", default=["profound", "provicnet"], choices=["profound", "provicnet"])
    ap.add_argument("--iters", type=int, default=None, help="timed steps (default 2 on cpu, 20 on cuda)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps (default 1 on cpu, 5 on cuda)")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default profound 1, provicnet 3)")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="peak TFLOP/s for MFU (default 989)")
    ap.add_argument("--fp32", action="store_true", help="disable bf16 autocast on cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16 = device.type == "cuda" and not args.fp32
    iters = args.iters or (20 if device.type == "cuda" else 2)
    warmup = args.warmup if args.warmup is not None else (5 if device.type == "cuda" else 1)
    print(f"device={device} bf16={bf16} iters={iters} warmup={warmup} threads={torch.get_num_threads()}")
    results = []
    for name in args.models:
        torch.manual_seed(0)
        enc, inputs, b = make_case(name, device, args.batch)
        enc.train()
        n_params = sum(p.numel() for p in enc.parameters())
        fwd_flops = count_flops(name, args.batch, backward=False)
        for backward in (False, True):
            flops = 3 * fwd_flops if backward else fwd_flops
            sec = time_steps(enc, inputs, device, bf16, backward, warmup, iters)
            row = {
                "model": name, "pass": "fwd+bwd" if backward else "fwd", "batch": b,
                "input": [list(t.shape) for t in inputs], "params_M": round(n_params / 1e6, 2),
                "gflops_per_step": round(flops / 1e9, 1),
                "counter_gflops_raw": round(count_flops(name, args.batch, backward) / 1e9, 1),
                "sec_per_step": round(sec, 4),
                "samples_per_s": round(b / sec, 3), "achieved_tflops": round(flops / sec / 1e12, 4),
            }
            if device.type == "cuda":
                row["mfu"] = round(flops / sec / 1e12 / args.peak_tflops, 4)
            print(json.dumps(row))
            results.append(row)
        del enc, inputs
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": str(device), "bf16": bf16, "results": results}, fh, indent=2)
    return results


if __name__ == "__main__":
    main()
