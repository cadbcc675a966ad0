"""Benchmark of :func:`transferlimits.metrics.mmd.mmd2_test` against a plain NumPy reference.

The reference is written independently here: it builds the pooled Gaussian kernel matrix once
(O(N²) memory) and, per permutation, re-indexes it and recomputes the unbiased statistic from the
three block sums (O(N²) work and a fresh N×N copy per permutation), which is what a straightforward
implementation (and alibi-detect's ``MMDDrift``) does. When that is too slow for all permutations it is
timed on ``--ref-permutations`` and extrapolated linearly (the per-permutation cost is constant).

Peak memory of ``mmd2_test`` at a large n is measured in a fresh subprocess with
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (resident set, includes the interpreter, torch and the
input arrays); a baseline subprocess that only imports and builds the inputs is reported beside it.

Usage::

    python benchmarks/bench_mmd.py --out results/bench_mmd.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def reference_mmd2_test(x: np.ndarray, y: np.ndarray, n_permutations: int, seed: int = 0) -> tuple[float, float]:
    """Plain NumPy permutation test: median σ, kernel once, statistic recomputed per permutation."""
    z = np.concatenate([x, y])
    n, total = len(x), len(z)
    sq = (z * z).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    sigma = np.median(np.sqrt(d2[np.triu_indices(total, 1)]))
    kern = np.exp(-d2 / (2.0 * sigma**2))
    np.fill_diagonal(kern, 0.0)

    def stat(idx: np.ndarray) -> float:
        k = kern[np.ix_(idx, idx)]
        m = total - n
        kxx, kyy, kxy = k[:n, :n].sum(), k[n:, n:].sum(), k[:n, n:].sum()
        return kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2.0 * kxy / (n * m)

    rng = np.random.default_rng(seed)
    observed = stat(np.arange(total))
    null = np.array([stat(rng.permutation(total)) for _ in range(n_permutations)])
    return observed, (1 + (null >= observed).sum()) / (1 + n_permutations)


def make_data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 0.05


_MEM_SCRIPT = """
import resource, sys, time, json
import numpy as np, torch
torch.set_num_threads({threads})
sys.path.insert(0, {bench_dir!r})
from bench_mmd import make_data
x, y = make_data({n}, {d})
out = {{"ru_maxrss_mib": None}}
if {run}:
    from transferlimits.metrics.mmd import mmd2_test
    t0 = time.perf_counter()
    r = mmd2_test(x, y, n_permutations={perms}, block_size={block})
    out.update(seconds=time.perf_counter() - t0, statistic=r.statistic, p_value=r.p_value)
out["ru_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def peak_memory(n: int, d: int, perms: int, block: int, threads: int, run: bool) -> dict:
    from pathlib import Path

    code = _MEM_SCRIPT.format(
        n=n, d=d, perms=perms, block=block, threads=threads, run=run, bench_dir=str(Path(__file__).parent)
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="samples per side (default 2000)")
    ap.add_argument("--d", type=int, default=768, help="feature dimension (default 768)")
    ap.add_argument("--permutations", type=int, default=1000)
    ap.add_argument("--ref-permutations", type=int, default=50, help="permutations timed for the reference")
    ap.add_argument("--mem-n", type=int, default=20000, help="samples per side for the memory run")
    ap.add_argument("--mem-permutations", type=int, default=100)
    ap.add_argument("--mem-block", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="torch device for mmd2_test (default cpu)")
    ap.add_argument("--out", required=True, help="JSON file for the results")
    args = ap.parse_args(argv)

    import torch

    from transferlimits.metrics.mmd import mmd2_test

    torch.set_num_threads(args.threads)
    x, y = make_data(args.n, args.d)
    mmd2_test(x[:50], y[:50], n_permutations=10, device=args.device)  # warm-up (CUDA context, kernels)
    t0 = time.perf_counter()
    ours = mmd2_test(x, y, n_permutations=args.permutations, device=args.device)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t_ours = time.perf_counter() - t0

    ref_perms = min(args.ref_permutations, args.permutations)
    t0 = time.perf_counter()
    ref_stat, ref_p = reference_mmd2_test(x, y, ref_perms)
    t_ref_measured = time.perf_counter() - t0
    t0 = time.perf_counter()
    reference_mmd2_test(x, y, 0)
    t_ref_fixed = time.perf_counter() - t0  # kernel matrix + observed statistic only
    per_perm = max(t_ref_measured - t_ref_fixed, 0.0) / max(ref_perms, 1)
    t_ref = t_ref_fixed + per_perm * args.permutations

    mem_base = peak_memory(args.mem_n, args.d, 0, args.mem_block, args.threads, run=False)
    mem_run = peak_memory(args.mem_n, args.d, args.mem_permutations, args.mem_block, args.threads, run=True)

    results = {
        "n_per_sample": args.n,
        "d": args.d,
        "n_permutations": args.permutations,
        "mmd2_test_seconds": t_ours,
        "mmd2_test_statistic": ours.statistic,
        "mmd2_test_p_value": ours.p_value,
        "reference_statistic": float(ref_stat),
        "reference_p_value_on_timed_permutations": float(ref_p),
        "reference_permutations_timed": ref_perms,
        "reference_seconds_measured": t_ref_measured,
        "reference_seconds_fixed_part": t_ref_fixed,
        "reference_seconds_per_permutation": per_perm,
        "reference_seconds_extrapolated": t_ref,
        "reference_extrapolated": ref_perms < args.permutations,
        "speedup_reference_over_ours": t_ref / t_ours,
        "memory": {
            "n_per_sample": args.mem_n,
            "d": args.d,
            "n_permutations": args.mem_permutations,
            "block_size": args.mem_block,
            "dtype": "float64",
            "baseline_ru_maxrss_mib": mem_base["ru_maxrss_mib"],
            "mmd2_test_ru_maxrss_mib": mem_run["ru_maxrss_mib"],
            "mmd2_test_seconds": mem_run.get("seconds"),
            "full_kernel_matrix_would_need_mib": (2 * args.mem_n) ** 2 * 8 / 2**20,
        },
        "threads": args.threads,
        "device": args.device,
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    rows = [
        ("mmd2_test (ours)", f"{t_ours:.2f} s", f"{args.permutations} permutations"),
        (
            "NumPy reference",
            f"{t_ref:.2f} s",
            f"{'extrapolated from ' + str(ref_perms) if ref_perms < args.permutations else 'measured'}",
        ),
        ("ratio ref/ours", f"{t_ref / t_ours:.1f}x", f"n={args.n} per side, d={args.d}"),
        ("statistic ours / ref", f"{ours.statistic:.6g}", f"{ref_stat:.6g}"),
        (
            f"peak RSS n={args.mem_n}",
            f"{mem_run['ru_maxrss_mib']:.0f} MiB",
            f"baseline {mem_base['ru_maxrss_mib']:.0f} MiB, {args.mem_permutations} perms, "
            f"{mem_run.get('seconds', float('nan')):.1f} s",
        ),
    ]
    for row in rows:
        print(f"{row[0]:<26} {row[1]:>14}   {row[2]}")
    from pathlib import Path

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
