"""Model input views: a :class:`~transferlimits.data.tasks.TaskSample` or a pre-training case as tensors.

Two view kinds exist; each model adapter (``transferlimits.models.adapters``) picks one:

* channel view (3D, ProFound-like): ``x`` [3, D, H, W], the task's ``channel_inputs`` in ``SEQUENCES`` order
  (t2w, hbv, adc), each z-scored over its non-zero voxels (:func:`normalise_channel`); ``""`` = zero channel;
* stack view (2.5D, ProViCNet-like): the task's ``single_input`` z-scored inside the gland mask (fallback
  body, then whole volume), axial slices resized bilinearly to ``slice_size`` and stacked as 3 adjacent
  slices (i-1, i, i+1; windows at the edges shifted inward), with the slice position tokens
  ``pos = (slice index, slice count)``.

Both views carry the SAME target ``y`` on the 3D (D, H, W) grid (or the case label), so all models are
trained and evaluated at the volume level; a 2.5D model's per-slice outputs are re-stacked to 3D before
the loss/metric. Regression targets are divided by a per-case reference ``scale`` = the 99th percentile
of the target inside the body mask (fallback: whole volume), so metrics are comparable across cases and
models; ``scale`` is kept in the item so predictions can be mapped back to physical units. The
pre-training counterparts (:func:`channel_pretrain_volume`, :func:`stack_pretrain_volume`,
:func:`stack_pretrain_item`) apply the same normalisation to a whole case.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from transferlimits.data.tasks import TaskSample, TaskSpec

__all__ = ["normalise_channel", "target_scale", "target_tensor", "channel_view", "stack_view", "slice_triplets",
           "slice_centres", "channel_pretrain_volume", "stack_pretrain_volume", "stack_pretrain_item"]


def normalise_channel(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """z-score of ``x`` over ``mask`` (default: the non-zero voxels); an empty/constant input gives zeros."""
    x = np.asarray(x, np.float32)
    sel = (x != 0) if mask is None else (np.asarray(mask) > 0)
    if not sel.any():
        return np.zeros_like(x)
    vals = x[sel]
    std = float(vals.std())
    if std < 1e-8:
        return np.zeros_like(x)
    return ((x - float(vals.mean())) / std).astype(np.float32)


def target_scale(sample: TaskSample, spec: TaskSpec) -> float:
    """Per-case reference scale of the target (1.0 unless ``spec.kind == "regression"``)."""
    if spec.kind != "regression":
        return 1.0
    t = np.asarray(sample.target, np.float32)
    body = sample.masks.get("body")
    vals = t[body > 0] if body is not None and (body > 0).any() else t.ravel()
    scale = float(np.percentile(vals, 99)) if vals.size else 1.0
    return scale if scale > 1e-6 else 1.0


def target_tensor(sample: TaskSample, spec: TaskSpec, scale: float) -> torch.Tensor:
    """``y`` of both views: int64 class / label map, float32 scaled volume or scalar."""
    if spec.kind == "classification":
        return torch.tensor(int(sample.target), dtype=torch.int64)
    if spec.kind == "segmentation":
        return torch.from_numpy(np.asarray(sample.target, np.int64))
    if spec.kind == "scalar_regression":
        return torch.tensor(float(sample.target), dtype=torch.float32)
    return torch.from_numpy(np.asarray(sample.target, np.float32) / np.float32(scale))


def _common(sample: TaskSample, spec: TaskSpec) -> dict:
    scale = target_scale(sample, spec)
    return {
        "y": target_tensor(sample, spec, scale),
        "masks": {k: torch.from_numpy(np.asarray(v, np.uint8)) for k, v in sample.masks.items()},
        "case_id": sample.case_id,
        "scale": float(scale),
    }


def _input(sample: TaskSample, name: str) -> np.ndarray:
    if name not in sample.inputs:
        raise ValueError(f"case {sample.case_id}: input {name!r} missing; available: {sorted(sample.inputs)}")
    return sample.inputs[name]


def channel_view(sample: TaskSample, spec: TaskSpec) -> dict:
    """3D view: ``x`` float32 [3, D, H, W] (``spec.channel_inputs``), ``y``, ``masks``, ``case_id``, ``scale``."""
    shape = next(iter(sample.inputs.values())).shape
    chans = [normalise_channel(_input(sample, n)) if n else np.zeros(shape, np.float32)
             for n in spec.channel_inputs]
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
    vol = np.asarray(_input(sample, spec.single_input), np.float32)
    mask = None
    for name in ("gland", "body"):
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
