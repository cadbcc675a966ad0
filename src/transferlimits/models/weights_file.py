"""Reading a released weights file safely: the weights-only ``torch.load``, the pickle scan, the NaN/Inf check.

Shared by the ProFound and ProViCNet loaders (:mod:`.checkpoints_profound`, :mod:`.checkpoints_provicnet`) and
by the study's encoder check; :mod:`.checkpoints_profound` re-exports these names (their former home).
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import Tensor

from transferlimits.runtime import PICKLE_HINT_API, CheckpointError, load_torch_file

__all__ = ["CheckpointError", "read_weights_file", "pickled_globals", "check_finite_weights"]


#: The only pickled class a user may opt in to (ProFound's files pickle their training ``args``).
_OPT_IN_GLOBALS = ("argparse.Namespace",)


def read_weights_file(path: str | os.PathLike, safe_globals: tuple = (), hint: str = PICKLE_HINT_API,
                      what: str = "checkpoint", opt_in: bool = True) -> Any:
    """:func:`~transferlimits.runtime.load_torch_file` with the two refusals it words poorly made explicit.

    * a folder is refused by name (with the weight files found inside it) instead of "not found";
    * a file whose pickle imports anything beyond plain tensors (e.g. ``posix.system``: a malicious file)
      is reported as **blocked** by ``torch.load(weights_only=True)``, with the globals it asked for,
      instead of "truncated or corrupt".

    Args:
        path: the weights file.
        safe_globals: extra classes the weights-only unpickler may build.
        hint: how the caller opts in to pickled objects (used in the refusal message).
        what: what the file is, for messages.
        opt_in: whether the caller has an opt-in for pickled objects (``hint`` names it); False: ``hint``
            says what to do instead (ProViCNet).

    Raises:
        FileNotFoundError: no such file or folder.
        CheckpointError: a folder, an empty/truncated/corrupt file, or a blocked pickle.
    """
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix in (".pt", ".pth", ".tar", ".bin", ".ckpt"))
        raise CheckpointError(f"{path}: is a folder, not a {what} file; pass the weights file itself"
                              + (f" (found here: {inside[:5]})" if inside else " (it holds no .pt/.pth file)"))
    try:
        return load_torch_file(path, safe_globals=safe_globals, hint=hint, what=what)
    except CheckpointError as err:
        if not isinstance(err.__cause__, pickle.UnpicklingError):
            raise
        found = re.findall(r"GLOBAL ([\w.]+)", str(err.__cause__)) or pickled_globals(path)
        if not found:
            raise
        raise CheckpointError(_blocked_message(path, what, sorted(set(found)), hint, opt_in)) from err.__cause__


def _blocked_message(path: Path, what: str, names: list[str], hint: str, opt_in: bool) -> str:
    head = (f"{path}: blocked: the {what} holds pickled Python objects ({', '.join(names[:5])}) that "
            "torch.load(weights_only=True) refused to build (unpickling them can run arbitrary code); nothing was loaded")
    if not opt_in:
        return f"{head}; {hint} (if the file is not from a source you trust, delete it)"
    if all(n in _OPT_IN_GLOBALS for n in names):
        return f"{head}; to read it anyway {hint}"
    return (f"{head}. The opt-in for pickled objects ({hint.split(' (')[0]}; only for files you trust) admits only "
            f"{', '.join(_OPT_IN_GLOBALS)}, so it would not load this file either: if the file is not from a source "
            "you trust, delete it; if it is, re-save its weights as a plain state dict (torch.save(model.state_dict()))")


def pickled_globals(path: str | os.PathLike) -> list[str]:
    """The ``module.name`` globals a pickle (a raw pickle, or the ``data.pkl`` of a torch zip file) would
    import, found by reading its opcodes without executing anything; [] when it cannot be parsed."""
    try:
        blob = Path(path).read_bytes()
        if zipfile.is_zipfile(io.BytesIO(blob)):
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                member = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                blob = zf.read(member) if member else b""
        return _globals_of(pickletools.genops(blob))
    except Exception:  # not a pickle at all: the caller keeps its "corrupt" message
        return []


def _globals_of(ops: Iterable[tuple[Any, Any, Any]]) -> list[str]:
    """GLOBAL / STACK_GLOBAL targets of a pickle's opcodes (STACK_GLOBAL takes the last two strings pushed,
    directly or from the memo)."""
    found: list[str] = []
    strings: list[str] = []
    memo: dict[int, str] = {}
    top: str | None = None  # the string on top of the stack, if the last op pushed one
    for op, arg, _ in ops:
        pushed = None
        if op.name == "GLOBAL":
            found.append(str(arg).replace(" ", "."))
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.append(f"{strings[-2]}.{strings[-1]}")
        elif isinstance(arg, str) and ("UNICODE" in op.name or op.name.endswith("STRING")):
            pushed = arg
        elif op.name == "MEMOIZE":
            if top is not None:
                memo[len(memo)] = top
            pushed = top
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            if top is not None:
                memo[int(arg)] = top
            pushed = top
        elif op.name in ("GET", "BINGET", "LONG_BINGET") and int(arg) in memo:
            pushed = memo[int(arg)]
        if pushed is not None and op.name not in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            strings.append(pushed)
        top = pushed
    return found


def check_finite_weights(state: Mapping[str, Any], where: str = "") -> None:
    """Raise :class:`CheckpointError` at the first floating-point tensor holding NaN or Inf.

    Diverged or corrupted weights would otherwise load silently and fail much later (features of NaN,
    then e.g. scikit-learn's "Input contains NaN"). Tensors on the ``meta`` device are skipped.

    Args:
        state: name -> tensor (a state dict), checked in its order.
        where: prefix for the message (e.g. the file).
    """
    for name, value in state.items():
        if not isinstance(value, Tensor) or not value.is_floating_point() or value.is_meta:
            continue
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            kinds = "/".join(k for k, m in (("NaN", torch.isnan(value)), ("Inf", torch.isinf(value))) if bool(m.any()))
            raise CheckpointError(f"{where + ': ' if where else ''}parameter {name!r} {tuple(value.shape)} has {bad} "
                                  f"non-finite value(s) ({kinds}) of {value.numel()}: diverged or corrupted weights, "
                                  "not loaded")
