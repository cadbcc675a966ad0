"""Data side of pre-training: the pre-training pool as an infinite, seeded, resumable batch stream,
and the call convention of the four objective modules.

The batch of step ``s`` is a pure function of ``(seed, s)``: sample positions ``s*B .. s*B+B-1`` are
read from per-epoch permutations drawn with ``torch.Generator().manual_seed(seed * 1_000_003 + epoch)``.
Resuming at step ``k`` therefore needs no sampler state in the checkpoint.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from transferlimits.config import Profile
from transferlimits.data import cohort as cohort_mod
from transferlimits.models.registry import get_model
from transferlimits.training.loop import maybe_channels_last

__all__ = ["StepBatchSampler", "load_pretrain_pool", "build_pretrain_loader", "forward_objective"]


class StepBatchSampler(Sampler[list[int]]):
    """Index batches for steps ``start_step .. total_steps - 1`` of an infinite shuffled stream.

    Args:
        n_items: dataset length (>= 1).
        batch_size: items per batch (>= 1).
        seed: stream seed.
        start_step: first step to yield (for resume; default 0).
        total_steps: one past the last step to yield.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int, start_step: int, total_steps: int) -> None:
        if n_items < 1:
            raise ValueError(f"the pre-training pool is empty (n_items={n_items})")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.b, self.seed = int(n_items), int(batch_size), int(seed)
        self.start, self.total = int(start_step), int(total_steps)
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=gen), epoch
        return self._perm

    def batch(self, step: int) -> list[int]:
        """The item indices of ``step``."""
        first = step * self.b
        return [int(self._permutation(p // self.n)[p % self.n]) for p in range(first, first + self.b)]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.total):
            yield self.batch(step)

    def __len__(self) -> int:
        return max(0, self.total - self.start)


def load_pretrain_pool(profile: Profile, model: str) -> Dataset:
    """The pre-training pool of ``profile`` in ``model``'s view (items: dicts ``x``, ``pos``, ``labels``).

    Opens the built cohort, building it only when it is missing or stale (``cohort.open_cohort``).
    """
    cohort = cohort_mod.open_cohort(profile)
    return cohort_mod.pretrain_dataset(cohort, model, profile.slice_size)


def build_pretrain_loader(
    dataset: Dataset, batch_size: int, seed: int, start_step: int, total_steps: int, device: torch.device
) -> tuple[DataLoader, int]:
    """A DataLoader over the pool (:func:`load_pretrain_pool`) yielding the batches of steps
    ``start_step .. total_steps - 1``.

    ``num_workers=0`` on CPU (bit-exact resume); 4 workers and pinned memory on CUDA.

    Returns:
        ``(loader, number of items in the pool)``.
    """
    sampler = StepBatchSampler(len(dataset), batch_size, seed, start_step, total_steps)
    cuda = torch.device(device).type == "cuda"
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=4 if cuda else 0,
        pin_memory=cuda,
        persistent_workers=False,
        # an explicit generator keeps the loader from drawing on the global RNG (exact resume)
        generator=torch.Generator().manual_seed(int(seed)),
    )
    return loader, len(dataset)


def forward_objective(
    module: torch.nn.Module, model: str, objective: str, batch: dict[str, Any], device: torch.device, ndim: int
) -> Any:
    """Call an objective module with the arguments its contract expects.

    The model adapter's ``pretrain_keys`` come first (``x``, or ``x, pos`` for 2.5D models); an objective that
    declares ``uses_labels`` (``ObjectiveInfo``, e.g. both contrastive objectives) adds ``labels``:
    ``module(x[, pos][, labels])``. Returns the module's output (``loss`` first).

    Raises:
        ValueError: unknown model, or an objective the model does not declare.
        KeyError: the batch lacks a field the objective needs (named in the message).
    """
    adapter = get_model(model)
    needed = list(adapter.pretrain_keys) + (["labels"] if adapter.objective_info(objective).uses_labels else [])
    missing = [k for k in needed if k not in batch]
    if missing:
        raise KeyError(f"pre-training batch lacks {missing} needed by {model}/{objective}; has {sorted(batch)}")
    args = [batch[k].to(device, non_blocking=True) for k in needed]
    args[0] = maybe_channels_last(args[0], device, ndim)
    return module(*args)
