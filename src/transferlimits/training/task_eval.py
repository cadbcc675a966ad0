"""Per-task batching, losses and evaluation used by :mod:`transferlimits.training.finetune`.

Targets per task kind: classification ``y`` int [B]; segmentation ``y`` {0,1} [B, D, H, W] (logits
[B, 1, D, H, W]); regression ``y`` float [B, D, H, W] (prediction [B, 1, D, H, W]); scalar regression
``y`` float [B]. Scores come from :mod:`transferlimits.metrics.tasks`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["collate", "to_device", "is_dense", "task_loss", "evaluate", "AUX_WEIGHT"]

#: Weight of the UperNet auxiliary head's loss (ProFound: main + 0.4 x aux).
AUX_WEIGHT = 0.4


def is_dense(spec: Any) -> bool:
    """True for tasks with a voxel-wise target (segmentation, regression)."""
    return spec.kind in ("segmentation", "regression")


def collate(items: list[dict]) -> dict:
    """Stack dataset items: arrays/tensors/numbers -> tensors, strings -> lists, dicts recursively."""
    first = items[0]
    out: dict = {}
    for key, value in first.items():
        vals = [it[key] for it in items]
        if isinstance(value, dict):
            out[key] = collate(vals)
        elif isinstance(value, (Tensor, np.ndarray)):
            out[key] = torch.stack([torch.as_tensor(v) for v in vals])
        elif isinstance(value, (bool, int, float, np.number)):
            out[key] = torch.as_tensor(np.asarray(vals))
        else:
            out[key] = vals
    return out


def to_device(batch: dict, device: torch.device) -> dict:
    """Move every tensor of a (nested) batch to ``device``; floating tensors become float32."""
    out: dict = {}
    for k, v in batch.items():
        if isinstance(v, dict):
            out[k] = to_device(v, device)
        elif isinstance(v, Tensor):
            v = v.float() if v.is_floating_point() else v
            out[k] = v.to(device)
        else:
            out[k] = v
    return out


def _dense_loss(spec: Any, pred: Tensor, batch: dict) -> Tensor:
    y = batch["y"].float().unsqueeze(1)
    if spec.kind == "segmentation":
        from monai.losses import DiceCELoss

        return DiceCELoss(sigmoid=True)(pred.float(), y)
    body = batch.get("masks", {}).get("body") if isinstance(batch.get("masks"), dict) else None
    err = (pred.float() - y).abs()
    if body is None:
        return err.mean()
    w = (body > 0).float().unsqueeze(1)
    return (err * w).sum() / w.sum().clamp_min(1.0)


def task_loss(spec: Any, out: Tensor | tuple[Tensor, Tensor], batch: dict) -> Tensor:
    """The training loss of one batch (see the module docstring of ``finetune`` for the choices)."""
    if spec.kind == "classification":
        return F.cross_entropy(out.float(), batch["y"].long())
    if spec.kind == "scalar_regression":
        return F.mse_loss(out.float(), batch["y"].float())
    if isinstance(out, tuple):
        main, aux = out
        return _dense_loss(spec, main, batch) + AUX_WEIGHT * _dense_loss(spec, aux, batch)
    return _dense_loss(spec, out, batch)


def _scalar_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    err = pred - target
    r = float(np.corrcoef(pred, target)[0, 1]) if len(pred) > 1 and pred.std() > 0 and target.std() > 0 else float("nan")
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())), "pearson_r": r}


def _wanted(metric: str, spec: Any, fast: bool) -> bool:
    """Compute an expensive secondary metric (SSIM, HD95)? Not in fast per-epoch validation, unless primary."""
    return not fast or spec.primary_metric == metric


@torch.no_grad()
def evaluate(model: nn.Module, ds, spec: Any, device: torch.device, batch_size: int = 4,
             spacing: Sequence[float] | None = None, n_examples: int = 0, fast: bool = False
             ) -> tuple[dict[str, float], list[dict[str, Any]], dict[str, np.ndarray], float]:
    """Score ``model`` on a dataset.

    Args:
        model: task model (put in eval mode here). ds: task dataset. spec: TaskSpec. device: torch device.
        batch_size: inference batch size (default 4).
        spacing: (z, y, x) mm for distance metrics (default: the item's ``spacing`` or 1 mm).
        n_examples: cases whose input/target/prediction slice goes into ``examples`` (default 0).
        fast: skip expensive secondary metrics (SSIM, HD95) when the metric functions offer a switch
            (per-epoch validation only needs the primary metric). Default False.

    Returns:
        ``(aggregated scores, per-case score dicts, examples, mean loss)``.
    """
    from torch.utils.data import DataLoader

    from transferlimits.metrics import tasks as mt
    from transferlimits.training.loop import autocast_context

    model.eval()
    losses, per_case, probs, labels, preds, targets, ids = [], [], [], [], [], [], []
    ex: dict[str, list] = {"input": [], "target": [], "pred": []}
    for batch in DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate):
        batch = to_device(batch, device)
        with autocast_context(device):
            out = model(batch["x"], batch.get("pos"))
        out = out.float()
        losses.append(float(task_loss(spec, out, batch)) * len(batch["y"]))
        case_ids = batch.get("case_id", [str(len(ids) + i) for i in range(len(batch["y"]))])
        ids.extend(case_ids)
        if spec.kind == "classification":
            probs.append(out.softmax(1).cpu().numpy())
            labels.append(batch["y"].cpu().numpy())
            continue
        if spec.kind == "scalar_regression":
            preds.append(out.cpu().numpy())
            targets.append(batch["y"].cpu().numpy())
            continue
        vol = (out.sigmoid() if spec.kind == "segmentation" else out)[:, 0].cpu().numpy()
        y = batch["y"].cpu().numpy()
        masks = {k: v.cpu().numpy() for k, v in batch.get("masks", {}).items()}
        for i, cid in enumerate(case_ids):
            if spec.kind == "segmentation":
                sp = spacing or (batch["spacing"][i].tolist() if "spacing" in batch else (1.0, 1.0, 1.0))
                s = mt.segmentation_scores(vol[i], y[i], tuple(sp), hd95=_wanted("hd95", spec, fast))
            else:
                s = mt.restoration_scores(vol[i], y[i], {k: m[i] for k, m in masks.items()},
                                          ssim=_wanted("ssim", spec, fast))
            per_case.append({"case_id": str(cid), **{k: float(v) for k, v in s.items()}})
            if len(ex["pred"]) < n_examples:
                area = (y[i] > 0).reshape(y[i].shape[0], -1).sum(1)
                k = int(area.argmax()) if spec.kind == "segmentation" and area.any() else y[i].shape[0] // 2
                x = batch["x"][i].float().cpu().numpy()
                ex["input"].append(x[0, k] if x.shape[0] == 3 else x[k, 1])  # volume [3,D,H,W] / stack [D,3,S,S]
                ex["target"].append(y[i][k].astype(np.float32))
                ex["pred"].append(vol[i][k].astype(np.float32))
    n = max(1, len(ids))
    mean_loss = float(np.sum(losses) / n)
    if spec.kind == "classification":
        p, lab = np.concatenate(probs), np.concatenate(labels)
        scores = {k: float(v) for k, v in mt.classification_scores(p, lab).items()}
        per_case = [{"case_id": str(c), "label": int(l), "probs": [float(v) for v in pr]}
                    for c, l, pr in zip(ids, lab, p)]
        examples = {"probs": p, "labels": lab, "case_ids": np.asarray(ids)}
        return scores, per_case, (examples if n_examples else {}), mean_loss
    if spec.kind == "scalar_regression":
        p, t = np.concatenate(preds), np.concatenate(targets)
        per_case = [{"case_id": str(c), "pred": float(a), "target": float(b)} for c, a, b in zip(ids, p, t)]
        examples = {"pred": p.astype(np.float32), "target": t.astype(np.float32), "case_ids": np.asarray(ids)}
        return _scalar_scores(p, t), per_case, (examples if n_examples else {}), mean_loss
    agg = mt.aggregate([{k: v for k, v in d.items() if k != "case_id"} for d in per_case])
    examples = {k: np.stack(v) for k, v in ex.items() if v}
    if examples:
        examples["case_ids"] = np.asarray([d["case_id"] for d in per_case[: len(ex["pred"])]])
    return {k: float(v) for k, v in agg.items()}, per_case, examples, mean_loss
