"""Compare the JSON results of two study trees, ignoring timing, provenance, paths and file hashes.

Used to check that a refactor leaves results unchanged, or that a reader's re-run reproduces the committed
numbers. On one machine a CPU run is deterministic (expect no difference); on another machine of the same kind
the last digits of float reductions differ and fine-tuning amplifies them, so compare within a tolerance::

    python scripts/compare_results.py book/generated/cpu/results results/cpu --rtol 0.02 --atol 0.005

Two numbers a (tree A) and b (tree B) agree when |a − b| <= atol + rtol·|b| (numpy's ``isclose``); integers are
numbers too (an epoch count may move by one). Prints one line per differing key (at most ``--most`` per file),
then the count, and exits 1 when anything differs beyond the tolerance, 0 when every JSON file of A exists in
B with agreeing values. Timing, provenance, paths and file hashes are ignored. Default: exact.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

#: Keys whose values legitimately differ between two runs of the same study.
IGNORED = re.compile(r"(wall_s|device_s|seconds|_s$|timings|provenance|created|elapsed|duration|time|"
                     r"^settings$|sha256|git_commit)")


def normalise(obj: Any, roots: tuple[str, ...]) -> Any:
    """``obj`` without ignored keys, with the two trees' root paths replaced by ``ROOT``."""
    if isinstance(obj, dict):
        return {k: normalise(v, roots) for k, v in obj.items() if not IGNORED.search(k)}
    if isinstance(obj, list):
        return [normalise(v, roots) for v in obj]
    if isinstance(obj, str):
        for root in roots:
            obj = obj.replace(root, "ROOT")
    return obj


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def close(a: float, b: float, rtol: float = 0.0, atol: float = 0.0) -> bool:
    """|a − b| <= atol + rtol·|b|; NaN agrees with NaN (schema-1 files only: schema 2 writes null)."""
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= atol + rtol * abs(b)


def differences(a: Any, b: Any, rtol: float = 0.0, path: str = "", atol: float = 0.0) -> list[str]:
    """Every path at which ``a`` and ``b`` differ beyond the tolerance, as ``path: a != b`` lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key not in b or key not in a:
                out.append(f"{path}.{key}: only in {'A' if key in a else 'B'}")
            else:
                out += differences(a[key], b[key], rtol, f"{path}.{key}", atol)
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = [f"{path}: length {len(a)} != {len(b)}"] if len(a) != len(b) else []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, rtol, f"{path}[{i}]", atol)
        return out
    if _number(a) and _number(b):
        if close(a, b, rtol, atol):
            return []
        return [f"{path}: {a!r} != {b!r} (|diff| {abs(float(a) - float(b)):.3g} > {atol:g} + {rtol:g}·|b|)"]
    return [] if a == b else [f"{path}: {str(a)[:60]} != {str(b)[:60]}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="results folder A (e.g. results/smoke)")
    parser.add_argument("b", type=Path, help="results folder B")
    parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance of numbers (default 0: exact)")
    parser.add_argument("--atol", type=float, default=0.0, help="absolute tolerance of numbers (default 0: exact)")
    parser.add_argument("--most", type=int, default=10, help="differences printed per file (default 10)")
    args = parser.parse_args(argv)
    roots = (str(args.a.resolve().parent.parent), str(args.b.resolve().parent.parent))
    n_files, n_diff = 0, 0
    for file_a in sorted(args.a.rglob("*.json")):
        rel = file_a.relative_to(args.a)
        file_b = args.b / rel
        if not file_b.exists():
            print(f"{rel}: missing in B")
            n_diff += 1
            continue
        found = differences(normalise(json.loads(file_a.read_text()), roots),
                            normalise(json.loads(file_b.read_text()), roots), args.rtol, atol=args.atol)
        n_files += 1
        n_diff += bool(found)
        for line in found[: args.most]:
            print(f"{rel} {line}")
        if len(found) > args.most:
            print(f"{rel}: ... {len(found)} differences in all")
    tol = f" beyond rtol {args.rtol:g}, atol {args.atol:g}" if args.rtol or args.atol else ""
    print(f"compared {n_files} files; {n_diff} differ{tol}")
    return 1 if n_diff else 0


if __name__ == "__main__":
    sys.exit(main())
