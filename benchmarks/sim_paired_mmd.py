"""Size and power of the paired MMD² test against the two-sample test, and timing at feature scale.

Data model (pairs): x ~ N(0, I_d), y = ρx + √(1−ρ²)e + shift·1 (shift in SD units of every feature), so the
marginals are equal and the pairs exchangeable when shift = 0. Each trial runs
:func:`transferlimits.metrics.mmd_paired.mmd2_paired_test` (swap within pairs) and the old two-sample
:func:`transferlimits.metrics.mmd.mmd2_test` (label permutation) on the same data; the table gives the
rejection rate at α (size when shift = 0, power otherwise) with its binomial standard error.

Data model (tokens): images with ``tokens`` tokens each, x = √icc·a_image + √(1−icc)·e, y the same with
(a, a′) and (e, e′) correlated ρ; image-flip test (:func:`mmd2_paired_clustered`) vs per-token flips.

Timing: one :class:`PairedKernel` pass at n = 2000, d = 768 serves the statistic, 1000 permutations and 1000
bootstrap replicates; the old ``mmd2_test`` + ``mmd2_ci`` (100 subsets) is timed beside it.

Usage::

    python benchmarks/sim_paired_mmd.py --trials 500 [--out results/sim_paired_mmd.json] [--skip-timing]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from transferlimits.metrics.mmd import mmd2_ci, mmd2_test
from transferlimits.metrics.mmd_paired import PairedKernel, mmd2_paired_clustered, mmd2_paired_test


def pairs(n: int, d: int, rho: float, shift: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Correlated pairs ``x, y [n, d]`` (see the module docstring)."""
    x = rng.normal(size=(n, d))
    return x, rho * x + math.sqrt(1 - rho**2) * rng.normal(size=(n, d)) + shift


def tokens(n_images: int, per_image: int, d: int, rho: float, icc: float, shift: float, rng: np.random.Generator):
    """Token features ``x, y [n_images·per_image, d]`` and image labels, exchangeable per image at shift 0."""
    groups = np.repeat(np.arange(n_images), per_image)

    def corr_pair(shape):
        u = rng.normal(size=shape)
        return u, rho * u + math.sqrt(1 - rho**2) * rng.normal(size=shape)

    (a, a2), (e, e2) = corr_pair((n_images, d)), corr_pair((len(groups), d))
    x = math.sqrt(icc) * a[groups] + math.sqrt(1 - icc) * e
    return x, math.sqrt(icc) * a2[groups] + math.sqrt(1 - icc) * e2 + shift, groups


def rate(hits: list[bool]) -> tuple[float, float]:
    """Rejection rate and its binomial standard error."""
    p = float(np.mean(hits))
    return p, math.sqrt(max(p * (1 - p), 1e-12) / len(hits))


def size_power(n: int, d: int, rhos, shifts, trials: int, n_perm: int, alpha: float) -> list[dict]:
    """Rejection rates of the paired and the two-sample test over a (ρ, shift) grid."""
    rows = []
    for rho in rhos:
        for shift in shifts:
            rng = np.random.default_rng(12345)
            paired, two = [], []
            for t in range(trials):
                x, y = pairs(n, d, rho, shift, rng)
                paired.append(mmd2_paired_test(x, y, n_permutations=n_perm, seed=t).p_value <= alpha)
                two.append(mmd2_test(x, y, n_permutations=n_perm, seed=t).p_value <= alpha)
            (pp, pse), (tp, tse) = rate(paired), rate(two)
            rows.append({"n": n, "d": d, "rho": rho, "shift": shift, "trials": trials, "paired": pp,
                         "paired_se": pse, "two_sample": tp, "two_sample_se": tse})
            print(f"n={n:4d} d={d:3d} rho={rho:.2f} shift={shift:.2f} trials={trials}  "
                  f"paired={pp:.3f}±{pse:.3f}  two-sample={tp:.3f}±{tse:.3f}", flush=True)
    return rows


def clustered_size(trials: int, n_perm: int, alpha: float, shifts=(0.0, 0.3)) -> list[dict]:
    """Image-flip vs token-flip rejection rates for 12 images × 8 tokens, d = 3, ρ = 0.5, icc = 0.8."""
    rows = []
    for shift in shifts:
        rng = np.random.default_rng(777)
        image, token = [], []
        for t in range(trials):
            x, y, g = tokens(12, 8, 3, 0.5, 0.8, shift, rng)
            image.append(mmd2_paired_clustered(x, y, g, n_permutations=n_perm, n_boot=0, seed=t).p_value <= alpha)
            token.append(mmd2_paired_test(x, y, n_permutations=n_perm, seed=t).p_value <= alpha)
        (ip, ise), (tp, tse) = rate(image), rate(token)
        rows.append({"images": 12, "tokens_per_image": 8, "shift": shift, "trials": trials,
                     "image_flip": ip, "image_flip_se": ise, "token_flip": tp, "token_flip_se": tse})
        print(f"tokens 12x8 shift={shift:.2f} trials={trials}  image-flip={ip:.3f}±{ise:.3f}  "
              f"token-flip={tp:.3f}±{tse:.3f}", flush=True)
    return rows


def timing(n: int = 2000, d: int = 768, n_perm: int = 1000, n_boot: int = 1000, old: bool = True) -> dict:
    """Seconds for one kernel pass + test + CI (paired) and for the old two-sample test + subset CI."""
    x, y = pairs(n, d, 0.9, 0.0, np.random.default_rng(0))
    t0 = time.perf_counter()
    pk = PairedKernel(x, y)
    t1 = time.perf_counter()
    res = pk.test(n_perm, seed=0, n_boot=n_boot)
    t2 = time.perf_counter()
    out = {"n": n, "d": d, "threads": torch.get_num_threads(), "paired_kernel_pass_s": t1 - t0,
           "paired_test_and_ci_s": t2 - t1, "paired_total_s": t2 - t0, "paired_p": res.p_value}
    if old:
        t3 = time.perf_counter()
        mmd2_test(x, y, n_permutations=n_perm)
        t4 = time.perf_counter()
        mmd2_ci(x, y, n=100)
        t5 = time.perf_counter()
        out.update(old_test_s=t4 - t3, old_ci_100_subsets_s=t5 - t4)
    print(json.dumps(out, indent=1), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--d", type=int, default=8)
    parser.add_argument("--rhos", type=float, nargs="+", default=[0.0, 0.5, 0.9])
    parser.add_argument("--shifts", type=float, nargs="+", default=[0.0, 0.2, 0.5])
    parser.add_argument("--permutations", type=int, default=199)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-old-timing", action="store_true")
    parser.add_argument("--out", default=None, help="optional JSON path for the tables")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    result = {
        "alpha": args.alpha,
        "n_permutations": args.permutations,
        "pairs": size_power(args.n, args.d, args.rhos, args.shifts, args.trials, args.permutations, args.alpha),
        "tokens": clustered_size(args.trials, args.permutations, args.alpha),
    }
    if not args.skip_timing:
        result["timing"] = timing(old=not args.skip_old_timing)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
