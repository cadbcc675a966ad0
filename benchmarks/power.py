"""Power by design (STUDY §5.1): power and MDE of the within-task alignment–gain test for the next run's design.

Model (see :mod:`transferlimits.metrics.power`): G (task, model) groups, k encoders per group that differ in
alignment; each encoder's true alignment a and true gain t (RPG) correlate ρ within a group, plus group
offsets (task difficulty) that the test removes. Observed values are means over s seeds of true + noise, the
per-seed noise SD being λ times the between-encoder SD, with λ measured from a committed run: every
``metrics.json`` under ``--runs``; per (task, model) group the native and the swapped objective serve as two
encoders (assumption: the next run's encoders differ at least that much; controls will differ more, so the
measured λ is conservative for them). The test is the within-group (partial) correlation, p by permuting
gains among the encoders of each group, two-sided α.

Printed: the measured noise (per group and pooled), power at ρ (default −0.5) and the MDE (smallest |ρ| with
≥ 80 % power) for every k × s, the number of within-task points G·k, the power under the two-way noise
(seed effect shared by the encoders of a seed, e.g. one scratch run, removed) as a sensitivity, the power
of the plain across-task correlation over G points, the smallest p of H6's sign-flip test over T tasks, and the
recommendation: the design with ≥ 80 % power and the fewest fine-tunings per group (k·s), ties to fewer seeds.

Then the new design (G groups × k encoders × 3 seeds, k = 4, 5, 6): power at ρ = −0.5 at α and at Holm's strictest
step α/6 (six hypotheses H1–H6), the simulated MDE at both levels and the analytic Fisher-z MDE beside
(:func:`transferlimits.metrics.mde.fisher_mde`, the verdicts' MDE, attenuated by the seed-noise reliability).

Usage::

    python benchmarks/power.py [--runs DIR] [--ks 3 4 5 6] [--seeds 1 2 3 5] [--json PATH] [--quick]
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from transferlimits.jsonsafe import dumps_strict, loads_strict
from transferlimits.metrics.mde import fisher_mde, holm_alpha, reliability
from transferlimits.metrics.control_power import detectable_gain, detection_power
from transferlimits.metrics.power import (
    Design, across_task_power, draw_base, estimate_noise, mde, power, signflip_min_p)
from transferlimits.study.control_check import control_table
from transferlimits.study.encoder_sources import CONTROL_KINDS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNS = ROOT / "book" / "generated" / "cpu" / "results" / "runs"
TARGET = 0.8


@dataclass(frozen=True)
class Grid:
    """The designs to tabulate: encoders per group ``ks``, seeds ``seeds``, and the base design."""

    ks: tuple[int, ...]
    seeds: tuple[int, ...]
    rho: float
    base: Design


def load_metrics(runs: Path) -> list[dict]:
    """Every ``runs/*/metrics.json`` (strict JSON), sorted by path."""
    paths = sorted(runs.glob("*/metrics.json"))
    if not paths:
        raise SystemExit(f"no metrics.json under {runs}/*/")
    return [loads_strict(p.read_text()) for p in paths]


def cell(design: Design, rho: float, twoway: Design | None) -> dict:
    """Power at ``rho``, MDE, and the power under the two-way noise of one (k, s) design."""
    base = draw_base(design)
    out = {"k": design.k, "seeds": design.seeds, "points": design.n_groups * design.k,
           "runs_per_group": design.k * design.seeds, "power": power(design, rho, base),
           "mde": mde(design, base, TARGET)}
    out["power_twoway"] = power(twoway, rho, base) if twoway is not None else None
    return out


def table(grid: Grid, twoway: tuple[float, float] | None) -> list[dict]:
    """One :func:`cell` per k × s (common random numbers within a cell)."""
    rows = []
    for k in grid.ks:
        for s in grid.seeds:
            d = replace(grid.base, k=k, seeds=s)
            d2 = None if twoway is None else replace(d, noise_align=twoway[0], noise_gain=twoway[1])
            rows.append(cell(d, grid.rho, d2))
    return rows


def recommend(rows: list[dict]) -> dict | None:
    """The design with power ≥ 80 % and the fewest runs per group (k·s), then fewer seeds; None if none."""
    ok = [r for r in rows if r["power"] >= TARGET]
    return min(ok, key=lambda r: (r["runs_per_group"], r["seeds"], r["k"])) if ok else None


def new_design(base: Design, ks: tuple[int, ...] = (4, 5, 6), seeds: int = 3, rho: float = -0.5,
               hypotheses: int = 6, sims: int = 400, perms: int = 399) -> list[dict]:
    """The new design (``base.n_groups`` groups × k encoders × ``seeds`` seeds, the measured λ): per k the power
    at ``rho`` and the MDE at α and at Holm's strictest step α / ``hypotheses``, simulated, with the analytic
    Fisher-z MDE (:func:`transferlimits.metrics.mde.fisher_mde`, attenuated by the seed-noise reliability) beside.

    Args:
        base: design with the measured noise and α. ks: encoders per group. seeds: seeds per encoder. rho: effect.
        hypotheses: family size of the Holm adjustment (H1–H6). sims, perms: simulated datasets and
            within-group permutations per dataset (perms ≥ 2 / α_Holm so that α_Holm is reachable).
    """
    a_holm = holm_alpha(base.alpha, hypotheses)
    if (1 + perms) * a_holm < 1:
        raise ValueError(f"perms must be >= {int(1 / a_holm)} to reach the Holm level {a_holm:.4f}, got {perms}")
    rel = reliability(base.noise_align, seeds) * reliability(base.noise_gain, seeds)
    rows = []
    for k in ks:
        d = replace(base, k=k, seeds=seeds, n_sims=sims, n_perm=perms)
        draws = draw_base(d)
        n = d.n_groups * k
        rows.append({"k": k, "seeds": seeds, "units": n, "groups": d.n_groups, "rho": rho,
                     "power": power(d, rho, draws), "power_holm": power(d, rho, draws, a_holm),
                     "mde": mde(d, draws, TARGET), "mde_holm": mde(d, draws, TARGET, alpha=a_holm),
                     "mde_analytic": fisher_mde(n, d.n_groups, d.alpha, TARGET, rel),
                     "mde_analytic_holm": fisher_mde(n, d.n_groups, a_holm, TARGET, rel),
                     "alpha": d.alpha, "alpha_holm": a_holm, "reliability": rel})
    return rows


def print_new_design(rows: list[dict], base: Design) -> None:
    """The new design's power and MDE at α and at Holm's strictest step."""
    r0 = rows[0]
    print(f"\nNew design: G = {r0['groups']} (task, model) groups × k encoders × s = {r0['seeds']} seeds, "
          f"λ_align = {base.noise_align:.3f}, λ_gain = {base.noise_gain:.3f} (reliability of r "
          f"{r0['reliability']:.2f}); within-task r = {r0['rho']}; α = {r0['alpha']}, Holm over 6 hypotheses at its "
          f"strictest step α/6 = {r0['alpha_holm']:.4f}")
    print(f"  {'k':>2s} {'units':>5s} {'power α':>8s} {'power Holm':>10s} {'MDE α':>6s} {'MDE Holm':>8s} "
          f"{'Fisher MDE α':>12s} {'Fisher MDE Holm':>15s}")
    for r in rows:
        print(f"  {r['k']:>2d} {r['units']:>5d} {r['power']:>8.3f} {r['power_holm']:>10.3f} {_fmt(r['mde']):>6s} "
              f"{_fmt(r['mde_holm']):>8s} {_fmt(_finite(r['mde_analytic'])):>12s} "
              f"{_fmt(_finite(r['mde_analytic_holm'])):>15s}")
    print("  MDE = smallest true |r| with ≥ 80 % power (simulated permutation test; Fisher: analytic, "
          "attenuated by seed noise).")


def _finite(x: float) -> float | None:
    return x if x == x else None


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "  n/a" if x is None else format(x, spec)


def print_noise(noise: dict) -> None:
    """Per-group and pooled noise: seed SD, between-encoder SD and their ratio λ, for gain and alignment."""
    print("Noise measured from the committed run (native vs swapped = two encoders per group; 3 seeds):")
    print(f"  {'group':34s} {'RPG sd_seed':>11s} {'sd_enc':>8s} {'λ':>6s} {'λ2way':>6s}   "
          f"{'MMD² sd_seed':>12s} {'sd_enc':>8s} {'λ':>6s} {'λ2way':>6s}")
    for group, comps in noise["groups"].items():
        parts = []
        for field, width in (("gain", 11), ("align", 12)):
            c = comps[field]
            if c is None:
                parts.append(f"{'undefined':>{width}s} {'':8s} {'':6s} {'':6s}")
                continue
            parts.append(f"{c['sd_seed']:>{width}.4g} {c['sd_between']:>8.4g} {_fmt(c['ratio']):>6s} "
                         f"{_fmt(c['ratio_twoway']):>6s}")
        print(f"  {group:34s} {parts[0]}   {parts[1]}")
    for field, name in (("gain", "RPG"), ("align", "MMD²")):
        p = noise["pooled"][field]
        print(f"  pooled {name}: λ = {_fmt(p['ratio'])} (two-way {_fmt(p['ratio_twoway'])}) over "
              f"{p['n_groups']} groups; reliability of one seed 1/(1+λ²) = {_fmt(p['reliability_1_seed'])}")
    print("  λ = seed SD / between-encoder SD (n/a: the two encoders differ less than seed noise predicts).")


def print_table(rows: list[dict], grid: Grid) -> None:
    """Power at ρ and MDE per k × s."""
    d = grid.base
    print(f"\nWithin-task test, G = {d.n_groups} groups, ρ = {grid.rho}, α = {d.alpha}, {d.n_sims} datasets × "
          f"{d.n_perm} permutations; λ_align = {d.noise_align:.3f}, λ_gain = {d.noise_gain:.3f}")
    print(f"  {'k':>2s} {'s':>2s} {'G·k':>4s} {'runs/grp':>8s} {'power':>6s} {'MDE':>5s} {'power(2way)':>11s}")
    for r in rows:
        print(f"  {r['k']:>2d} {r['seeds']:>2d} {r['points']:>4d} {r['runs_per_group']:>8d} {r['power']:>6.3f} "
              f"{_fmt(r['mde']):>5s} {_fmt(r['power_twoway'], '.3f'):>11s}")
    print("  MDE = smallest |ρ| with ≥ 80 % power (n/a: not reached at |ρ| = 0.99).")


def summarise(grid: Grid, noise: dict, rows: list[dict]) -> dict:
    """Across-task power, the sign-flip floor and the recommendation, as one dict (also the JSON body)."""
    d = grid.base
    across = {"points": d.n_groups, "rho": grid.rho,
              "power_noise_free": across_task_power(replace(d, noise_align=0.0, noise_gain=0.0, seeds=1), grid.rho),
              "power_measured_noise_3_seeds": across_task_power(replace(d, seeds=3), grid.rho)}
    signflip = {str(t): signflip_min_p(t) for t in range(3, 8)}
    need = next(t for t in range(1, 64) if signflip_min_p(t) <= d.alpha)
    sim = {k: v for k, v in asdict(d).items() if k not in ("k", "seeds")}
    return {"simulation": sim, "rho": grid.rho, "target_power": TARGET, "noise": noise, "table": rows,
            "recommendation": recommend(rows), "across_task": across,
            "signflip_min_p": signflip, "signflip_tasks_needed": need}


def print_summary(out: dict) -> None:
    """Across-task power, the sign-flip floor and the recommendation."""
    a, alpha = out["across_task"], out["simulation"]["alpha"]
    print(f"\nAcross tasks: plain correlation over {a['points']} (task, model) points at |r| = {abs(a['rho'])}: "
          f"power {a['power_noise_free']:.2f} without noise, {a['power_measured_noise_3_seeds']:.2f} with the "
          f"measured λ and 3 seeds — low: an across-task correlation of this size is not a verdict.")
    p = out["signflip_min_p"]
    print(f"H6 sign-flip test over T tasks: smallest two-sided p = 2/2^T: T=4 → {p['4']:.4g}, T=5 → {p['5']:.4g}; "
          f"α = {alpha} needs T ≥ {out['signflip_tasks_needed']}, so H6 cannot reach α = {alpha} with ≤ 5 tasks.")
    rec = out["recommendation"]
    if rec is None:
        best = max(out["table"], key=lambda r: r["power"])
        print(f"Recommendation: no design in the grid reaches {TARGET:.0%} power at ρ = {out['rho']}; the best is "
              f"k = {best['k']}, s = {best['seeds']} (power {best['power']:.2f}, MDE {_fmt(best['mde'])}). "
              f"Widen the alignment spread (controls) or add seeds/encoders (--ks, --seeds).")
    else:
        print(f"Recommendation: k = {rec['k']} encoders per group × s = {rec['seeds']} seeds "
              f"({rec['points']} within-task points, {rec['runs_per_group']} fine-tunings per group): "
              f"power {rec['power']:.2f} at ρ = {out['rho']}, MDE {_fmt(rec['mde'])}.")


def controls(metrics: list[dict], alpha: float, seeds: tuple[int, ...] = (3, 4, 5, 6)) -> dict:
    """The encoder controls' detection test (one-sided t over seeds, Holm over the points of a control): the gain
    (in SDs of its seed-to-seed differences) detected with 80 % power per number of seeds, and each measured
    control's observed gain / SD with its detection power at its own seeds and at each of ``seeds``
    (``metrics.control_power``), and per (model, control kind) the expected number of points detected at each seed
    count were the measured gains/SD the truth (``expected``; ``benchmarks/design_cost.py --seeds`` prices them)."""
    with_controls = [d for d in metrics if d.get("objective") in CONTROL_KINDS]
    pairs = {(d["task"], d["model"]) for d in with_controls}
    table = control_table([d for d in metrics if (d["task"], d["model"]) in pairs]) if with_controls else None
    table = table[table["role"] != "objective"] if table is not None else None
    m = int(table.groupby("kind").size().max()) if table is not None and len(table) else 10
    out = {"points": m, "detectable": {str(s): detectable_gain(s, m, alpha, TARGET) for s in seeds}, "measured": []}
    print(f"\nEncoder controls: one-sided t over seeds, Holm over {m} points (first step α/{m}); the gain detected "
          "with 80 % power, in SDs of the seed-to-seed differences: "
          + ", ".join(f"{s} seeds {g:.1f}" for s, g in out["detectable"].items()))
    if table is None:
        return out | {"note": "these runs have no encoder controls"}
    for r in table.itertuples():
        ok = r.n > 1 and r.sd > 0
        effect = r.mean / r.sd if ok else float("nan")
        pw = detection_power(effect, int(r.n), m, alpha) if ok else float("nan")
        at = {str(k): detection_power(effect, k, m, alpha) if ok else float("nan") for k in seeds}
        out["measured"].append({"task": r.task, "model": r.model, "kind": r.kind, "n": int(r.n), "effect": effect,
                                "power": pw, "detected": bool(r.detected), "power_at": at})
        print(f"  {r.task:22s} {r.model:10s} {r.kind:12s} n={r.n} gain/SD {_fmt(effect)} power {_fmt(pw)} "
              f"detected {bool(r.detected)}; at " + ", ".join(f"{k} seeds {_fmt(v)}" for k, v in at.items()))
    out["expected"] = expected_detections(out["measured"], seeds)
    for name, row in out["expected"].items():
        print(f"  expected detections, {name} (sum of powers at the measured gain/SD): "
              + ", ".join(f"{k} seeds {v:.1f}" for k, v in row.items()))
    return out


def expected_detections(measured: list[dict], seeds: tuple[int, ...]) -> dict[str, dict[str, float]]:
    """"model/kind" -> seeds -> the expected number of its points detected if each kept its measured gain/SD (the
    sum of the points' detection powers; an undefined gain/SD, e.g. no seed variation, counts 0)."""
    out: dict[str, dict[str, float]] = {}
    for r in measured:
        row = out.setdefault(f"{r['model']}/{r['kind']}", {str(k): 0.0 for k in seeds})
        for k in seeds:
            v = r["power_at"].get(str(k), float("nan"))
            row[str(k)] += 0.0 if math.isnan(v) else v
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (``--help`` explains the model: see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="folder of <point>/metrics.json (noise)")
    ap.add_argument("--ks", type=int, nargs="+", default=[3, 4, 5, 6], help="encoders per group to tabulate")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 5], help="seeds per encoder to tabulate")
    ap.add_argument("--groups", type=int, default=10, help="(task, model) groups G (default 5 tasks × 2 models)")
    ap.add_argument("--rho", type=float, default=-0.5, help="true within-task correlation for the power column")
    ap.add_argument("--sims", type=int, default=1000, help="simulated datasets per design")
    ap.add_argument("--perms", type=int, default=200, help="within-group permutations per dataset")
    ap.add_argument("--alpha", type=float, default=0.05, help="two-sided level")
    ap.add_argument("--seed", type=int, default=0, help="RNG seed (results are deterministic given it)")
    ap.add_argument("--noise-align", type=float, help="override λ_align (default: pooled, measured)")
    ap.add_argument("--noise-gain", type=float, help="override λ_gain (default: pooled, measured)")
    ap.add_argument("--json", type=Path, help="also write the results as strict JSON here")
    ap.add_argument("--design-ks", type=int, nargs="+", default=[4, 5, 6], help="k of the new-design table")
    ap.add_argument("--design-seeds", type=int, default=3, help="seeds per encoder of the new-design table")
    ap.add_argument("--design-sims", type=int, default=400, help="simulated datasets of the new-design table")
    ap.add_argument("--design-perms", type=int, default=399, help="permutations of the new-design table")
    ap.add_argument("--quick", action="store_true", help="small version for tests: k 3 6, s 1 5, 120×60 sims")
    args = ap.parse_args(argv)
    if args.quick:
        args.ks, args.seeds, args.sims, args.perms = [3, 6], [1, 5], 120, 60
        args.design_ks, args.design_sims, args.design_perms = [4], 60, 199
    return args


def main(argv: list[str] | None = None) -> dict:
    """Measure the noise, tabulate power and MDE, print, and optionally write JSON; returns the results."""
    args = parse_args(argv)
    metrics = load_metrics(args.runs)
    noise = estimate_noise(metrics)
    pooled = noise["pooled"]
    lam_a = args.noise_align if args.noise_align is not None else pooled["align"]["ratio"]
    lam_t = args.noise_gain if args.noise_gain is not None else pooled["gain"]["ratio"]
    if lam_a is None or lam_t is None:
        raise SystemExit("the run shows no between-encoder spread; pass --noise-align/--noise-gain")
    twoway = (pooled["align"]["ratio_twoway"], pooled["gain"]["ratio_twoway"])
    if args.noise_align is not None or args.noise_gain is not None:
        twoway = (None, None)  # the measured two-way λ does not describe an overridden noise level
    base = Design(n_groups=args.groups, noise_align=lam_a, noise_gain=lam_t, n_sims=args.sims,
                  n_perm=args.perms, alpha=args.alpha, seed=args.seed)
    grid = Grid(tuple(args.ks), tuple(args.seeds), args.rho, base)
    rows = table(grid, None if None in twoway else twoway)
    print_noise(noise)
    print_table(rows, grid)
    out = summarise(grid, noise, rows)
    print_summary(out)
    out["new_design"] = new_design(base, tuple(args.design_ks), args.design_seeds, args.rho, 6, args.design_sims,
                                   args.design_perms)
    print_new_design(out["new_design"], base)
    out["controls"] = controls(metrics, args.alpha)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(dumps_strict(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
