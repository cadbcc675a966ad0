"""Torch datasets over a built :class:`~transferlimits.data.cohort.Cohort`: task pairs and pre-training items.

* :func:`task_dataset` - one item per case: the task's :class:`~transferlimits.data.tasks.TaskSample`
  through the model adapter's ``task_view`` (ProFound: x [3, D, H, W]; ProViCNet: x [D, 3, S, S] + pos
  [D, 2]), with y on the 3D grid for all models. The task degradation (EPI field ...) is seeded per
  (case, task, seed), so a case always gives the same pair for one seed.
* :func:`pretrain_dataset` - the pre-training pool through the adapter's
  ``pretrain_index`` / ``pretrain_prepare`` / ``pretrain_item`` (ProFound: whole crops x [3, D, H, W];
  ProViCNet: 2.5D T2W stacks x [3, S, S] with pos [2], one item per stack of every case). ``labels`` is the
  4-class map (0 background, 1 gland, 2 indolent / PI-RADS-only finding, 3 csPCa) on x's spatial grid.
  The real exams never enter it: they are the restoration tasks' external test set (STUDY §5, no leakage).
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset

from transferlimits.data.case import MRCase
from transferlimits.data.tasks import get_task
from transferlimits.data.views import target_units
from transferlimits.models.adapters.base import ViewSettings
from transferlimits.models.registry import get_model

__all__ = ["TaskDataset", "PretrainDataset", "task_dataset", "pretrain_dataset", "four_class_labels"]


def four_class_labels(case: MRCase) -> np.ndarray:
    """int64 [D, H, W]: 0 background, 1 gland, 2 indolent / PI-RADS-only lesion, 3 csPCa."""
    lab = (case.zones > 0).astype(np.int64)
    lab[case.lesion == 1] = 2
    lab[case.lesion == 2] = 3
    return lab


class _CaseSource:
    """Loads cases of a cohort by id, keeping up to ``cache_size`` of them in memory."""

    def __init__(self, cohort, cache_size: int) -> None:
        self.cohort = cohort
        self.load = lru_cache(maxsize=max(0, int(cache_size)))(cohort.case)


def _cache_size(cohort) -> int:
    voxels = int(np.prod(cohort.profile.grid.shape))
    return 4096 if voxels <= 2_000_000 // 8 else 8  # keep every case of small grids, a few of big ones


class TaskDataset(Dataset):
    """Task pairs of one split for one model (see :func:`task_dataset`)."""

    def __init__(self, cohort, task_name: str, split: str, model_name: str, seed: int = 0,
                 slice_size: int | None = None, max_cases: int = 0) -> None:
        self.adapter = get_model(model_name)
        self.spec = get_task(task_name)
        if split == "real" and self.spec.uses_labels:
            raise ValueError(f"split 'real' is only for tasks that need no labels; {task_name!r} uses labels")
        self.case_ids = cohort.case_ids(split)
        if max_cases < 0 or max_cases > len(self.case_ids):
            raise ValueError(f"max_cases={max_cases} for the {split!r} split of {task_name!r}: it holds "
                             f"{len(self.case_ids)} cases (0 = all of them)")
        if max_cases:
            self.case_ids = self.case_ids[:max_cases]
        self.model_name, self.seed = model_name, int(seed)
        self.settings = ViewSettings.from_profile(cohort.profile, slice_size)
        self._src = _CaseSource(cohort, _cache_size(cohort))
        # The degradation is a pure function of (case, task, seed), so the view of each case is made once and
        # reused every epoch (the EPI field and the resampling dominated the smoke fine-tuning time).
        # Items are collated into new tensors, so sharing them between epochs is safe.
        self._item = lru_cache(maxsize=_cache_size(cohort))(self._make_item)

    @property
    def slice_step(self) -> int:
        """Step of the 2.5D stack centres (the dense head of a 2.5D model interpolates back onto D)."""
        return self.settings.slice_step

    def __len__(self) -> int:
        return len(self.case_ids)

    def rng(self, case_id: str) -> np.random.Generator:
        """Generator of the degradation of one (case, task, seed)."""
        return np.random.default_rng(np.random.SeedSequence(
            [self.seed, zlib.crc32(case_id.encode()), zlib.crc32(self.spec.name.encode())]))

    def __getitem__(self, i: int) -> dict:
        return self._item(i)

    def sample(self, i: int):
        """The :class:`~transferlimits.tasks.registry.TaskSample` of item ``i`` (before the model's view)."""
        cid = self.case_ids[i]
        return self.spec.make_sample(self._src.load(cid), self.rng(cid))

    def identity_input(self, i: int) -> np.ndarray:
        """The task's input (``spec.single_input``, e.g. the degraded T2W) of item ``i`` on the target grid, in
        the target's units (``(input - offset) / scale``, :func:`~transferlimits.data.views.target_units`): the
        *identity* baseline's prediction of ``y`` [D, H, W] (for a same-modality restoration task, the model's
        z-scored input channel itself)."""
        sample = self.sample(i)
        vol = np.asarray(sample.inputs[self.spec.single_input], np.float32)
        offset, scale = target_units(sample, self.spec)
        return ((vol - np.float32(offset)) / np.float32(scale)).astype(np.float32)

    def _make_item(self, i: int) -> dict:
        return self.adapter.task_view(self.sample(i), self.spec, self.settings)


def task_dataset(cohort, task_name: str, split: str, model_name: str, seed: int = 0,
                 slice_size: int | None = None, max_cases: int = 0) -> TaskDataset:
    """Dataset of ``task_name`` pairs on ``split`` (pretrain/train/val/test, or ``real`` for restoration
    tasks) in the view of ``model_name``; ``slice_size`` defaults to the profile's; ``max_cases`` > 0 keeps the
    split's first that many cases (a label budget; ValueError beyond the split's size). Items: x, y, masks,
    case_id, scale (+ pos for 2.5D models)."""
    return TaskDataset(cohort, task_name, split, model_name, seed, slice_size, max_cases)


class PretrainDataset(Dataset):
    """Pre-training items (see :func:`pretrain_dataset`)."""

    def __init__(self, cohort, model_name: str, slice_size: int | None = None) -> None:
        self.adapter = get_model(model_name)
        self.model_name = model_name
        self.settings = ViewSettings.from_profile(cohort.profile, slice_size)
        self.case_ids = cohort.case_ids("pretrain")
        leaked = sorted(set(self.case_ids) & set(cohort.case_ids("real")))
        if leaked:
            raise ValueError(f"the pre-training pool of profile {cohort.profile.name!r} holds real exams {leaked}: "
                             "they are the external test set and must never be pre-trained on")
        self._src = _CaseSource(cohort, _cache_size(cohort))
        depth = int(cohort.profile.grid.shape[0])
        self.index = self.adapter.pretrain_index(self.case_ids, depth, self.settings)
        self._prepared = lru_cache(maxsize=_cache_size(cohort))(self._prepare)

    def __len__(self) -> int:
        return len(self.index)

    def _prepare(self, case_id: str) -> tuple[torch.Tensor, torch.Tensor]:
        case = self._src.load(case_id)
        return self.adapter.pretrain_prepare(case, torch.from_numpy(four_class_labels(case)), self.settings)

    def __getitem__(self, i: int) -> dict:
        cid, key = self.index[i]
        x, labels = self._prepared(cid)
        return self.adapter.pretrain_item(cid, key, x, labels, self.settings)


def pretrain_dataset(cohort, model_name: str, slice_size: int | None = None,
                     include_real: bool = False) -> PretrainDataset:
    """Pre-training pool of ``cohort`` for ``model_name``: the ``pretrain`` split only (never the real exams).

    Args:
        cohort: a built cohort. model_name: a registered model. slice_size: 2.5D slice size (profile's default).
        include_real: kept for old callers; only ``False`` is accepted (the real exams are a test set).

    Raises:
        ValueError: ``include_real=True``, or the split holds a real exam (the message names it).
    """
    if include_real:
        raise ValueError("include_real=True is not allowed: the real exams are the restoration tasks' external "
                         "test set and never enter pre-training (STUDY §5)")
    return PretrainDataset(cohort, model_name, slice_size)
