"""Model registry: build an encoder by name and size, load released weights, wrap a pre-training objective.

Public entry points (re-exported by :mod:`transferlimits.models`)::

    enc = build_encoder("profound", "tiny")                      # ConvNeXt-V2-Tiny 3D
    enc = build_encoder("provicnet", "vits14", img_size=448)     # ViT-S/14 + registers + slice tokens
    enc = load_pretrained("profound", "checkpoint-799.pth", allow_pickle=True)
    obj = build_objective("profound", "fcmae", enc, get_profile("smoke"))
    loss, pred, mask = obj(x)

Objectives: (profound, fcmae) -> :class:`~.fcmae.FCMAE`; (provicnet, mae) -> :class:`~.mae2d.MAE2D`;
(provicnet, contrastive) -> ``ProViCNetContrastive``; (profound, contrastive) -> ``ConvNeXtContrastive``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import nn

from .convnext3d import build_profound

__all__ = ["build_encoder", "encoder_for_profile", "load_pretrained", "build_objective", "ENCODERS", "OBJECTIVE_PAIRS"]

ENCODERS: tuple[str, ...] = ("profound", "provicnet")
OBJECTIVE_PAIRS: tuple[tuple[str, str], ...] = (
    ("profound", "fcmae"),
    ("profound", "contrastive"),
    ("provicnet", "contrastive"),
    ("provicnet", "mae"),
)
#: Decoder widths per encoder size: ProFound's FCMAE decoder is 512 wide; small ones for CPU sizes.
_FCMAE_DECODER = {"tiny": 512, "smoke": 64, "test": 32}
_MAE2D_DECODER = {"vits14": 256, "smoke": 64, "test": 32}
#: CL_Head (hidden, bottleneck, out) and segmentation-head widths for the non-reference sizes.
_SMALL_CL_DIMS = (128, 32, 512)


def _check_name(name: str) -> None:
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; valid: {list(ENCODERS)}")


def build_encoder(name: str, size: str, **kw: Any) -> nn.Module:
    """Build a randomly initialised encoder.

    Args:
        name: ``"profound"`` or ``"provicnet"``.
        size: profound: ``test``/``smoke``/``tiny``; provicnet: ``test``/``smoke``/``vits14``.
        **kw: profound: ``in_chans``, ``drop_path_rate``; provicnet: ``img_size`` (default 448).

    Raises:
        ValueError: unknown name or size (listing the valid ones).
    """
    _check_name(name)
    if name == "profound":
        return build_profound(size, **kw)
    from .vit import build_provicnet

    return build_provicnet(size, **kw)


def encoder_for_profile(name: str, profile: Any, **kw: Any) -> nn.Module:
    """:func:`build_encoder` with the profile's size (and ``slice_size`` as provicnet ``img_size``)."""
    _check_name(name)
    if name == "provicnet":
        kw.setdefault("img_size", profile.slice_size)
    return build_encoder(name, profile.encoder_sizes[name], **kw)


def load_pretrained(
    name: str, path: str | Path, size: str | None = None, return_extras: bool = False, **kw: Any
) -> nn.Module | tuple[nn.Module, Any]:
    """Build an encoder and load released (or our own) weights into it, strictly.

    Args:
        name: ``"profound"`` or ``"provicnet"``.
        path: checkpoint file.
        size: encoder size; default: inferred from the file (profound) / ``"vits14"`` (provicnet).
        return_extras: also return what the loader found besides the encoder (profound: the
            :class:`~.checkpoints_profound.ProFoundCheckpoint` with layout and head state; provicnet: the
            ``extras`` dict with ``head``, ``CL_Head``, ``ChannelReducer``). Default False.
        **kw: profound: ``allow_pickle`` (default False), ``strict`` (default True), ``drop_path_rate``;
            provicnet: ``img_size`` (default 448), ``strict`` (default True).

    Returns:
        The encoder with the checkpoint's weights (task heads are not built here); with
        ``return_extras`` a tuple ``(encoder, extras)``.

    Raises:
        ValueError: unknown name; ``CheckpointError`` (a ValueError) for keys/shapes that do not match.
    """
    _check_name(name)
    if name == "profound":
        from .checkpoints_profound import load_profound_checkpoint

        loader_kw = {k: kw.pop(k) for k in ("allow_pickle", "strict") if k in kw}
        model = build_profound(size, **kw) if size is not None else None
        ckpt = load_profound_checkpoint(path, model=model, **loader_kw)
        return (ckpt.encoder, ckpt) if return_extras else ckpt.encoder
    from .checkpoints_provicnet import load_provicnet_checkpoint

    encoder, extras = load_provicnet_checkpoint(path, size=size or "vits14", **kw)
    return (encoder, extras) if return_extras else encoder


def _objective_kwargs(model_name: str, objective: str, profile_or_kwargs: Any) -> dict[str, Any]:
    if profile_or_kwargs is None:
        return {}
    if isinstance(profile_or_kwargs, Mapping):
        return dict(profile_or_kwargs)
    prof = profile_or_kwargs
    size = prof.encoder_sizes[model_name]
    reference = size in ("tiny", "vits14")
    if objective == "fcmae":
        return {"mask_ratio": prof.pretrain.mask_ratio, "decoder_dim": _FCMAE_DECODER.get(size, 64)}
    if objective == "mae":
        return {"mask_ratio": prof.pretrain.mask_ratio, "decoder_dim": _MAE2D_DECODER.get(size, 64)}
    kw: dict[str, Any] = {"alpha": prof.pretrain.contrastive_alpha}
    if model_name == "profound":
        # Pairs are mined on the stride-4 (stage-1) grid, not stage 4: a stage-4 cell is 16^3 voxels
        # (16x8x8 mm at the reference grid) and no csPCa lesion fills 62/64 of one, so the pair term was
        # always zero there (measured on the real lesion of 11373_1001396: max 19.7 % cancer per cell).
        # A stage-1 cell has 4^3 = 64 voxels, the same count as ProViCNet's 8x8-pixel label cells.
        kw["pair_stage"] = 0
    if not reference:
        kw["cl_dims"] = _SMALL_CL_DIMS
        kw["head_mid"] = (32, 16) if model_name == "provicnet" else 16
    return kw


def build_objective(model_name: str, objective: str, encoder: nn.Module, profile_or_kwargs: Any = None) -> nn.Module:
    """Wrap ``encoder`` in its pre-training module.

    Args:
        model_name: ``"profound"`` or ``"provicnet"``.
        objective: ``"fcmae"`` (profound), ``"mae"`` (provicnet) or ``"contrastive"`` (both).
        encoder: the encoder to train (shared by reference, not copied).
        profile_or_kwargs: a :class:`~transferlimits.config.Profile` (mask ratio, contrastive alpha and
            decoder sizes follow it and its encoder size), a dict of constructor kwargs, or None
            (the constructor defaults). Default None.

    Raises:
        ValueError: unknown model or objective, or a pair not in :data:`OBJECTIVE_PAIRS`.
    """
    _check_name(model_name)
    if (model_name, objective) not in OBJECTIVE_PAIRS:
        valid = [o for m, o in OBJECTIVE_PAIRS if m == model_name]
        raise ValueError(f"unknown objective {objective!r} for {model_name!r}; valid: {valid}")
    kw = _objective_kwargs(model_name, objective, profile_or_kwargs)
    if objective == "fcmae":
        from .fcmae import FCMAE

        return FCMAE(encoder, **kw)
    if objective == "mae":
        from .mae2d import MAE2D

        return MAE2D(encoder, **kw)
    from .contrastive import ConvNeXtContrastive, ProViCNetContrastive

    cls = ProViCNetContrastive if model_name == "provicnet" else ConvNeXtContrastive
    return cls(encoder, **kw)

