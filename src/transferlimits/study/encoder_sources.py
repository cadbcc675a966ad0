"""Where a point's "pretrained" encoder comes from: one object per objective kind (STUDY §5.1 "Controls").

=============  ==================================================================================================
kind           the encoder fine-tuned as ``pretrained`` (with the pretrained recipe: reduced backbone lr)
=============  ==================================================================================================
native         the model's native pre-training (``results/<p>/pretrain/<model>__<native objective>/encoder.pt``)
swapped        the model's other objective (the 2x2 control, H6)
native_short   the native objective at a shorter pre-training length: the same run's encoder after
               ``PretrainRecipe.short_fraction`` of its steps (``encoder_short.pt`` beside ``encoder.pt``)
random         **negative control**: a second random initialisation (seed ``RANDOM_SEED``), presented as pretrained
transfusion    **negative control** (Raghu et al. 2019, "Transfusion", Mean Var Init): every tensor of the native
               encoder replaced by i.i.d. Gaussian values with that tensor's mean and SD -- weight scaling kept,
               features not; it separates feature reuse from the pretrained weights' scale
positive       **positive control**: an encoder that already learned the task -- the scratch encoder trained on the
               task's own targets on the pre-training pool (never on the train/val/test cases of the point); a
               task with a ``positive_prelude`` (classification: segmentation) starts from that task's positive
               control instead and trains on its own targets with the pretrained recipe
=============  ==================================================================================================

The controls' encoders are written once per (profile, model[, task]) as ``encoder.pt`` files in the format of a
pre-training run (:func:`transferlimits.training.pretrain_record.load_pretrained_encoder` reads them), beside the
pre-trainings, so that a point hashes and resumes on them as on any pre-trained encoder. Each is deterministic
(fixed seeds) and written atomically; an existing file is reused -- a positive control's only while the key in its
``positive.json`` (written after the encoder: code fingerprint, cohort, resolved profile; :func:`positive_key`) still
matches, so a changed task (e.g. another degradation) re-trains it instead of reusing one trained on the old task.
Two jobs that need the same control at once (a prelude is shared: the classification and segmentation pairs both
need segmentation's) make it once: the second waits on a lock in its folder, then reuses the file.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from transferlimits import paths
from transferlimits.config import Profile, profile_to_dict
from transferlimits.data.cohort import open_cohort, task_dataset
from transferlimits.models.registry import get_model
from transferlimits.runtime import atomic_save_torch, atomic_write_json
from transferlimits.study.resume import code_fingerprint, file_sha256_or_none
from transferlimits.study.runs import scratch_encoder
from transferlimits.tasks import get_task
from transferlimits.training.finetune import finetune
from transferlimits.training.pretrain_record import SHORT_ENCODER_FILE, load_pretrained_encoder

__all__ = ["EncoderSource", "ENCODER_SOURCES", "CONTROL_KINDS", "EXTRA_KINDS", "encoder_source", "transfusion_state",
           "RANDOM_SEED", "POSITIVE_POOL_CASES", "POSITIVE_EPOCH_FACTOR", "positive_key", "positive_epochs"]

#: seed of the ``random`` control's initialisation (the scratch runs use the point's seed, 0-2)
RANDOM_SEED = 10_007
#: pre-training-pool cases the positive control trains on, and its epochs as a multiple of the task's recipe: it
#: must have learned the task better than a downstream scratch run can (measured on classification / ProFound in
#: the cpu profile: 128 cases x 1 recipe gave val AUROC 0.78 and a paired gain of +0.019 +- 0.033, not detected)
POSITIVE_POOL_CASES = 256
POSITIVE_EPOCH_FACTOR = 3


@dataclass(frozen=True)
class EncoderSource:
    """One objective kind: how its encoder file is named and made.

    Attributes:
        kind: the objective kind (``PointKey.objective``). role: "objective", "negative control" or "positive
            control". description: one line for the book.
    """

    kind: str
    role: str
    description: str

    def objective_name(self, model: str) -> str:
        """The name written as the point's ``objective_name`` (a pre-training objective, or the control's kind)."""
        adapter = get_model(model)
        if self.kind in ("native", "native_short"):
            return adapter.native_objective
        if self.kind == "swapped":
            return adapter.swapped_objective
        return self.kind

    def folder(self, prof: Profile, model: str, task: str) -> Path:
        """The folder of the encoder file (the pre-training's for native / native_short / swapped)."""
        if self.kind in ("native", "native_short", "swapped"):
            return paths.pretrain_dir(prof.name, model, self.objective_name(model))
        suffix = f"__{task}" if self.kind == "positive" else ""
        return paths.results_dir(prof.name) / "pretrain" / f"{model}__{self.kind}{suffix}"

    def encoder_file(self, prof: Profile, model: str, task: str, device: Any = "cpu", progress: bool = False) -> Path:
        """The ``encoder.pt`` of this source, made first where it is a control and missing.

        Raises:
            FileNotFoundError: native / swapped pre-training missing (the point's loader says how to make it), or the
                native pre-training was made without ``short_fraction`` (native_short).
        """
        if self.kind == "native_short":
            path = self.folder(prof, model, task) / SHORT_ENCODER_FILE
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: no native_short encoder; it is written by the native pre-training when the profile's "
                    f"pretrain.short_fraction > 0 (now {prof.pretrain.short_fraction}): set it and pre-train again")
            return path
        path = self.folder(prof, model, task) / "encoder.pt"
        if self.kind in ("native", "swapped") or self._current(path, prof, model, task):
            return path
        with _folder_lock(path.parent):  # another job may be making it: wait, then reuse what it made
            if self._current(path, prof, model, task):
                return path
            return self._make(path, prof, model, task, device, progress)

    def _current(self, path: Path, prof: Profile, model: str, task: str) -> bool:
        return path.is_file() and (self.kind != "positive"
                                   or _recorded_key(path.parent) == positive_key(prof, model, task))

    def _make(self, path: Path, prof: Profile, model: str, task: str, device: Any, progress: bool) -> Path:
        native = ENCODER_SOURCES["native"].folder(prof, model, task) / "encoder.pt"
        encoder, meta = load_pretrained_encoder(native, "cpu")  # the architecture (and, for transfusion, statistics)
        if self.kind == "random":
            encoder = scratch_encoder(prof, model, RANDOM_SEED)
        elif self.kind == "transfusion":
            encoder.load_state_dict(transfusion_state(encoder.state_dict(), RANDOM_SEED))
        else:
            encoder, record = _task_trained(prof, model, task, device, progress)
        _save(path, encoder, meta, self.kind, task)
        if self.kind == "positive":  # after the encoder: its key marks the file current
            atomic_write_json(path.parent / "positive.json", record)
        return path


def transfusion_state(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Every floating tensor replaced by i.i.d. N(mean, SD²) of that tensor (a one-element tensor keeps its value).

    Args:
        state: a state dict (tensors not modified). seed: the draws' seed.
    """
    gen = torch.Generator().manual_seed(int(seed))
    out = {}
    for name, t in state.items():
        if not torch.is_floating_point(t) or t.numel() < 2:
            out[name] = t.clone()
            continue
        t64 = t.double()
        noise = torch.randn(t.shape, generator=gen, dtype=torch.float64)
        out[name] = (t64.mean() + t64.std() * noise).to(t.dtype)
    return out


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive ``flock`` on ``folder/.lock`` (created with the folder), released on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def positive_key(prof: Profile, model: str, task: str) -> str:
    """What a positive control's encoder is made from, as a point's resume key has it (``study.resume``): SHA-256 of
    the computing code's fingerprint (the task's definition and its prelude included), the cohort's manifest and the
    resolved profile, with the model, task, prelude, pool size and epoch factor."""
    what = {"code": code_fingerprint(), "data": file_sha256_or_none(paths.data_dir(prof.name) / "manifest.json"),
            "profile": profile_to_dict(prof), "model": model, "task": task, "pool_cases": POSITIVE_POOL_CASES,
            "epoch_factor": POSITIVE_EPOCH_FACTOR, "prelude": list(get_task(task).positive_prelude)}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def positive_epochs(recipe: Any, n_train: int) -> int:
    """The positive control's epochs on its pool: :data:`POSITIVE_EPOCH_FACTOR` x the task recipe's epochs, counted
    on the whole train split of ``n_train`` cases -- a label-budgeted recipe (``train_cases`` > 0) runs more epochs
    over fewer cases, so its epochs are scaled by ``train_cases / n_train`` first (at least 1)."""
    epochs = int(recipe.epochs)
    if recipe.train_cases:
        epochs = max(1, round(epochs * int(recipe.train_cases) / max(int(n_train), 1)))
    return epochs * POSITIVE_EPOCH_FACTOR


def _recorded_key(folder: Path) -> str | None:
    """The ``key`` of ``folder/positive.json``; None when the file is missing, unreadable or has none."""
    try:
        record = json.loads((folder / "positive.json").read_text())
    except (OSError, ValueError):
        return None
    return record.get("key") if isinstance(record, dict) else None


def _task_trained(prof: Profile, model: str, task: str, device: Any, progress: bool) -> tuple[torch.nn.Module, dict]:
    """The scratch encoder (seed 0) -- or, for a task with a ``positive_prelude``, the positive control of its last
    prelude task (made first where missing), fine-tuned with the pretrained recipe -- trained on ``task`` over the
    first cases of the pre-training pool."""
    spec, cohort = get_task(task), open_cohort(prof)
    start, init, prelude = scratch_encoder(prof, model, 0), "scratch", []
    if spec.positive_prelude:  # the last one: an earlier one is the prelude of that task's own positive control
        pre = get_task(spec.positive_prelude[-1])
        if (pre.single_input, pre.channel_inputs) != (spec.single_input, spec.channel_inputs):
            raise ValueError(f"task {task!r}: its positive_prelude {pre.name!r} sees other inputs; a prelude must "
                             f"share the task's inputs")
        pre_path = ENCODER_SOURCES["positive"].encoder_file(prof, model, pre.name, device, progress)
        start, init = load_pretrained_encoder(pre_path, "cpu")[0], "pretrained"
        prelude.append({"task": pre.name, "key": _recorded_key(pre_path.parent)})
    pool = task_dataset(cohort, task, "pretrain", model, 0)
    keep = min(len(pool), POSITIVE_POOL_CASES)
    pool = torch.utils.data.Subset(pool, range(keep))
    for attr in ("slice_step",):  # the dense slice head reads the stack step from its training set
        if hasattr(pool.dataset, attr):
            setattr(pool, attr, getattr(pool.dataset, attr))
    val = task_dataset(cohort, task, "val", model, 0)
    recipe = replace(prof.finetune_for(task), epochs=positive_epochs(prof.finetune_for(task), len(cohort.case_ids("train"))))
    res = finetune(spec, model, start, init, {"train": pool, "val": val, "test": val},
                   recipe, torch.device(device) if not isinstance(device, torch.device) else device, seed=0,
                   progress=progress, spacing=tuple(float(s) for s in prof.grid.spacing))
    record = {"task": task, "model": model, "pool_cases": keep, "epochs": int(recipe.epochs),
              "best_epoch": res.best_epoch, "val_primary": res.best_val, "train_seconds": res.train_seconds,
              "metric": spec.primary_metric, "init": init, "prelude": prelude, "key": positive_key(prof, model, task)}
    return copy.deepcopy(res.model.encoder).cpu().eval(), json.loads(json.dumps(record, default=float))


def _save(path: Path, encoder: torch.nn.Module, meta: dict, kind: str, task: str) -> None:
    """``encoder.pt`` in the pre-training format, its meta copied from the native file with the kind named."""
    meta = {k: v for k, v in meta.items() if k != "state_dict"}
    meta.update(objective=kind, control_task=task if kind == "positive" else None)
    meta = json.loads(json.dumps(meta))
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_torch(path, {"state_dict": state, **meta})


ENCODER_SOURCES: dict[str, EncoderSource] = {s.kind: s for s in (
    EncoderSource("native", "objective", "the model's native pre-training"),
    EncoderSource("swapped", "objective", "the model's other pre-training objective (2x2 control)"),
    EncoderSource("native_short", "objective", "the model's native pre-training stopped early (the same run's "
                  "encoder after pretrain.short_fraction of its steps)"),
    EncoderSource("random", "negative control", "a second random initialisation, presented as pretrained"),
    EncoderSource("transfusion", "negative control", "random weights with the native encoder's per-tensor mean and "
                  "SD (Raghu et al. 2019), presented as pretrained"),
    EncoderSource("positive", "positive control", f"the scratch encoder trained on the task itself on up to "
                  f"{POSITIVE_POOL_CASES} pre-training-pool cases for {POSITIVE_EPOCH_FACTOR}x the task's epochs "
                  f"(classification: starting from segmentation's positive control)"),
)}
#: the control kinds a profile may add to every pair (``Profile.control_inits``)
CONTROL_KINDS: tuple[str, ...] = ("random", "transfusion", "positive")
#: every kind a profile may add to every pair beyond native / swapped: the controls and the shorter pre-training
EXTRA_KINDS: tuple[str, ...] = ("native_short", *CONTROL_KINDS)


def encoder_source(kind: str) -> EncoderSource:
    """The :class:`EncoderSource` of an objective kind (ValueError listing the kinds)."""
    if kind not in ENCODER_SOURCES:
        raise ValueError(f"unknown objective kind {kind!r}; valid: {list(ENCODER_SOURCES)}")
    return ENCODER_SOURCES[kind]
