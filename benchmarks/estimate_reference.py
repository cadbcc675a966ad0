"""Cost estimate of the ``reference`` profile on one GPU, without a GPU (issue 7 planning). Not a test.

Counts model FLOPs of every training and evaluation pass of the reference grid on the ``meta`` device
(``torch.utils.flop_counter.FlopCounterMode``, forward only; training = 3 x forward, the usual
fwd + grad-input + grad-weight rule, because the counter over-counts grouped-conv backward in torch
2.13) and the activation memory the autograd graph saves per sample (sizes of the tensors passed to
``saved_tensors_hooks``, fp32; bf16 autocast roughly halves it). From those and an assumed model FLOP
utilisation (MFU) against the GPU's dense bf16 peak, it prints GPU-minutes per phase of the grid:

* pre-training: ``profile.pretrain.steps`` x batch, for the four (model, objective) pairs (encoder only;
  the objectives' decoders are small next to it);
* fine-tuning: tasks x models x seeds x {pretrained, scratch, linear probe} x epochs x train cases
  (linear probe: forward only through the encoder), plus one validation pass per epoch and the test pass;
* the 2x2 control: swapped objectives on ``profile.control_tasks`` (pretrained + linear probe; the
  scratch baseline is reused).

Usage::

    python benchmarks/estimate_reference.py                 # H100, MFU 0.3
    python benchmarks/estimate_reference.py --mfu 0.2 --peak-tflops 989 --profile reference

The ProViCNet volume is D' 2.5D stacks of S x S pixels, each a ViT forward pass: at the reference grid
(D = 64 slices of 1 mm, stacks every 3rd slice as in ProViCNet's native 3 mm volumes, S = 448) one volume
costs 21 ViT-S/14 passes, which dominates the budget.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from transferlimits.config import get_profile
from transferlimits.data.tasks import get_task
from transferlimits.data.views import slice_centres
from transferlimits.models import build_encoder
from transferlimits.models.heads import build_task_model


def _inputs(model: str, profile, batch: int):
    d, h, w = profile.grid.shape
    if model == "profound":
        return (torch.empty(batch, 3, d, h, w),)
    s = profile.slice_size
    d = len(slice_centres(d, profile.provicnet_slice_step))  # stacks per volume
    pos = torch.zeros(batch, d, 2)
    return (torch.empty(batch, d, 3, s, s), pos)


def measure(model: str, task: str, profile) -> dict[str, float]:
    """Forward GFLOPs and saved-activation GiB of one volume through the task model (and encoder alone)."""
    with torch.device("meta"):
        enc = build_encoder(model, profile.encoder_sizes[model], **({"img_size": profile.slice_size}
                                                                     if model == "provicnet" else {}))
        net = build_task_model(model, enc, get_task(task), width=profile.finetune.decoder_width,
                               out_size=profile.grid.shape, slice_step=profile.provicnet_slice_step)
        inputs = _inputs(model, profile, 2)  # batch 2: BatchNorm needs > 1 value per channel in training
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(*inputs)
    flops_task = counter.get_total_flops()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        if model == "profound":
            enc.forward_features(inputs[0])
        else:
            b, d = inputs[0].shape[:2]
            enc.forward_features(inputs[0].reshape(b * d, *inputs[0].shape[2:]), inputs[1].reshape(b * d, 2))
    flops_enc = counter.get_total_flops()
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    net.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(*inputs)
        (out[0] if isinstance(out, tuple) else out).sum()
    return {"gflop_task": flops_task / 2e9, "gflop_encoder": flops_enc / 2e9, "act_gib": saved[0] / 2 / 2**30}


def estimate(profile_name: str, peak_tflops: float, mfu: float) -> dict:
    prof = get_profile(profile_name)
    rate = peak_tflops * 1e12 * mfu  # achieved FLOP/s
    sp = prof.splits
    rows, total = [], 0.0
    per = {(m, t): measure(m, t, prof) for m in prof.models for t in prof.tasks}
    for m in prof.models:
        enc_fwd = per[(m, prof.tasks[0])]["gflop_encoder"] * 1e9
        if m == "provicnet":  # pre-training samples are single 2.5D stacks, not volumes
            enc_fwd /= len(slice_centres(prof.grid.shape[0], prof.provicnet_slice_step))
        flops = 2 * prof.pretrain.steps * prof.pretrain.batch_size * 3 * enc_fwd  # native + swapped
        rows.append({"phase": f"pretrain {m} (2 objectives)", "pflop": flops / 1e15, "gpu_min": flops / rate / 60})
        total += flops
    for (m, t), r in per.items():
        task_f, enc_f = r["gflop_task"] * 1e9, r["gflop_encoder"] * 1e9
        epoch_train = sp.train * (3 * task_f) * 2 + sp.train * (task_f + 2 * (task_f - enc_f))  # pre+scr, probe
        epoch_eval = 3 * sp.val * task_f
        flops = len(prof.seeds) * (prof.finetune.epochs * (epoch_train + epoch_eval) + 3 * sp.test * task_f)
        if t in prof.control_tasks:  # swapped objective: pretrained + probe, scratch reused
            flops *= 1 + 2 / 3
        rows.append({"phase": f"finetune {t} / {m}", "pflop": flops / 1e15, "gpu_min": flops / rate / 60,
                     "gflop_per_volume": r["gflop_task"], "act_gib_per_volume_fp32": r["act_gib"]})
        total += flops
    return {"profile": profile_name, "peak_tflops": peak_tflops, "mfu": mfu, "rows": rows,
            "total_pflop": total / 1e15, "total_gpu_min": total / rate / 60}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="reference")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM: 989)")
    ap.add_argument("--mfu", type=float, default=0.3, help="assumed model FLOP utilisation (default 0.3)")
    ap.add_argument("--out", help="write the estimate as JSON here")
    args = ap.parse_args(argv)
    est = estimate(args.profile, args.peak_tflops, args.mfu)
    print(f"{'phase':42s} {'PFLOP':>9s} {'GPU-min':>8s} {'GFLOP/vol':>10s} {'act GiB/vol':>11s}")
    for r in est["rows"]:
        print(f"{r['phase']:42s} {r['pflop']:9.2f} {r['gpu_min']:8.2f} {r.get('gflop_per_volume', float('nan')):10.0f}"
              f" {r.get('act_gib_per_volume_fp32', float('nan')):11.2f}")
    print(f"{'total':42s} {est['total_pflop']:9.2f} {est['total_gpu_min']:8.2f}   "
          f"(peak {args.peak_tflops} TFLOP/s, MFU {args.mfu})")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(est, fh, indent=2)
    return est


if __name__ == "__main__":
    main()
