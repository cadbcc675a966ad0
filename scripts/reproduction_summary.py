"""How close two runs of the same profile came, point by point: the measured reproduction tolerance.

Compares every point (``runs/<point>/metrics.json``) two results trees have in common — e.g. the committed run
and the run it replaced, or a reader's re-run and the committed files — and writes, per quantity, the number of
values compared and the median and largest absolute difference: the primary test score per task and metric (all
three initialisations), RPG (percentage points, where both define it) and the embedding MMD² (pretrained vs
fine-tuned). The book's run appendix shows the file it writes; the README quotes it::

    python scripts/reproduction_summary.py OLD_RESULTS NEW_RESULTS --out book/generated/cpu/reproduction.json

Exit status 2 when the trees share no point.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

INITS = ("pretrained", "scratch", "linear_probe")


def _diffs(old: dict, new: dict) -> dict[str, list[float]]:
    """Absolute differences of one point's quantities (keys: ``task/metric``, ``rpg_pp``, ``embedding_mmd2``)."""
    out: dict[str, list[float]] = {}
    metric = new["task_spec"]["primary_metric"]
    for init in INITS:
        a, b = (old["runs"].get(init, {}).get("test", {}).get(metric),
                new["runs"].get(init, {}).get("test", {}).get(metric))
        if a is not None and b is not None:
            out.setdefault(f"{new['task']}/{metric}", []).append(abs(a - b))
    if old.get("rpg_primary") is not None and new.get("rpg_primary") is not None:
        out.setdefault("rpg_pp", []).append(abs(old["rpg_primary"] - new["rpg_primary"]))
    emb = [m["alignment"]["pretrained"]["pooled"].get("embedding", {}).get("mmd2") for m in (old, new)]
    if None not in emb:
        out.setdefault("embedding_mmd2", []).append(abs(emb[0] - emb[1]))
    return out


def _machine(m: dict) -> dict[str, Any]:
    prov = m.get("provenance") or {}
    return {"git_commit": prov.get("git_commit"), "created": prov.get("created"),
            "cpu_model": (prov.get("hardware") or {}).get("cpu_model")}


def summarise(old_root: Path, new_root: Path) -> dict[str, Any]:
    """The summary document (see the module docstring).

    Raises:
        ValueError: the two trees share no point (the message names both).
    """
    names = sorted(p.parent.name for p in Path(new_root).glob("runs/*/metrics.json")
                   if (Path(old_root) / "runs" / p.parent.name / "metrics.json").is_file())
    if not names:
        raise ValueError(f"{old_root} and {new_root} share no point (runs/<point>/metrics.json)")
    pooled: dict[str, list[float]] = {}
    for name in names:
        old = json.loads((Path(old_root) / "runs" / name / "metrics.json").read_text())
        new = json.loads((Path(new_root) / "runs" / name / "metrics.json").read_text())
        for key, values in _diffs(old, new).items():
            pooled.setdefault(key, []).extend(values)
    first = names[0]
    return {"n_points": len(names),
            "old": _machine(json.loads((Path(old_root) / "runs" / first / "metrics.json").read_text())),
            "new": _machine(json.loads((Path(new_root) / "runs" / first / "metrics.json").read_text())),
            "quantities": {k: {"n": len(v), "median_abs_diff": statistics.median(v), "max_abs_diff": max(v)}
                           for k, v in sorted(pooled.items())}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", type=Path, help="results tree of the earlier run (runs/<point>/metrics.json)")
    p.add_argument("new", type=Path, help="results tree of the later run")
    p.add_argument("--out", type=Path, default=None, help="write the summary as JSON here (default: print it)")
    args = p.parse_args(argv)
    try:
        doc = summarise(args.old, args.new)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
