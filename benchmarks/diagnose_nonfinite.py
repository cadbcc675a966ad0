"""Where does a task model's forward first turn non-finite? (issue 27: ProFound's loss was NaN at step 0 on the GPU).

Pre-trains (or loads, ``--encoder``) one model's native encoder at a profile's sizes, builds each task model on it
as the grid does (:func:`transferlimits.training.finetune_setup.build_finetune_model`), and runs the forward of the
first training batch under each setting: fp32 or bf16 autocast (CUDA), and with or without the channels-last
stages of the recipe (bf16 on the CPU is CPU autocast, whose op lists differ from CUDA's). Forward hooks report the first module whose output holds NaN or Inf, with the largest
finite magnitude seen before it. Scratch (a fresh encoder) is run beside the pre-trained one.

Run: ``python benchmarks/diagnose_nonfinite.py --profile reference --model profound --pretrain-steps 60
--set grid.shape=[16,64,64] ... [--tasks classification,segmentation] [--out diag.json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import tempfile
import time

import torch

from transferlimits.config import get_profile
from transferlimits.data.cohort import build_cohort
from transferlimits.data.datasets import task_dataset
from transferlimits.models import get_model
from transferlimits.runner.overrides import parse_overrides
from transferlimits.runtime import resolve_device
from transferlimits.study.runs import scratch_encoder
from transferlimits.tasks import get_task
from transferlimits.training.engine import collate, to_device
from transferlimits.training.finetune_setup import build_finetune_model
from transferlimits.training.pretrain import pretrain
from transferlimits.training.pretrain_record import load_pretrained_encoder


def first_nonfinite(model: torch.nn.Module, forward) -> dict:
    """Run ``forward()`` with hooks on every module; the first module (in call order) whose output is not finite."""
    seen: list[tuple[str, float, bool]] = []
    hooks = []

    def hook(name):
        def fn(_module, _inputs, out):
            tensors = [out] if isinstance(out, torch.Tensor) else [t for t in getattr(out, "maps", []) or []]
            for t in tensors:
                if isinstance(t, torch.Tensor) and t.is_floating_point():
                    finite = bool(torch.isfinite(t).all())
                    big = float(t.detach().float().nan_to_num(0, 0, 0).abs().max()) if t.numel() else 0.0
                    seen.append((name, big, finite))
        return fn

    for name, module in model.named_modules():
        hooks.append(module.register_forward_hook(hook(name or "<model>")))
    try:
        with torch.no_grad():
            forward()
    finally:
        for h in hooks:
            h.remove()
    bad = next((i for i, s in enumerate(seen) if not s[2]), None)
    return {"first_nonfinite": None if bad is None else seen[bad][0],
            "max_abs_before": max((s[1] for s in seen[:bad]), default=0.0) if bad is not None else None,
            "max_abs_overall": max((s[1] for s in seen), default=0.0), "modules": len(seen)}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="reference")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--model", default="profound")
    ap.add_argument("--tasks", default="classification,segmentation,super_resolution")
    ap.add_argument("--pretrain-steps", type=int, default=60)
    ap.add_argument("--encoder", help="an encoder.pt to load instead of pre-training")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    prof = get_profile(args.profile, **parse_overrides(args.set, args.profile))
    dev = resolve_device(args.device)
    adapter = get_model(args.model)
    cohort = build_cohort(prof, workers=8, progress=False)
    if args.encoder:
        path = args.encoder
    else:
        short = get_profile(args.profile, **parse_overrides(
            args.set + [f"pretrain.steps={args.pretrain_steps}", f"pretrain.checkpoint_every={args.pretrain_steps}",
                        "pretrain.warmup_steps=5"], args.profile))
        t = time.time()
        res = pretrain(args.model, adapter.native_objective, short, device=dev, seed=0,
                       out_dir=tempfile.mkdtemp(prefix="diag_pretrain_"), progress=False)
        path = res.encoder_path
        print(f"[diag] pre-trained {args.model}/{adapter.native_objective} {args.pretrain_steps} steps in "
              f"{time.time() - t:.0f} s: {path}", flush=True)
    pre, _ = load_pretrained_encoder(path, dev)
    encoders = {"pretrained": pre, "scratch": scratch_encoder(prof, args.model, 0).to(dev)}
    rows = []
    for task in args.tasks.split(","):
        spec = get_task(task)
        recipe = prof.finetune_for(task)
        ds = task_dataset(cohort, task, "train", args.model, seed=0)
        batch = to_device(collate([ds[i] for i in range(max(2, recipe.batch_size))]), dev)
        x_finite = bool(torch.isfinite(batch["x"]).all())
        for init, enc in encoders.items():
            for cl in sorted({0, int(recipe.channels_last_stages)}):
                torch.manual_seed(0)
                model = build_finetune_model(spec, args.model, enc, "pretrained",
                                             dataclasses.replace(recipe, channels_last_stages=cl), ds).to(dev).train()
                for precision in ("fp32", "bf16"):  # bf16: autocast on the device (CPU autocast on the CPU)
                    ctx = (torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if precision == "bf16"
                           else contextlib.nullcontext())

                    def forward(model=model, ctx=ctx):
                        with ctx:
                            return model(batch["x"], batch.get("pos"))

                    row = {"task": task, "init": init, "channels_last_stages": cl, "precision": precision,
                           "input_finite": x_finite, **first_nonfinite(model, forward)}
                    rows.append(row)
                    print(f"[diag] {task:22s} {init:10s} cl={cl} {precision}: first non-finite "
                          f"{row['first_nonfinite']} (max |x| before {row['max_abs_before']}, overall "
                          f"{row['max_abs_overall']:.3g})", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=2)
    return rows


if __name__ == "__main__":
    main()
