"""Torch datasets over a built :class:`~transferlimits.data.cohort.Cohort`: task pairs and pre-training items.

* :func:`task_dataset` - one item per case: the task's :class:`~transferlimits.data.tasks.TaskSample`
  through the model's view (``profound``: x [3, D, H, W]; ``provicnet``: x [D, 3, S, S] + pos [D, 2]),
  with y on the 3D grid for both. The task degradation (EPI field ...) is seeded per (case, task, seed),
  so a case always gives the same pair for one seed.
* :func:`pretrain_dataset` - the pre-training pool (+ the real exams by default): ``profound`` items are
  whole crops x [3, D, H, W] (t2w, hbv, adc); ``provicnet`` items are 2.5D T2W slices x [3, S, S] with pos
  [2], one item per slice of every case. ``labels`` is the 4-class map (0 background, 1 gland,
  2 indolent / PI-RADS-only finding, 3 csPCa) on x's spatial grid.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from transferlimits.config import MODELS
from transferlimits.data.case import MRCase
from transferlimits.data.tasks import get_task
from transferlimits.data.views import normalise_channel, profound_view, provicnet_view, slice_centres, slice_triplets

__all__ = ["TaskDataset", "PretrainDataset", "task_dataset", "pretrain_dataset", "four_class_labels"]


def _check_model(model_name: str) -> None:
    if model_name not in MODELS:
        raise ValueError(f"unknown model {model_name!r}; valid: {list(MODELS)}")


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
                 slice_size: int | None = None) -> None:
        _check_model(model_name)
        self.spec = get_task(task_name)
        if split == "real" and self.spec.uses_labels:
            raise ValueError(f"split 'real' is only for tasks that need no labels; {task_name!r} uses labels")
        self.case_ids = cohort.case_ids(split)
        self.model_name, self.seed = model_name, int(seed)
        self.slice_size = int(slice_size or cohort.profile.slice_size)
        self.slice_step = int(getattr(cohort.profile, "provicnet_slice_step", 1))
        self._src = _CaseSource(cohort, _cache_size(cohort))
        # The degradation is a pure function of (case, task, seed), so the view of each case is made once and
        # reused every epoch (the EPI field and the resampling dominated the smoke fine-tuning time).
        # Items are collated into new tensors, so sharing them between epochs is safe.
        self._item = lru_cache(maxsize=_cache_size(cohort))(self._make_item)

    def __len__(self) -> int:
        return len(self.case_ids)

    def rng(self, case_id: str) -> np.random.Generator:
        """Generator of the degradation of one (case, task, seed)."""
        return np.random.default_rng(np.random.SeedSequence(
            [self.seed, zlib.crc32(case_id.encode()), zlib.crc32(self.spec.name.encode())]))

    def __getitem__(self, i: int) -> dict:
        return self._item(i)

    def _make_item(self, i: int) -> dict:
        cid = self.case_ids[i]
        sample = self.spec.make_sample(self._src.load(cid), self.rng(cid))
        if self.model_name == "profound":
            return profound_view(sample, self.spec)
        return provicnet_view(sample, self.spec, self.slice_size, self.slice_step)


def task_dataset(cohort, task_name: str, split: str, model_name: str, seed: int = 0,
                 slice_size: int | None = None) -> TaskDataset:
    """Dataset of ``task_name`` pairs on ``split`` (pretrain/train/val/test, or ``real`` for restoration
    tasks) in the view of ``model_name``; ``slice_size`` defaults to the profile's. Items: x, y, masks,
    case_id, scale (+ pos for provicnet)."""
    return TaskDataset(cohort, task_name, split, model_name, seed, slice_size)


class PretrainDataset(Dataset):
    """Pre-training items (see :func:`pretrain_dataset`)."""

    def __init__(self, cohort, model_name: str, slice_size: int | None = None, include_real: bool = True) -> None:
        _check_model(model_name)
        self.model_name = model_name
        self.slice_size = int(slice_size or cohort.profile.slice_size)
        self.case_ids = cohort.case_ids("pretrain") + (cohort.case_ids("real") if include_real else [])
        self._src = _CaseSource(cohort, _cache_size(cohort))
        depth = int(cohort.profile.grid.shape[0])
        self.slice_step = int(getattr(cohort.profile, "provicnet_slice_step", 1))
        self.index = ([(c, None) for c in self.case_ids] if model_name == "profound"
                      else [(c, j) for c in self.case_ids for j in range(len(slice_centres(depth, self.slice_step)))])
        self._prepared = lru_cache(maxsize=_cache_size(cohort))(self._prepare)

    def __len__(self) -> int:
        return len(self.index)

    def _prepare(self, case_id: str) -> tuple[torch.Tensor, torch.Tensor]:
        case = self._src.load(case_id)
        labels = torch.from_numpy(four_class_labels(case))
        if self.model_name == "profound":
            x = np.stack([normalise_channel(case.sequence(s)) for s in ("t2w", "hbv", "adc")])
            return torch.from_numpy(x), labels
        mask = case.gland if case.gland.sum() > 1 else case.body
        vol = torch.from_numpy(normalise_channel(case.t2w, mask))[:, None]
        s = (self.slice_size, self.slice_size)
        vol = F.interpolate(vol, size=s, mode="bilinear", align_corners=False)[:, 0]
        lab = F.interpolate(labels[:, None].float(), size=s, mode="nearest")[:, 0].long()
        return vol, lab

    def __getitem__(self, i: int) -> dict:
        cid, k = self.index[i]
        x, labels = self._prepared(cid)
        if k is None:
            return {"x": x, "labels": labels, "case_id": cid}
        d = x.shape[0]
        trip = slice_triplets(d, self.slice_step)  # [D', 3] (edge windows shifted inward)
        centre = int(slice_centres(d, self.slice_step)[k])  # the slice stack k stands for
        pos = torch.tensor([float(k), float(len(trip))], dtype=torch.float32)
        return {"x": x[trip[k]].contiguous(), "pos": pos, "labels": labels[centre], "case_id": cid}


def pretrain_dataset(cohort, model_name: str, slice_size: int | None = None, include_real: bool = True) -> PretrainDataset:
    """Pre-training pool of ``cohort`` (+ the real exams when ``include_real``, STUDY §3) for ``model_name``."""
    return PretrainDataset(cohort, model_name, slice_size, include_real)
