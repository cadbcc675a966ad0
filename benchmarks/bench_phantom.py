"""Phantom generation throughput (cases/s) at the smoke and reference grids, with 1 and 2 processes.

    python benchmarks/bench_phantom.py [--cases 8] [--grids smoke reference] [--procs 1 2]

Geometries come from the shipped geometry pack (first ``--cases`` case ids; falls back to a hand-made
ellipsoid gland when the pack is missing). Each process runs with one thread. Prints a table and, with
``--json PATH``, writes the numbers.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("OMP_NUM_THREADS", "1")

from transferlimits import paths  # noqa: E402
from transferlimits.config import get_profile  # noqa: E402

GRIDS = {"smoke": get_profile("smoke").grid, "reference": get_profile("reference").grid}


def _geometries(n: int, pack_path=None):
    from transferlimits.data.geometry import load_geometry_pack

    pack_path = pack_path or paths.GEOMETRY_PACK
    if os.path.isfile(pack_path):
        pack = load_geometry_pack(pack_path)
        return [pack.case(c) for c in pack.case_ids[:n]]
    import sys

    sys.path.insert(0, str(paths.ROOT / "tests"))
    from _geometry_factory import ellipsoid_geometry

    return [ellipsoid_geometry(case_id=f"{10000 + i}_{1000000 + i}", shape=(24, 128, 128)) for i in range(n)]


def _one(args) -> tuple[float, float]:
    """(wall s, CPU s of this process) of one synthesis."""
    from transferlimits.data.phantom import synthesize

    geom, grid = args
    t, c = time.perf_counter(), time.process_time()
    synthesize(geom, grid, 0)
    return time.perf_counter() - t, time.process_time() - c


def bench(grid_name: str, procs: int, n: int, pack_path=None) -> dict:
    grid = GRIDS[grid_name]
    geoms = _geometries(n, pack_path)
    _one((geoms[0], grid))  # warm-up (imports, caches)
    t = time.perf_counter()
    if procs == 1:
        per = [_one((g, grid)) for g in geoms]
    else:
        with ProcessPoolExecutor(procs) as ex:
            ex.submit(_one, (geoms[0], grid)).result()
            t = time.perf_counter()
            per = list(ex.map(_one, [(g, grid) for g in geoms]))
    wall = time.perf_counter() - t
    return {"grid": grid_name, "shape": list(grid.shape), "spacing": list(grid.spacing), "procs": procs,
            "cases": n, "wall_s": wall, "cases_per_s": n / wall, "s_per_case": sum(p[0] for p in per) / n,
            "cpu_s_per_case": sum(p[1] for p in per) / n, "load_avg_1min": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--grids", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    parser.add_argument("--procs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--json", default=None)
    parser.add_argument("--pack", default=None, help="geometry pack (default paths.GEOMETRY_PACK)")
    args = parser.parse_args()
    rows = []
    for g in args.grids:
        for p in args.procs:
            n = args.cases if g == "smoke" else max(2, args.cases // 4) * p
            r = bench(g, p, n, args.pack)
            rows.append(r)
            print(f"{g:9s} {str(tuple(r['shape'])):16s} procs={p}  {r['cases_per_s']:7.2f} cases/s  "
                  f"({r['s_per_case']:.3f} s/case/process, CPU {r['cpu_s_per_case']:.3f} s/case, {n} cases, "
                  f"load {r['load_avg_1min']:.1f})", flush=True)
    if args.json:
        from transferlimits.runtime import atomic_write_json, hardware_info

        atomic_write_json(args.json, {"results": rows, "hardware": hardware_info()})


if __name__ == "__main__":
    main()
