"""Valid values of the numeric profile fields (:data:`FIELD_RANGES`) and the check the dataclasses of
:mod:`transferlimits.config.recipes` and :mod:`transferlimits.config.profile` run in ``__post_init__``.

Every override given to :func:`transferlimits.config.get_profile` passes through it, so a wrong type
or an out-of-range value fails at the edge with the field, the value and the valid range::

    get_profile("smoke", finetune={"epochs": -1})
    # ValueError: profile.finetune: FinetuneRecipe.epochs=-1 is invalid: expected an int >= 1
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

__all__ = ["Range", "FIELD_RANGES", "check_ranges"]

_KIND_WORDS = {"int": ("an int", "a tuple of ints"), "float": ("a number", "a tuple of numbers"),
               "bool": ("a bool (True/False)", "a tuple of bools")}


@dataclass(frozen=True)
class Range:
    """The valid values of one numeric profile field: ``kind`` ``"int"`` / ``"float"`` / ``"bool"``,
    bounds ``lo``/``hi`` (None = open-ended; ``lo_open``/``hi_open`` exclude the bound), ``optional``
    allows None, ``each`` checks every item of a tuple instead of the value."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    optional: bool = False
    each: bool = False

    def describe(self) -> str:
        """Human-readable range, e.g. ``"an int >= 1"`` or ``"a float in (0, 1)"``."""
        one, many = _KIND_WORDS[self.kind]
        what = many if self.each else one
        if self.lo is not None and self.hi is not None:
            what += f" in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        elif self.lo is not None:
            what += f" {'>' if self.lo_open else '>='} {self.lo:g}"
        elif self.hi is not None:
            what += f" {'<' if self.hi_open else '<='} {self.hi:g}"
        return what + (" or None" if self.optional else "")

    def ok(self, value: Any) -> bool:
        """True when ``value`` is of the kind and within the bounds."""
        if self.each:
            return isinstance(value, (tuple, list)) and len(value) > 0 and all(
                dataclasses.replace(self, each=False).ok(v) for v in value)
        if value is None:
            return self.optional
        if self.kind == "bool":
            return isinstance(value, bool)
        kinds = (numbers.Integral,) if self.kind == "int" else (numbers.Real,)
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(float(value)):
            return False
        v = float(value)
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            return False
        return not (self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)))


#: Valid values of every numeric field, per dataclass; checked in ``__post_init__`` (so also on every
#: :func:`get_profile` override), the message names the field, the value and the range.
FIELD_RANGES: dict[str, dict[str, Range]] = {
    "SplitSizes": {n: Range("int", 0) for n in ("pretrain", "train", "val", "test")},
    "SplitFractions": {
        **{n: Range("float", 0, 1) for n in ("pretrain", "train", "val", "test")},
        **{f"min_{n}": Range("int", 0) for n in ("pretrain", "train", "val", "test")},
    },
    "PretrainRecipe": {
        "steps": Range("int", 1), "batch_size": Range("int", 1), "lr": Range("float", 0, lo_open=True),
        "weight_decay": Range("float", 0), "betas": Range("float", 0, 1, hi_open=True, each=True),
        "warmup_steps": Range("int", 0), "checkpoint_every": Range("int", 1),
        "mask_ratio": Range("float", 0, 1, lo_open=True, hi_open=True), "contrastive_alpha": Range("float", 0),
    },
    "FinetuneRecipe": {
        "epochs": Range("int", 1), "batch_size": Range("int", 1), "lr": Range("float", 0, lo_open=True),
        "weight_decay": Range("float", 0), "warmup_epochs": Range("int", 0),
        "layer_decay": Range("float", 0, 1, lo_open=True), "backbone_lr_scale": Range("float", 0),
        "augment": Range("bool"), "decoder_width": Range("int", 1, optional=True),
        "evals_per_run": Range("int", 1), "eval_subset": Range("int", 0), "light_decoder": Range("bool"),
        "train_cases": Range("int", 0),
    },
    "MeasureConfig": {
        "bandwidth_multipliers": Range("float", 0, lo_open=True, each=True), "n_permutations": Range("int", 1),
        "n_bootstrap": Range("int", 1), "token_samples": Range("int", 1),
        "fractions": Range("float", 0, 1, lo_open=True, hi_open=True, each=True),
    },
    "Profile": {
        "slice_size": Range("int", 14), "seeds": Range("int", 0, each=True), "num_threads": Range("int", 0),
        "provicnet_slice_step": Range("int", 1),
    },
}


def check_ranges(obj: Any) -> None:
    """Raise ValueError naming the first field of ``obj`` outside :data:`FIELD_RANGES`."""
    cls = type(obj).__name__
    for name, rng in FIELD_RANGES.get(cls, {}).items():
        value = getattr(obj, name)
        if not rng.ok(value):
            raise ValueError(f"{cls}.{name}={value!r} is invalid: expected {rng.describe()}")
