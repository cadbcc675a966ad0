"""Light, seeded fine-tuning augmentation applied to a collated batch (STUDY §4).

Two transforms, the same for pretrained and scratch runs of one encoder:

* a random left-right flip (the W axis, as ProFound's training transform) applied identically to the
  input, a dense target and the masks of each case;
* a random intensity scale (1 ± 0.1) and shift (± 0.1) of the input (ProFound's
  ``RandScaleIntensity`` / ``RandShiftIntensity`` with factor 0.1), one draw per case and channel; for a
  target expressed in its input's units (super-resolution, distortion correction: ``target_follows_input``)
  one draw per case moves the input channels and the target together, so the task stays well posed (an
  input-only intensity change would be a random target error larger than the degradation itself).

Rotation, zoom, bias field and smoothing of the upstream recipe are left out at these crop sizes (the
book states it). Randomness comes from the ``torch.Generator`` passed in, so runs are reproducible.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["augment_batch"]


def _flip_w(t: Tensor, flip: Tensor) -> Tensor:
    """Flip the last axis of the cases where ``flip`` [B] is True."""
    if not bool(flip.any()):
        return t
    view = flip.view(-1, *([1] * (t.ndim - 1)))
    return torch.where(view, t.flip(-1), t)


def augment_batch(batch: dict, generator: torch.Generator, dense_target: bool, flip_p: float = 0.5,
                  scale: float = 0.1, shift: float = 0.1, target_follows_input: bool = False) -> dict:
    """Augment one collated batch (returns a new dict; the input is not modified).

    Args:
        batch: ``{"x": [B, 3, D, H, W] or [B, D, 3, S, S] (with ``"pos"``), "y": [B, ...], "masks": {name:
            [B, D, H, W]}, ...}``. The W axis is the last axis of every array; a batch with ``"pos"`` is a
            slice stack (channels on axis 2).
        generator: CPU ``torch.Generator`` that draws the random numbers.
        dense_target: True when ``y`` is a volume that must be flipped with ``x``.
        flip_p: probability of the left-right flip per case (default 0.5).
        scale: intensity scale factor range, ``x * (1 + U(-scale, scale))`` (default 0.1).
        shift: intensity shift range, ``x + U(-shift, shift)`` (default 0.1).
        target_follows_input: apply one intensity draw per case to every input channel AND to the dense
            target ``y`` [B, D, H, W] (a target in the input's units). Default False (input only).

    Raises:
        ValueError: ``flip_p`` outside [0, 1] or a negative ``scale``/``shift``.
    """
    if not 0.0 <= flip_p <= 1.0 or scale < 0 or shift < 0:
        raise ValueError(f"need 0 <= flip_p <= 1 and scale, shift >= 0; got {flip_p}, {scale}, {shift}")
    out = dict(batch)
    x = batch["x"]
    b = x.shape[0]
    flip = torch.rand(b, generator=generator) < flip_p
    channel_axis = 2 if batch.get("pos") is not None else 1  # slices [B, D, 3, S, S] / volume [B, 3, D, H, W]
    shape = [b] + [1] * (x.ndim - 1)
    if not target_follows_input:
        shape[channel_axis] = 3
    s = 1.0 + (torch.rand(shape, generator=generator) * 2 - 1) * scale
    o = (torch.rand(shape, generator=generator) * 2 - 1) * shift
    x = _flip_w(x, flip.to(x.device))
    out["x"] = x * s.to(x.device, x.dtype) + o.to(x.device, x.dtype)
    if dense_target and isinstance(batch.get("y"), Tensor) and batch["y"].ndim >= 3:
        y = _flip_w(batch["y"], flip.to(batch["y"].device))
        if target_follows_input:
            y_shape = [b] + [1] * (y.ndim - 1)
            y = y * s.reshape(y_shape).to(y.device, y.dtype) + o.reshape(y_shape).to(y.device, y.dtype)
        out["y"] = y
    if isinstance(batch.get("masks"), dict):
        out["masks"] = {k: _flip_w(v, flip.to(v.device)) for k, v in batch["masks"].items()}
    return out
