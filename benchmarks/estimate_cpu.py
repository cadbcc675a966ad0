"""Project the ``cpu`` profile's whole-grid wall time on this machine from measured steps, and check pair activity.

Measures, at the ``cpu`` profile's sizes and with one thread per job (the runner runs one job per core):

* one pre-training step of each (model, objective) pair (random inputs and 4-class labels of the grid's shape);
* one fine-tuning step and one evaluation batch of each model, for a dense task (full-resolution head), the
  classification head, and the linear probe (frozen encoder);
* phantom synthesis of one case.

It then projects the grid - cohort, the four pre-trainings, 5 tasks x 2 models x 3 inits x seeds, the 2x2 control
(pretrained + linear probe; the scratch run is shared), measurements, and a fixed per-notebook overhead - as core
seconds, and as wall time on ``--cores`` cores assuming the runner keeps them busy. With a built cohort
(``python -m transferlimits data --profile cpu``) it also reports, for both backbones, the fraction of simulated
pre-training steps whose batch holds at least one positive pair under the profile's mining rules
(``contrastive_active_fraction``; :func:`transferlimits.models.pair_mining.balanced_pair_count`).
Every timing is printed with the CPU model and the load average, read from the machine.

Run: ``.venv/bin/python benchmarks/estimate_cpu.py [--cores 2] [--notebook-s 10] [--measure-s 12]``.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from bench_training import cpu_model, load
from transferlimits.config import GridSpec, get_profile
from transferlimits.models.heads import build_task_model
from transferlimits.models.pair_mining import balanced_pair_count, cancer_cell_counts
from transferlimits.models.registry import encoder_for_profile, get_model
from transferlimits.tasks import get_kind, get_task
from transferlimits.training.engine import collate  # noqa: F401  (the engine the real runs use)


def timed(fn: Callable[[], None], repeats: int = 3) -> float:
    """Median seconds of ``fn`` after one warm-up call."""
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return sorted(out)[len(out) // 2]


def batch_x(model: str, prof, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random task inputs of ``n`` cases in the model's view: [n, 3, D, H, W] or [n, D, 3, S, S] + pos."""
    d, h, w = prof.grid.shape
    if get_model(model).input_kind == "volume":
        return torch.randn(n, 3, d, h, w), None
    s = prof.slice_size
    pos = torch.stack([torch.arange(d, dtype=torch.float32).expand(n, d), torch.full((n, d), float(d))], -1)
    return torch.randn(n, d, 3, s, s), pos


def finetune_times(model: str, task: str, prof, probe: bool = False) -> tuple[float, float]:
    """(seconds of one training step, seconds of one evaluation batch) of ``model`` on ``task``."""
    torch.manual_seed(0)
    spec, rec = get_task(task), prof.finetune_for(task)
    enc = encoder_for_profile(model, prof)
    if rec.channels_last_stages and hasattr(enc, "channels_last_stages"):
        enc.channels_last_stages = rec.channels_last_stages
    dense = get_kind(spec.kind).dense
    net = build_task_model(model, enc, spec, width=rec.decoder_width, out_size=prof.grid.shape if dense else None,
                           full_res=rec.full_res_skip, residual=rec.residual, light=rec.light_decoder)
    if probe:
        net.encoder.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    x, pos = batch_x(model, prof, rec.batch_size)

    def step() -> None:
        net.train()
        out = net(x, pos)
        out = out[0] if isinstance(out, tuple) else out
        opt.zero_grad(set_to_none=True)
        out.float().pow(2).mean().backward()
        opt.step()

    def evaluate() -> None:
        net.eval()
        with torch.no_grad():
            net(x, pos)

    return timed(step), timed(evaluate)


def pretrain_time(model: str, objective: str, prof) -> float:
    """Seconds of one pre-training step of (model, objective) at the profile's batch size."""
    torch.manual_seed(0)
    adapter = get_model(model)
    obj = adapter.build_objective(objective, encoder_for_profile(model, prof), prof)
    opt = torch.optim.AdamW([p for p in obj.parameters() if p.requires_grad], lr=1e-4)
    b, (d, h, w), s = prof.pretrain.batch_size, prof.grid.shape, prof.slice_size
    if adapter.pretrain_ndim == 5:
        args = [torch.randn(b, 3, d, h, w)]
        labels = torch.randint(0, 4, (b, d, h, w))
    else:
        args = [torch.randn(b, 3, s, s), torch.rand(b, 2)]
        labels = torch.randint(0, 4, (b, s, s))
    takes_labels = objective == "contrastive"

    def step() -> None:
        out = obj(*args, labels) if takes_labels else obj(*args)
        loss = out[0] if isinstance(out, tuple) else out
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return timed(step, repeats=2)


def phantom_seconds(prof, n: int = 3) -> float:
    """Seconds to synthesise one phantom on the profile grid."""
    from transferlimits.data.geometry import load_geometry_pack
    from transferlimits.data.phantom import synthesize

    pack = load_geometry_pack()
    grid = GridSpec(prof.grid.shape, prof.grid.spacing)
    t0 = time.perf_counter()
    for cid in pack.case_ids[:n]:
        synthesize(pack.case(cid), grid, 0)
    return (time.perf_counter() - t0) / n


def active_fraction(model: str, prof, steps: int = 400, seed: int = 0) -> tuple[float, float]:
    """(fraction of simulated pre-training steps with >= 1 positive pair, fraction of items with one).

    Batches of ``prof.pretrain.batch_size`` items are drawn uniformly from the built cohort's pre-training pool
    (ProViCNet: 2.5D stacks with labels nearest-resized to the head's 8h x 8w output and 8 x 8 cells; ProFound:
    whole crops with stride-4 cells, the ``pair_stage=0`` grid), with the profile's anchor and negative rules.
    """
    from transferlimits.data.cohort import open_cohort, pretrain_dataset

    ds = pretrain_dataset(open_cohort(prof), model, include_real=False)
    rec = prof.pretrain
    active = np.zeros(len(ds), bool)
    for i in range(len(ds)):
        lab = torch.as_tensor(ds[i]["labels"]).long()
        if lab.ndim == 2:  # ViT: labels on the head output (8x the token grid), 8 x 8 cells
            side = 8 * (prof.slice_size // 14)
            lab = F.interpolate(lab[None, None].float(), size=(side, side), mode="nearest")[0, 0].long()
            cell: int | tuple[int, ...] = 8
        else:
            cell = 4
        counts = cancer_cell_counts(lab, cell)
        voxels = int(np.prod([cell] * lab.ndim))
        active[i] = balanced_pair_count(counts, voxels, rec.anchor_frac, rec.neg_frac) > 0
    rng = np.random.default_rng(seed)
    hits = [active[rng.integers(0, len(ds), rec.batch_size)].any() for _ in range(steps)]
    return float(np.mean(hits)), float(active.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--cores", type=int, default=2, help="jobs running at once (one thread each)")
    parser.add_argument("--notebook-s", type=float, default=10.0, help="fixed cost per notebook (kernel, imports)")
    parser.add_argument("--measure-s", type=float, default=12.0, help="measurement seconds per point (MMD, CKA ...)")
    parser.add_argument("--no-pairs", action="store_true", help="skip the contrastive pair activity (needs a cohort)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    prof = get_profile(args.profile)
    print(f"CPU: {cpu_model()} | {os.cpu_count()} logical CPUs | 1 thread per job | {load()}")
    sp = prof.splits
    n_seeds, n_ctrl = len(prof.seeds), len(prof.control_tasks)
    pre_s = 0.0
    for model in prof.models:
        for objective in get_model(model).objectives:
            t = pretrain_time(model, objective, prof)
            pre_s += t * prof.pretrain.steps
            print(f"pretrain {model}/{objective}: {t:.3f} s/step x {prof.pretrain.steps} = "
                  f"{t * prof.pretrain.steps:.0f} s   [{load()}]", flush=True)
    ft_s, n_runs = 0.0, 0
    for model in prof.models:
        for task in prof.tasks:
            rec = prof.finetune_for(task)  # the task's recipe (batch, epochs)
            steps_ep = math.ceil(sp.train / rec.batch_size)
            eval_b, test_b = math.ceil(sp.val / rec.batch_size), math.ceil(sp.test / rec.batch_size)
            (st, ev), (pst, _) = finetune_times(model, task, prof), finetune_times(model, task, prof, probe=True)
            one = rec.epochs * (steps_ep * st + eval_b * ev) + test_b * ev
            probe = rec.epochs * (steps_ep * pst + eval_b * ev) + test_b * ev
            ctrl = n_ctrl and task in prof.control_tasks
            runs_s = n_seeds * (2 * one + probe) + (one + probe if ctrl else 0.0)
            n_runs += 3 * n_seeds + (2 if ctrl else 0)
            ft_s += runs_s
            print(f"finetune {model}/{task}: step {st:.3f} s, probe step {pst:.3f} s, eval batch {ev:.3f} s -> "
                  f"one run {one:.0f} s, all runs {runs_s:.0f} s   [{load()}]", flush=True)
    n_points = len(prof.models) * (len(prof.tasks) * n_seeds + n_ctrl)
    n_notebooks = n_points + len(prof.models) * 2 + 3  # points, pre-trainings, data/alignment/summary
    phantom = phantom_seconds(prof) * (sp.pretrain + sp.train + sp.val + sp.test)
    parts = {"cohort": phantom, "pre-training": pre_s, "fine-tuning": ft_s,
             "measurement": args.measure_s * n_points, "notebook overhead": args.notebook_s * n_notebooks}
    total = sum(parts.values())
    print(f"\nprojection for profile {prof.name!r}: {n_runs} fine-tuning runs, {n_points} points, {n_notebooks} "
          f"notebooks; {args.cores} job(s) at a time")
    for name, sec in parts.items():
        print(f"  {name:18s} {sec:8.0f} core-s  ({100 * sec / total:4.1f} %)")
    print(f"  {'total':18s} {total:8.0f} core-s = {total / args.cores / 60:.1f} min wall on {args.cores} cores "
          f"(perfect packing; pre-trainings are 4 jobs, so at most {len(prof.models) * 2} in parallel)")
    if not args.no_pairs:
        for model in prof.models:
            try:
                frac, item = active_fraction(model, prof)
            except ValueError as err:  # no cohort built
                print(f"pairs {model}: skipped ({err})")
                continue
            print(f"pairs {model}: {100 * frac:.0f} % of simulated steps active ({100 * item:.1f} % of items have a "
                  f"positive pair; anchor_frac {prof.pretrain.anchor_frac:.3f}, batch {prof.pretrain.batch_size})")


if __name__ == "__main__":
    main()
