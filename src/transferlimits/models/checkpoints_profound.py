"""Loaders for ProFound checkpoints: raw FCMAE (sparse) pre-training files and dense fine-tuned files.

Layouts recognised from the keys (``reference/models.md`` §1.5), after unwrapping ``{"model": ...}``:

* ``fcmae_sparse`` - ProFound's FCMAE pre-training checkpoint: ``encoder.*`` keys of the MinkowskiEngine
  encoder (``.kernel``, ``.ln.``, ``.linear.``) plus ``proj``/``mask_token``/``decoder``/``pred``. The
  encoder is remapped to dense keys (:func:`remap_fcmae_sparse`), the decoder dropped, and the final
  ``norm`` (absent from the file) freshly initialised to weight 1, bias 0.
* ``fcmae_dense`` - our own :class:`~.fcmae.FCMAE` state dict (dense ``encoder.*`` + decoder): decoder dropped.
* ``classifier`` - ProFound ``Classifier``: dense ``encoder.*`` + ``head.{0,1,3}.*``.
* ``upernet`` - ProFound ``UperNet``: ``encoder.*`` + ``hidden_norm.*``, ``decode_head.*``, ``auxiliary_head.*``.
* ``dense_encoder`` - a bare dense encoder state dict (``stages.*.dwconv.weight`` at the top level).

The head keys are returned unchanged (full names, e.g. ``head.0.weight``) in ``head_state`` for
``models/heads.py`` to load; this module only loads the encoder.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from transferlimits.runtime import PICKLE_HINT_API, CheckpointError

from .convnext3d import ConvNeXtV2_3D
from .weights_file import check_finite_weights, pickled_globals, read_weights_file

__all__ = [
    "CheckpointError",
    "ProFoundCheckpoint",
    "read_checkpoint",
    "detect_profound_layout",
    "remap_fcmae_sparse",
    "infer_profound_config",
    "check_state_dict",
    "convert_profound_state",
    "load_profound_checkpoint",
    "read_weights_file",
    "check_finite_weights",
    "pickled_globals",
]

_DECODER_PREFIXES = ("proj.", "decoder.", "pred.")
_HEAD_PREFIXES = ("head.", "hidden_norm.", "decode_head.", "auxiliary_head.")


@dataclass
class ProFoundCheckpoint:
    """The result of loading: the detected ``layout``, the dense encoder and head state dicts, the
    encoder config (``depths``, ``dims``, ``in_chans``), the encoder (when loaded) and the other
    top-level entries of the file (``epoch``, ``args`` ...) in ``extra``."""

    layout: str
    encoder_state: dict[str, Tensor]
    head_state: dict[str, Tensor]
    config: dict[str, Any]
    encoder: ConvNeXtV2_3D | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def read_checkpoint(path: str | Path, allow_pickle: bool = False, hint: str = PICKLE_HINT_API) -> Any:
    """``torch.load`` on CPU with ``weights_only=True`` (see :func:`read_weights_file`).

    Args:
        path: checkpoint file.
        allow_pickle: also allow the ``argparse.Namespace`` that ProFound pickles under ``"args"``
            (still ``weights_only=True``, via ``torch.serialization.safe_globals``). Default False.
        hint: how to opt in, worded for where the user is (default: the API argument
            ``allow_pickle=True``; the CLI passes :data:`~transferlimits.runtime.PICKLE_HINT_ENV`).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: a folder, an empty, truncated or corrupt file, or one that needs more than plain
            tensors (the message names the file, says it was blocked and gives the switch from ``hint``).
    """
    safe = (argparse.Namespace,) if allow_pickle else ()
    return read_weights_file(path, safe_globals=safe, hint=hint)


def _unwrap(obj: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint is a {type(obj).__name__}, expected a dict / state dict")
    for key in ("model", "state_dict"):
        if key in obj and isinstance(obj[key], Mapping):
            return dict(obj[key]), {k: v for k, v in obj.items() if k != key}
    return dict(obj), {}


def detect_profound_layout(state: Mapping[str, Any]) -> str:
    """One of ``fcmae_sparse``, ``fcmae_dense``, ``classifier``, ``upernet``, ``dense_encoder``.

    Raises:
        CheckpointError: none matches (the message shows the first keys).
    """
    keys = list(state)
    enc = [k for k in keys if k.startswith("encoder.")]
    if enc:
        if any(k.endswith(".kernel") or ".ln." in k or ".linear." in k for k in enc):
            return "fcmae_sparse"
        if any(k.startswith(_HEAD_PREFIXES[1:]) for k in keys):
            return "upernet"
        if any(k.startswith("head.") for k in keys):
            return "classifier"
        if "mask_token" in state or any(k.startswith(_DECODER_PREFIXES) for k in keys):
            return "fcmae_dense"
    elif any(k.startswith("stages.") and k.endswith(".dwconv.weight") for k in keys):
        return "dense_encoder"
    raise CheckpointError(f"not a recognised ProFound checkpoint layout; first keys: {keys[:8]}")


def _reverse_spatial(w: Tensor) -> Tensor:
    return w.permute(0, 1, 4, 3, 2)


def _remap_one(key: str, t: Tensor) -> tuple[str, Tensor]:
    """One sparse encoder entry (without ``encoder.``) -> (dense key, dense tensor)."""
    new = key.replace(".ln.", ".").replace(".linear.", ".")
    if key.endswith(".kernel"):
        new = new[: -len("kernel")] + "weight"
        if re.fullmatch(r"stages\.\d+\.\d+\.dwconv\.kernel", key):  # (k^3, C) -> (C, 1, k, k, k)
            k = round(t.shape[0] ** (1 / 3))
            return new, _reverse_spatial(t.t().reshape(t.shape[1], 1, k, k, k))
        if t.ndim == 2:  # k = 1 conv (downsample_layers.3.1): (Cin, Cout) -> (Cout, Cin, 1, 1, 1)
            return new, t.t()[:, :, None, None, None]
        k = round(t.shape[0] ** (1 / 3))  # (k^3, Cin, Cout) -> (Cout, Cin, k, k, k)
        return new, _reverse_spatial(t.permute(2, 1, 0).reshape(t.shape[2], t.shape[1], k, k, k))
    if ".grn." in key:  # (1, 4C) -> (1, 1, 1, 1, 4C)
        return new, t.reshape(1, 1, 1, 1, -1)
    if key.endswith(".bias") and t.ndim == 2 and t.shape[0] == 1:  # (1, C) -> (C,)
        return new, t.reshape(-1)
    return new, t


def remap_fcmae_sparse(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Sparse FCMAE ``encoder.*`` entries -> dense encoder keys (dense ``W[o,i,a,b,c] = K[a+k*b+k^2*c,i,o]``).

    Non-encoder entries (``proj``, ``mask_token``, ``decoder``, ``pred``) are dropped; the final ``norm``
    is added as weight 1, bias 0. Returns ``(dense_state, origin)`` with ``origin[dense_key] = raw key``.

    Raises:
        CheckpointError: a tensor cannot be reshaped as its name requires (the message names it).
    """
    out: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    for raw, t in state.items():
        if not raw.startswith("encoder."):
            continue
        try:
            new, dense = _remap_one(raw[len("encoder.") :], t)
        except RuntimeError as err:
            raise CheckpointError(f"cannot remap {raw} of shape {tuple(t.shape)}: {err}") from err
        out[new], origin[new] = dense, raw
    last = out.get("downsample_layers.3.1.weight")  # (C4, C3, 1, 1, 1) gives the width of the final norm
    if last is not None and "norm.weight" not in out:
        dim = last.shape[0]
        out["norm.weight"] = torch.ones(dim, dtype=last.dtype, device=last.device)
        out["norm.bias"] = torch.zeros(dim, dtype=last.dtype, device=last.device)
    return out, origin


def infer_profound_config(encoder_state: Mapping[str, Tensor]) -> dict[str, Any]:
    """``{"depths", "dims", "in_chans"}`` of a dense encoder state dict, from its stage/stem keys.

    Raises:
        CheckpointError: a stage or the stem is missing.
    """
    depths, dims = [], []
    for i in range(4):
        blocks = {int(m.group(1)) for k in encoder_state if (m := re.match(rf"stages\.{i}\.(\d+)\.", k))}
        if not blocks:
            raise CheckpointError(f"cannot infer the encoder size: no stages.{i}.* keys")
        depths.append(max(blocks) + 1)
        width = encoder_state.get(f"stages.{i}.0.norm.weight", encoder_state.get(f"stages.{i}.0.dwconv.weight"))
        if width is None:
            raise CheckpointError(f"cannot infer the width of stage {i}: no stages.{i}.0.norm.weight key")
        dims.append(int(width.shape[0]))
    stem = encoder_state.get("downsample_layers.0.0.weight")
    if stem is None:
        raise CheckpointError("cannot infer in_chans: no downsample_layers.0.0.weight key")
    return {"depths": tuple(depths), "dims": tuple(dims), "in_chans": int(stem.shape[1])}


def check_state_dict(
    expected: Mapping[str, Tensor], got: Mapping[str, Tensor], strict: bool = True, origin: Mapping[str, str] | None = None
) -> None:
    """Raise a :class:`CheckpointError` listing missing / unexpected keys (when ``strict``) and every
    shape mismatch by name; ``origin`` maps remapped names back to the file's names for the message."""
    origin = origin or {}

    def name(k: str) -> str:
        return f"{k} (from {origin[k]})" if k in origin and origin[k] != k else k

    missing = [k for k in expected if k not in got]
    unexpected = [name(k) for k in got if k not in expected]
    shapes = [
        f"{name(k)}: checkpoint {tuple(got[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in got and tuple(got[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if strict and missing:
        problems.append(f"missing keys ({len(missing)}): {missing[:20]}")
    if strict and unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {unexpected[:20]}")
    if shapes:
        problems.append(f"shape mismatches ({len(shapes)}): {shapes[:20]}")
    if problems:
        raise CheckpointError("ProFound encoder state does not match the model: " + "; ".join(problems))


def convert_profound_state(
    obj: Any, model: ConvNeXtV2_3D | None = None, strict: bool = True
) -> ProFoundCheckpoint:
    """Detect the layout of a loaded checkpoint object, remap it to dense encoder keys and check it.

    Args:
        obj: a state dict or ``{"model": state_dict, ...}`` (tensors may live on the ``meta`` device).
        model: the encoder to check against; default: one of the inferred size built on ``meta``.
        strict: require exactly the model's keys (shape mismatches are always errors). Default True.

    Raises:
        CheckpointError: unknown layout, keys/shapes that do not match, or a tensor with NaN/Inf values
            (named in the message).
    """
    state, extra = _unwrap(obj)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    layout = detect_profound_layout(state)
    origin: dict[str, str] = {}
    heads: dict[str, Tensor] = {}
    if layout == "dense_encoder":
        enc = dict(state)
    else:
        allowed = ("encoder.", "mask_token") + _DECODER_PREFIXES
        if layout in ("classifier", "upernet"):
            allowed += _HEAD_PREFIXES
            heads = {k: v for k, v in state.items() if k.startswith(_HEAD_PREFIXES)}
        stray = [k for k in state if not k.startswith(allowed)]
        if strict and stray:
            raise CheckpointError(f"unexpected keys for layout {layout!r} ({len(stray)}): {stray[:20]}")
        if layout == "fcmae_sparse":
            enc, origin = remap_fcmae_sparse(state)
        else:
            enc = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    config = infer_profound_config(enc) if model is None else {
        "depths": model.depths, "dims": model.dims, "in_chans": model.in_chans}
    if model is None:
        with torch.device("meta"):
            ref = ConvNeXtV2_3D(config["in_chans"], config["depths"], config["dims"])
    else:
        ref = model
    check_state_dict(ref.state_dict(), enc, strict=strict, origin=origin)
    check_finite_weights({origin.get(k, k): v for k, v in enc.items()})
    check_finite_weights(heads)
    if not strict:
        expected = ref.state_dict()
        enc = {k: v for k, v in enc.items() if k in expected}
    return ProFoundCheckpoint(layout, enc, heads, config, encoder=model, extra=extra)


def load_profound_checkpoint(
    path: str | Path, model: ConvNeXtV2_3D | None = None, allow_pickle: bool = False, strict: bool = True,
    hint: str = PICKLE_HINT_API,
) -> ProFoundCheckpoint:
    """Read a ProFound checkpoint file and load its encoder weights.

    Args:
        path: ``.pth`` / ``.pth.tar`` file (raw FCMAE, Classifier, UperNet, or a dense encoder).
        model: encoder to load into; default: a new :class:`ConvNeXtV2_3D` of the size in the file.
        allow_pickle: allow the pickled ``argparse.Namespace`` of ProFound's files. Default False.
        strict: exact key matching. Default True.
        hint: how to opt in to pickled objects, worded for the caller (see :func:`read_checkpoint`).

    Returns:
        :class:`ProFoundCheckpoint` whose ``encoder`` holds the loaded weights; ``head_state`` holds
        the task-head entries (Classifier/UperNet) under their original names.

    Raises:
        FileNotFoundError, CheckpointError (see :func:`read_checkpoint`, :func:`convert_profound_state`).
    """
    try:
        ckpt = convert_profound_state(read_checkpoint(path, allow_pickle, hint), model=model, strict=strict)
    except CheckpointError as err:
        if str(path) in str(err):
            raise
        raise CheckpointError(f"{path}: {err}") from None
    if model is None:
        cfg = ckpt.config
        model = ConvNeXtV2_3D(cfg["in_chans"], cfg["depths"], cfg["dims"])
    model.load_state_dict(ckpt.encoder_state, strict=strict)
    ckpt.encoder = model
    return ckpt
