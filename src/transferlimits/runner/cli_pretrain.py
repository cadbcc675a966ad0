"""``python -m transferlimits pretrain``: pre-train one encoder with one objective (CLI of :mod:`transferlimits.training.pretrain`).

Example::

    python -m transferlimits pretrain --model profound --profile smoke
    python -m transferlimits pretrain --model provicnet --objective mae --steps 100 --device cpu
"""

from __future__ import annotations

import argparse

from transferlimits.resolved import load_resolved
from transferlimits.models.registry import get_model, model_names
from transferlimits.training.pretrain import PretrainCollaborators, pretrain

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI options of ``python -m transferlimits pretrain``."""
    parser.add_argument("--model", required=True, help=f"encoder to pre-train, one of {list(model_names())}")
    parser.add_argument("--objective", default=None,
                        help="pre-training objective; default the model's native one "
                        f"({', '.join(f'{m}: {get_model(m).native_objective}' for m in model_names())}); the "
                        "swapped controls are "
                        f"{', '.join(f'{m}: {get_model(m).swapped_objective}' for m in model_names())}")
    parser.add_argument("--profile", default="smoke", help="profile name: smoke, reference or picai (default smoke)")
    parser.add_argument("--seed", type=int, default=0, help="seed of init, sampling and masking (default 0)")
    parser.add_argument("--device", default="auto", help="'auto' (cuda if present, else cpu), 'cpu', 'cuda:0' ...")
    parser.add_argument("--steps", type=int, default=None, help="number of steps (default: the profile's recipe)")
    parser.add_argument("--out", default=None,
                        help="output folder (default results/<profile>/pretrain/<model>__<objective>)")
    parser.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint_last.pt and start over")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def main(args: argparse.Namespace, collaborators: PretrainCollaborators | None = None) -> int:
    """Run :func:`pretrain` from parsed CLI arguments (``collaborators``: stand-ins for tests); prints the outputs.
    The profile is the run's resolved one (``results/<profile>/profile.json``) when it exists. Returns 0."""
    objective = args.objective or get_model(args.model).native_objective
    profile = load_resolved(args.profile)
    result = pretrain(args.model, objective, profile, device=args.device, seed=args.seed, out_dir=args.out,
                      resume=not args.no_resume, progress=not args.no_progress, max_steps=args.steps,
                      collaborators=collaborators)
    s = result.summary
    print(f"{args.model}/{objective}: {s['steps']} steps, loss {s['first_loss']:.4f} -> {s['last_loss']:.4f}, "
          f"{s['samples_per_s']:.2f} samples/s on {s['device']}; encoder: {result.encoder_path}")
    return 0
