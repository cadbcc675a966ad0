"""Tiny stand-in task datasets with the item layout of ``data.datasets.task_dataset`` (for fine-tuning tests).

Items: ``x`` (profound [3, D, H, W]; provicnet [D, 3, S, S]), ``pos`` (provicnet [D, 2]), ``y`` (class int,
binary lesion map or float volume on the (D, H, W) grid, or a float), ``masks`` (body, gland), ``case_id``,
``scale``. A weak signal ties ``x`` to ``y`` so training has something to learn.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

GRID = (16, 32, 32)
SLICE = 28


class TinyTaskDataset(Dataset):
    """``n`` random cases of one task kind in the view of ``model``."""

    def __init__(self, n: int, kind: str, model: str, seed: int = 0, grid=GRID, slice_size: int = SLICE,
                 nan: bool = False) -> None:
        rng = np.random.default_rng(seed)
        d, h, w = grid
        self.items = []
        for i in range(n):
            body = np.ones(grid, np.uint8)
            gland = np.zeros(grid, np.uint8)
            gland[d // 4: 3 * d // 4, h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
            vol = rng.normal(size=(3, d, h, w)).astype(np.float32)
            if kind == "classification":
                y = torch.tensor(i % 4)
                vol += 0.5 * (i % 4)
            elif kind == "segmentation":
                lesion = np.zeros(grid, np.int64)
                if i % 2:
                    lesion[d // 3: d // 2, h // 3: h // 2, w // 3: w // 2] = 1
                vol[0] += 2.0 * lesion
                y = torch.from_numpy(lesion)
            elif kind == "scalar_regression":
                y = torch.tensor(float(i % 3), dtype=torch.float32)
            else:
                y = torch.from_numpy(np.abs(vol[0]) / 3.0 + 0.1)
            x = torch.from_numpy(vol)
            if nan:
                x[:] = float("nan")
            item = {"y": y, "masks": {"body": torch.from_numpy(body), "gland": torch.from_numpy(gland)},
                    "case_id": f"case{seed}_{i}", "scale": 1.0}
            if model == "profound":
                item["x"] = x
            else:
                sl = F.interpolate(x.permute(1, 0, 2, 3), size=(slice_size, slice_size), mode="bilinear",
                                   align_corners=False)  # [D, 3, S, S]
                item["x"] = sl.contiguous()
                item["pos"] = torch.stack([torch.arange(d).float(), torch.full((d,), float(d))], 1)
            self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def tiny_splits(kind: str, model: str, n_train: int = 8, n_val: int = 4, n_test: int = 6, real: bool = False,
                grid=GRID, slice_size: int = SLICE):
    """train/val/test (+ 2 ``real`` cases) stand-in datasets."""
    kw = {"grid": grid, "slice_size": slice_size}
    data = {"train": TinyTaskDataset(n_train, kind, model, 0, **kw), "val": TinyTaskDataset(n_val, kind, model, 1, **kw),
            "test": TinyTaskDataset(n_test, kind, model, 2, **kw)}
    if real:
        data["real"] = TinyTaskDataset(2, kind, model, 3, **kw)
    return data
