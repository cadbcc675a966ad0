"""training layer of transferlimits.

* :mod:`.loop` - shared utilities: warmup + cosine schedule, AdamW parameter groups, the NaN/inf guard
  (:class:`NonFiniteLossError`), bf16 autocast / channels-last on CUDA, atomic checkpoints with RNG
  state, a wall/device-seconds timer.
* :mod:`.pretrain` - the pre-training runner (``pretrain``, ``load_pretrained_encoder``; CLI
  ``python -m transferlimits pretrain``).
* :mod:`.finetune` - fine-tuning of one task with one init (``finetune``).

``pretrain``, ``load_pretrained_encoder``, ``PretrainResult`` and ``finetune`` are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

from transferlimits.training.loop import (
    Checkpointer,
    NonFiniteLossError,
    Timer,
    autocast_context,
    check_finite,
    generator_states,
    maybe_channels_last,
    param_groups,
    restore_generators,
    restore_rng,
    rng_state,
    seed_generators,
    set_lr,
    warmup_cosine_lr,
)

_LAZY = {
    "pretrain": "transferlimits.training.pretrain",
    "load_pretrained_encoder": "transferlimits.training.pretrain",
    "PretrainResult": "transferlimits.training.pretrain",
    "finetune": "transferlimits.training.finetune",
    "FinetuneResult": "transferlimits.training.finetune",
}

__all__ = [
    "Checkpointer",
    "NonFiniteLossError",
    "Timer",
    "autocast_context",
    "check_finite",
    "generator_states",
    "maybe_channels_last",
    "param_groups",
    "restore_generators",
    "restore_rng",
    "rng_state",
    "seed_generators",
    "set_lr",
    "warmup_cosine_lr",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'transferlimits.training' has no attribute {name!r}")
