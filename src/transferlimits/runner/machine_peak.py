"""This machine's practical fp32 matmul peak, measured in about a second, recorded beside a grid's wall time.

A wall-time budget ("≤ 90 minutes on two cores") is a budget of work only on a known machine: the same
``/proc/cpuinfo`` model name ("AMD EPYC", 2 cores) measured an sgemm peak of 132–174 GFLOP/s at 2 threads in
earlier sessions and 68 GFLOP/s on 2026-12-03, where each fine-tuning of the ``cpu`` grid took a median 1.8× as
long as in the committed run (README, "The committed cpu run"). ``transferlimits run`` records
:func:`sgemm_peak_gflops` at one thread (the ``cpu`` profile's per-job thread count) in ``grid.json``, and the run
page and ``scripts/check_design.py`` print it beside the wall, so a reader can tell a slower design from a slower
machine.
"""

from __future__ import annotations

import time

import torch

__all__ = ["sgemm_peak_gflops"]


def sgemm_peak_gflops(threads: int | None = 1, n: int = 1024, repeats: int = 10) -> float:
    """Best achieved fp32 GFLOP/s of an ``n × n × n`` matmul over ``repeats`` timed calls (after one warm-up).

    Args:
        threads: torch intra-op threads during the measurement (restored afterwards); None keeps the current
            setting.
        n: matrix side (2·n³ FLOP per call).
        repeats: timed calls; the fastest counts (other processes only ever slow a call down).

    Returns:
        GFLOP/s, a lower bound of the peak on a shared machine.

    Raises:
        ValueError: ``threads``, ``n`` or ``repeats`` below 1.
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")
    if n < 1 or repeats < 1:
        raise ValueError(f"n and repeats must be >= 1, got n={n}, repeats={repeats}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return 2.0 * n**3 / max(best, 1e-9) / 1e9
