"""Model input views: a :class:`~transferlimits.tasks.registry.TaskSample` or a pre-training case as tensors.

Two view kinds exist; each model adapter (``transferlimits.models.adapters``) picks one:

* channel view (3D, ProFound-like): ``x`` [3, D, H, W], the task's ``channel_inputs`` in ``SEQUENCES`` order
  (t2w, hbv, adc), each z-scored over its non-zero voxels (:func:`normalise_channel`); ``""`` = zero channel;
* stack view (2.5D, ProViCNet-like): the task's ``single_input`` z-scored inside the gland mask (fallback
  body, then whole volume), axial slices resized bilinearly to ``slice_size`` and stacked as 3 adjacent
  slices (i-1, i, i+1; windows at the edges shifted inward), with the slice position tokens
  ``pos = (slice index, slice count)``.

Both views carry the SAME target ``y`` on the 3D (D, H, W) grid (or the case label), so all models are
trained and evaluated at the volume level; a 2.5D model's per-slice outputs are re-stacked to 3D before
the loss/metric.

The target ``y`` is made by the task's kind (``TaskKind.target_tensor``; an unknown kind is a ValueError naming
it). Regression targets are expressed in units the model can know from its input (:func:`target_units`,
``y = (target - offset) / scale``, both kept in the item to map predictions back; the dense-regression kind
computes them):

* restoration of the input's own modality (``spec.target_unit is None``: super-resolution, distortion
  correction): the z-score of the task's input over the body mask, and both views z-score that input over
  the body mask too. The identity baseline is then exactly the model's (channel-view) input, and a residual
  head adds the input channel as it is. A per-case scale taken from the TARGET (its 99th percentile, the
  earlier choice) cannot be known from a z-scored input, so the identity baseline was out of the model's
  reach; the INPUT's 99th percentile cannot either (x / q99(x) needs the input's mean-to-SD ratio, which
  z-scoring removes; the phantom has no zero background to recover it from). The z-score over the body is
  the one per-case affine map that is both leak-free and what the model sees. PSNR (range from the target)
  and SSIM do not depend on an affine change of units; NMSE and MAE are in input-SD units.
* translation to another modality (a positive ``spec.target_unit``: T2W -> ADC): a fixed physical unit
  (ADC / 1000, i.e. 10^-3 mm^2/s). ADC is quantitative, so its value is a function of the tissue the model
  sees; any per-case scale from the T2W input would impose T2W's arbitrary gain on ADC, and one from the
  target would leak it. A fixed unit leaks nothing and needs no train-split statistic.

The pre-training counterparts (:func:`channel_pretrain_volume`, :func:`stack_pretrain_volume`,
:func:`stack_pretrain_item`) apply the same normalisation to a whole case.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from transferlimits.data.normalise import normalise_channel, zscore_stats
from transferlimits.tasks.kinds import get_kind
from transferlimits.tasks.kinds.base import body_mask, sample_input
from transferlimits.tasks.registry import TaskSample, TaskSpec

__all__ = ["normalise_channel", "zscore_stats", "in_input_units", "target_units", "target_tensor", "channel_view",
           "stack_view", "slice_triplets", "slice_centres", "centre_channels", "channel_pretrain_volume",
           "stack_pretrain_volume", "stack_pretrain_item"]


def in_input_units(spec: TaskSpec) -> bool:
    """True when the task's target is expressed in its input's body z-score (the kind decides: dense regression
    with ``target_unit`` None).

    Raises:
        ValueError: ``spec.kind`` is not a registered kind (the message names it and the registered ones).
    """
    return get_kind(spec.kind).in_input_units(spec)


def target_units(sample: TaskSample, spec: TaskSpec) -> tuple[float, float]:
    """``(offset, scale)`` of the target, ``y = (target - offset) / scale`` (see the module docstring), from the
    task's kind (``TaskKind.target_units``): (0, 1) for the non-regression kinds; for dense regression, (0, unit)
    with a fixed ``spec.target_unit``, else the mean and SD of ``spec.single_input`` over the body mask.

    Raises:
        ValueError: unknown kind (named, with the registered ones), or the sample lacks ``spec.single_input``.
    """
    return get_kind(spec.kind).target_units(sample, spec)


def target_tensor(sample: TaskSample, spec: TaskSpec, units: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """``y`` of both views, made by the task's kind (``TaskKind.target_tensor``): int64 class / label map,
    float32 scalar, or the volume in ``units`` (offset, scale).

    Raises:
        ValueError: unknown kind (the message names it and the registered ones).
    """
    return get_kind(spec.kind).target_tensor(sample, spec, units)


def _common(sample: TaskSample, spec: TaskSpec) -> dict:
    kind = get_kind(spec.kind)
    offset, scale = kind.target_units(sample, spec)
    return {
        "y": kind.target_tensor(sample, spec, (offset, scale)),
        "masks": {k: torch.from_numpy(np.asarray(v, np.uint8)) for k, v in sample.masks.items()},
        "case_id": sample.case_id,
        "scale": float(scale),
        "offset": float(offset),
    }


def channel_view(sample: TaskSample, spec: TaskSpec) -> dict:
    """3D view: ``x`` float32 [3, D, H, W] (``spec.channel_inputs``), ``y``, ``masks``, ``case_id``, ``scale``,
    ``offset``. Channels are z-scored over their non-zero voxels, except the input of a task in input units
    (:func:`in_input_units`), z-scored over the body mask like its target."""
    shape = next(iter(sample.inputs.values())).shape
    body = body_mask(sample) if in_input_units(spec) else None
    chans = [normalise_channel(sample_input(sample, n), body if n == spec.single_input else None) if n
             else np.zeros(shape, np.float32) for n in spec.channel_inputs]
    return {"x": torch.from_numpy(np.stack(chans)), **_common(sample, spec)}


def slice_centres(depth: int, step: int = 1) -> np.ndarray:
    """Centre slices of the 2.5D stacks: every slice (``step`` 1) or ``step//2, step//2 + step, ...``."""
    if depth < 1 or step < 1:
        raise ValueError(f"depth and step must be >= 1, got depth={depth}, step={step}")
    return np.arange(depth) if step == 1 else np.arange(min(step // 2, depth - 1), depth, step)


def slice_triplets(depth: int, step: int = 1) -> np.ndarray:
    """[D', 3] indices (c-step, c, c+step) per centre slice c (see :func:`slice_centres`; D' = D for step 1).

    Windows at the edges are shifted inward (clamped if the volume is too thin).
    """
    centre = slice_centres(depth, step)
    if step == 1:
        centre = np.clip(centre, 1, max(depth - 2, 1))
    else:
        centre = np.clip(centre, min(step, depth - 1), max(depth - 1 - step, 0))
    return np.clip(centre[:, None] + np.array([-step, 0, step])[None, :], 0, depth - 1)


def centre_channels(depth: int, step: int = 1) -> np.ndarray:
    """[D'] int: which of the three slices of each stack (:func:`slice_triplets`) is nearest its centre slice
    (:func:`slice_centres`): the centre itself, 1, except at the edges, where the window is shifted inward (0 at
    the first stack, 2 at the last; with ``step`` > 1 an edge stack may miss its centre, then the nearest slice)."""
    trip, centre = slice_triplets(depth, step), slice_centres(depth, step)
    dist = np.abs(trip - centre[:, None]) * 4 + np.abs(np.arange(3) - 1)  # ties: the middle slice
    return np.argmin(dist, axis=1)


def stack_view(sample: TaskSample, spec: TaskSpec, slice_size: int, slice_step: int = 1) -> dict:
    """2.5D view: ``x`` float32 [D', 3, S, S], ``pos`` float32 [D', 2] (slice index, slice count), ``y`` (3D).

    Args:
        sample: the task sample.
        spec: its task (``spec.single_input`` names the sequence).
        slice_size: S, output height and width in pixels (e.g. 448 for ViT-S/14 at the reference size).
        slice_step: k; stacks are centred on every k-th slice with neighbours k slices away, so
            D' = ceil((D - k // 2) / k) (default 1: every slice, D' = D). The dense head re-samples its D'
            slices back onto the D-slice grid of ``y``.
    """
    if int(slice_size) < 1:
        raise ValueError(f"slice_size must be a positive int, got {slice_size}")
    vol = np.asarray(sample_input(sample, spec.single_input), np.float32)
    mask = None
    # a task in input units: z-score over the body, the target's units; else over the gland (pre-training's)
    for name in (("body",) if in_input_units(spec) else ("gland", "body")):
        m = sample.masks.get(name)
        if m is not None and (np.asarray(m) > 0).sum() > 1:
            mask = m
            break
    vol = normalise_channel(vol, mask if mask is not None else np.ones(vol.shape, bool))
    t = _resize_slices(torch.from_numpy(vol), int(slice_size))
    idx = torch.from_numpy(slice_triplets(vol.shape[0], int(slice_step)))
    x = t[idx]  # [D', 3, S, S]
    d = idx.shape[0]
    pos = torch.stack([torch.arange(d, dtype=torch.float32), torch.full((d,), float(d))], dim=1)
    return {"x": x.contiguous(), "pos": pos, **_common(sample, spec)}


def _resize_slices(vol: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """[D, H, W] -> [D, size, size], each axial slice resized (``bilinear`` or ``nearest``)."""
    kw = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(vol[:, None], size=(size, size), mode=mode, **kw)[:, 0]


def channel_pretrain_volume(case, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-training item of a 3D model: ``x`` float32 [3, D, H, W] (t2w, hbv, adc, each z-scored over its
    non-zero voxels) and the 4-class ``labels`` [D, H, W] unchanged."""
    x = np.stack([normalise_channel(case.sequence(s)) for s in ("t2w", "hbv", "adc")])
    return torch.from_numpy(x), labels


def stack_pretrain_volume(case, labels: torch.Tensor, slice_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-training volume of a 2.5D model: T2W z-scored inside the gland (fallback body), slices resized to
    [D, S, S] bilinearly; ``labels`` [D, S, S] resized by nearest neighbour."""
    mask = case.gland if case.gland.sum() > 1 else case.body
    vol = _resize_slices(torch.from_numpy(normalise_channel(case.t2w, mask)), int(slice_size))
    lab = _resize_slices(labels.float(), int(slice_size), mode="nearest").long()
    return vol, lab


def stack_pretrain_item(case_id: str, k: int, x: torch.Tensor, labels: torch.Tensor, slice_step: int) -> dict:
    """Stack ``k`` of a prepared volume: ``x`` [3, S, S] (slices c-step, c, c+step), ``pos`` [2] (k, D'),
    ``labels`` [S, S] of the centre slice c, ``case_id``."""
    d = x.shape[0]
    trip = slice_triplets(d, slice_step)  # [D', 3] (edge windows shifted inward)
    centre = int(slice_centres(d, slice_step)[k])  # the slice stack k stands for
    pos = torch.tensor([float(k), float(len(trip))], dtype=torch.float32)
    return {"x": x[trip[k]].contiguous(), "pos": pos, "labels": labels[centre], "case_id": case_id}
