"""Linear references on a profile's cohort: how much of each dense task a closed-form linear model learns.

The scientific floor asks every fine-tuned point to beat its task's trivial baseline by a margin. When a point
does not, this script tells the two reasons apart: a task that even a linear model fitted in closed form on the
same training cases learns (then the networks lacked optimisation steps), or one that it does not (then the
margin asks for more than the data hold). Fitted on the ``train`` split, scored on ``test``, as the networks:

* super-resolution, distortion correction: the least-squares 3x3x3 linear filter of the degraded input
  (+ a constant), ridge 1e-3; PSNR with the study's definition (:func:`transferlimits.metrics.tasks.restoration_scores`)
  against the identity baseline's;
* segmentation: a logistic regression of the lesion label on the three channels at the voxel and their 3x3x3
  means (all lesion voxels and 200 000 background voxels of the training cases, weighted back to the true
  prior); Dice at probability 0.5 over test cases with a lesion, as the study scores it.

Writes ``--out`` (default ``results/<profile>/linear_references.json``; the runner publishes it with the run when
it sits there) and prints one line per task. Single-threaded; about a minute per task on the ``cpu`` cohort.

    .venv/bin/python benchmarks/linear_references.py --profile cpu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import uniform_filter
from sklearn.linear_model import LogisticRegression

from transferlimits import paths
from transferlimits.config import get_profile
from transferlimits.data.cohort import open_cohort, task_dataset
from transferlimits.metrics import tasks as mt
from transferlimits.runner.provenance import hardware_line
from transferlimits.runtime import atomic_write_json
from transferlimits.tasks import get_task

RESTORATION = {"super_resolution": 0, "distortion_correction": 1}  # task -> ProFound channel of its input


def _shifts(x: np.ndarray) -> np.ndarray:
    """[D*H*W, 28]: the 27 voxels of each 3x3x3 neighbourhood (edge-padded) and a constant."""
    p = np.pad(x, 1, mode="edge")
    d, h, w = x.shape
    cols = [p[a:a + d, b:b + h, c:c + w].ravel() for a in range(3) for b in range(3) for c in range(3)]
    return np.stack(cols + [np.ones(x.size, np.float32)], 1)


def restoration_reference(cohort, task: str) -> dict:
    ch, spec = RESTORATION[task], get_task(task)
    train, test = (task_dataset(cohort, task, s, "profound", 0) for s in ("train", "test"))
    a, b = 0.0, 0.0
    for i in range(len(train)):
        it = train[i]
        f = _shifts(it["x"][ch].numpy())
        a, b = a + f.T @ f, b + f.T @ it["y"].numpy().ravel()
    w = np.linalg.solve(a + 1e-3 * np.eye(len(a)), b)
    ident, lin = [], []
    for i in range(len(test)):
        it = test[i]
        x, y = it["x"][ch].numpy(), it["y"].numpy()
        masks = {k: np.asarray(v) for k, v in it["masks"].items()}
        ident.append(mt.restoration_scores(x, y, masks, ssim=False)[spec.primary_metric])
        lin.append(mt.restoration_scores((_shifts(x) @ w).reshape(y.shape), y, masks, ssim=False)[spec.primary_metric])
    gain = np.asarray(lin) - np.asarray(ident)
    return {"metric": spec.primary_metric, "identity": float(np.mean(ident)), "linear_filter": float(np.mean(lin)),
            "gain_mean": float(gain.mean()), "gain_sd": float(gain.std(ddof=1)), "n_test": len(test),
            "model": "least-squares 3x3x3 linear filter + constant, ridge 1e-3"}


def _voxel_features(x: np.ndarray) -> np.ndarray:
    """[D*H*W, 6]: the 3 channels at the voxel and their 3x3x3 means."""
    return np.concatenate([x.reshape(3, -1).T, np.stack([uniform_filter(c, 3, mode="nearest").ravel() for c in x], 1)], 1)


def segmentation_reference(cohort, n_background: int = 200_000, seed: int = 0) -> dict:
    train, test = (task_dataset(cohort, "segmentation", s, "profound", 0) for s in ("train", "test"))
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    for i in range(len(train)):
        it = train[i]
        feats.append(_voxel_features(it["x"].numpy()))
        labels.append(np.asarray(it["y"]).ravel() > 0)
    f, y = np.concatenate(feats), np.concatenate(labels)
    bg = np.flatnonzero(~y)
    keep = np.concatenate([np.flatnonzero(y), rng.choice(bg, min(n_background, bg.size), replace=False)])
    weight = np.where(y[keep], 1.0, bg.size / min(n_background, bg.size))  # back to the true prior
    clf = LogisticRegression(max_iter=2000).fit(f[keep], y[keep], sample_weight=weight)
    dice = []
    for i in range(len(test)):
        it = test[i]
        t = np.asarray(it["y"]) > 0
        if t.any():
            p = clf.predict_proba(_voxel_features(it["x"].numpy()))[:, 1].reshape(t.shape) > 0.5
            dice.append(2 * (p & t).sum() / (p.sum() + t.sum()))
    return {"metric": "dice", "empty_mask": 0.0, "logistic_voxel": float(np.mean(dice)), "n_lesion_cases": len(dice),
            "lesion_voxel_share_train": float(y.mean()),
            "model": "logistic regression on 3 channels + their 3x3x3 means, background re-weighted to its prior"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="JSON output (default results/<profile>/linear_references.json)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cohort = open_cohort(get_profile(args.profile))
    out: dict = {"profile": args.profile, "hardware": hardware_line(), "tasks": {}}
    for task in (*RESTORATION, "segmentation"):
        t0 = time.perf_counter()
        res = segmentation_reference(cohort) if task == "segmentation" else restoration_reference(cohort, task)
        res["seconds"] = time.perf_counter() - t0
        out["tasks"][task] = res
        print(task, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items() if k != "model"}, flush=True)
    path = args.out or paths.results_dir(args.profile) / "linear_references.json"
    atomic_write_json(path, out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
