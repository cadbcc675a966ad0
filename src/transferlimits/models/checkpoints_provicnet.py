"""Loader for the released ProViCNet state dicts (Hugging Face ``pimed/ProViCNet``: ``T2_best.pth`` ...).

The files are bare ``state_dict()``s of upstream's ``ProViCNet_contrastive`` (``reference/models.md``
§2.5), loadable with ``weights_only=True``:

- ``backbone.*`` (DINOv2 ViT-S/14-reg hub names; ``pos_embed`` (1, 1370, 384) kept at its 518 px
  size and resized at forward time), ``axis_pos.*``, ``axis_max.*`` -> :class:`ProViCNetEncoder`;
- ``head.segmentation_conv.{1,2,5,6,9}.*`` -> ``extras["head"]`` (keys without ``head.``);
- ``CL_Head.mlp.{0,2,4}.*`` and ``CL_Head.last_layer.*`` -> ``extras["CL_Head"]``; the legacy
  weight-norm names ``last_layer.weight_g`` / ``weight_v`` are renamed to the parametrisation names
  ``last_layer.parametrizations.weight.original0`` / ``original1``;
- TRUS only: ``ChannelReducer.*`` -> ``extras["ChannelReducer"]`` (9 -> 3 slice reducer).

Every tensor is checked, the heads included: the head widths are read from the file
(:func:`provicnet_head_config`) and each head tensor must have the shape a head of those widths on this
encoder has (e.g. ``head.segmentation_conv.1.weight`` (mid0, embed_dim, 3, 3)).
``extras["head"]`` and ``extras["CL_Head"]`` load into a :class:`~.contrastive.ProViCNetContrastive`
built with :func:`provicnet_head_config` (``model.load_extras(extras)``). The mpMRI fusion file
(``Stream_*``, ``FusionSegmentation.*``) is rejected: it is a fusion head, not an encoder.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch

from transferlimits.runtime import CheckpointError

from .weights_file import check_finite_weights, read_weights_file
from .provicnet_heads import CLHead, SegmentationConvHead
from .vit import ProViCNetEncoder, build_provicnet

__all__ = ["load_provicnet_checkpoint", "load_provicnet_state_dict", "provicnet_head_config", "CheckpointError"]

_LEGACY_WN = {
    "last_layer.weight_g": "last_layer.parametrizations.weight.original0",
    "last_layer.weight_v": "last_layer.parametrizations.weight.original1",
}
_HEAD_KEYS = {f"segmentation_conv.{i}.{p}" for i in (1, 5, 9) for p in ("weight", "bias")} | {
    f"segmentation_conv.{i}.{p}"
    for i in (2, 6)
    for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
}
_CL_KEYS = {f"mlp.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")} | set(_LEGACY_WN.values())


def _head_mismatches(head: dict, cl: dict, embed_dim: int) -> list[tuple[str, tuple, tuple]]:
    """(key, file shape, expected shape) of every head / CL_Head tensor that a head of the widths read
    from the file, on an encoder of width ``embed_dim``, would not have (missing keys are not listed)."""
    try:
        cfg = provicnet_head_config({"head": head, "CL_Head": cl})
    except CheckpointError:
        return []  # a missing key: reported as missing
    with torch.device("meta"):
        refs = {"head": SegmentationConvHead(embed_dim, cfg["n_classes"], cfg["head_mid"]).state_dict(),
                "CL_Head": CLHead(embed_dim, *cfg["cl_dims"]).state_dict()}
    out = []
    for prefix, got in (("head", head), ("CL_Head", cl)):
        for key, val in got.items():
            want = refs[prefix].get(key)
            if want is not None and tuple(val.shape) != tuple(want.shape):
                out.append((f"{prefix}.{key}", tuple(val.shape), tuple(want.shape)))
    return out


def _describe(missing, unexpected, mismatched) -> str:
    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {sorted(missing)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {sorted(unexpected)}")
    if mismatched:
        parts.append("shape mismatches: " + "; ".join(f"{k}: checkpoint {a} vs model {b}" for k, a, b in mismatched))
    return "; ".join(parts)


def _split(state: dict[str, torch.Tensor]) -> tuple[dict, dict, dict, dict, list[str]]:
    enc, head, cl, reducer, other = {}, {}, {}, {}, []
    for key, val in state.items():
        if key.startswith(("backbone.", "axis_pos.", "axis_max.")):
            enc[key] = val
        elif key.startswith("head."):
            head[key[len("head."):]] = val
        elif key.startswith("CL_Head."):
            sub = key[len("CL_Head."):]
            cl[_LEGACY_WN.get(sub, sub)] = val
        elif key.startswith("ChannelReducer."):
            reducer[key[len("ChannelReducer."):]] = val
        else:
            other.append(key)
    return enc, head, cl, reducer, other


def load_provicnet_state_dict(
    state: dict[str, torch.Tensor], size: str = "vits14", img_size: int = 448, strict: bool = True
) -> tuple[ProViCNetEncoder, dict[str, Any]]:
    """Build a :class:`ProViCNetEncoder` from an upstream state dict (see the module docstring).

    Args:
        state: the state dict. If every tensor is on the ``meta`` device (key/shape checks without
            memory), the encoder is built on ``meta`` too.
        size: encoder size (default ``"vits14"``).
        img_size: input slice size (default 448).
        strict: raise :class:`CheckpointError` on any missing/unexpected key or shape mismatch
            (default True); otherwise skip them and report them in ``extras["report"]``.

    Returns:
        ``(encoder, extras)`` with extras ``head``, ``CL_Head`` (state dicts), ``ChannelReducer``
        (empty unless TRUS) and ``report`` (missing / unexpected / mismatched keys).
    """
    if not isinstance(state, dict):
        raise CheckpointError(f"expected a state dict, got {type(state).__name__}")
    if any(k.startswith(("Stream_", "FusionSegmentation.")) for k in state):
        raise CheckpointError(
            "this is a ProViCNet mpMRI fusion-head state dict (FusionModalities: Stream_*, FusionSegmentation.*), "
            "not an encoder checkpoint; load T2_best.pth / ADC_best.pth / DWI_best.pth instead"
        )
    enc_sd, head, cl, reducer, other = _split(state)
    on_meta = bool(state) and all(getattr(v, "is_meta", False) for v in state.values())
    with torch.device("meta") if on_meta else contextlib.nullcontext():  # meta dict: no real parameters
        encoder = build_provicnet(size, img_size)
    model_sd = encoder.state_dict()
    missing = [k for k in model_sd if k not in enc_sd]
    unexpected = [k for k in enc_sd if k not in model_sd] + other
    mismatched = [
        (k, tuple(v.shape), tuple(model_sd[k].shape))
        for k, v in enc_sd.items()
        if k in model_sd and v.shape != model_sd[k].shape
    ]
    mismatched += _head_mismatches(head, cl, int(encoder.out_dim))
    missing += [f"head.{k}" for k in sorted(_HEAD_KEYS - head.keys())]
    missing += [f"CL_Head.{k}" for k in sorted(_CL_KEYS - cl.keys())]
    unexpected += [f"head.{k}" for k in head if k not in _HEAD_KEYS]
    unexpected += [f"CL_Head.{k}" for k in cl if k not in _CL_KEYS]
    if strict and (missing or unexpected or mismatched):
        raise CheckpointError(f"ProViCNet checkpoint does not match size {size!r}: " + _describe(
            missing, unexpected, mismatched))  # one line: the CLI shows an error's first line only
    check_finite_weights(state)
    bad = {k for k, _, _ in mismatched}
    usable = {k: v for k, v in enc_sd.items() if k in model_sd and k not in bad}
    encoder.load_state_dict(usable, strict=False, assign=True)
    report = {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}
    return encoder, {"head": head, "CL_Head": cl, "ChannelReducer": reducer, "report": report}


#: Refusal hint for a pickled file: the released ProViCNet files are plain state dicts.
PLAIN_STATE_HINT = "re-save it as a plain state dict, as the released ProViCNet files are"


def load_provicnet_checkpoint(
    path: str | os.PathLike, size: str = "vits14", img_size: int = 448, strict: bool = True,
    hint: str = PLAIN_STATE_HINT,
) -> tuple[ProViCNetEncoder, dict[str, Any]]:
    """Load a released ProViCNet ``.pth`` file (``torch.load(weights_only=True)``, on the CPU).

    Args:
        path: file path (e.g. ``T2_best.pth``).
        size, img_size, strict: as :func:`load_provicnet_state_dict`.
        hint: the end of the refusal message for a file holding pickled objects (ProViCNet has no
            pickle opt-in; default: re-save it as a plain state dict).

    Returns:
        ``(encoder, extras)`` as :func:`load_provicnet_state_dict`.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: a folder, an empty / truncated / blocked pickled file, keys and shapes (heads
            included) that do not match (the message names the file, the keys and both shapes), or a tensor
            with NaN/Inf values (named).
    """
    state = read_weights_file(path, hint=hint, what="ProViCNet checkpoint", opt_in=False)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        return load_provicnet_state_dict(state, size=size, img_size=img_size, strict=strict)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None


def provicnet_head_config(extras: dict[str, Any]) -> dict[str, Any]:
    """Constructor kwargs of a :class:`~.contrastive.ProViCNetContrastive` matching ``extras``.

    Returns:
        ``{"n_classes", "head_mid", "cl_dims"}`` read from the tensor shapes.
    """
    head, cl = extras["head"], extras["CL_Head"]
    try:
        mid = (int(head["segmentation_conv.1.weight"].shape[0]), int(head["segmentation_conv.5.weight"].shape[0]))
        n_classes = int(head["segmentation_conv.9.weight"].shape[0])
        hidden = int(cl["mlp.0.weight"].shape[0])
        bottleneck = int(cl["mlp.4.weight"].shape[0])
        out_dim = int(cl[_LEGACY_WN["last_layer.weight_v"]].shape[0])
    except KeyError as err:
        raise CheckpointError(f"extras lack {err.args[0]!r}; cannot infer the head configuration") from None
    return {"n_classes": n_classes, "head_mid": mid, "cl_dims": (hidden, bottleneck, out_dim)}
