"""Checkpoints: weights-only everywhere, one clear error per bad file, heads checked, umask honoured.

Bad files are written by the tests: zero bytes, truncated, garbage, pickled objects, a ProViCNet file
whose head tensor has the wrong shape. Each error names the file (and the key and both shapes), and a
good file next to the bad one keeps loading.
"""

from __future__ import annotations

import argparse
import os
import random

import numpy as np
import pytest
import torch

from transferlimits.config import get_profile
from transferlimits.models.checkpoints_profound import load_profound_checkpoint
from transferlimits.models.checkpoints_provicnet import load_provicnet_checkpoint
from transferlimits.models.convnext3d import build_profound
from transferlimits.models.provicnet_heads import CLHead, SegmentationConvHead
from transferlimits.models.vit import build_provicnet
from transferlimits.runner.checks import check_weights
from transferlimits.runtime import (
    PICKLE_HINT_ENV,
    CheckpointError,
    atomic_save_torch,
    atomic_write_bytes,
    load_torch_file,
)
from transferlimits.training.loop import Checkpointer, restore_rng, rng_state
from transferlimits.training.pretrain import load_pretrained_encoder

torch.manual_seed(0)


def _provicnet_state() -> dict[str, torch.Tensor]:
    """A complete small ProViCNet state dict in the upstream layout (modern weight-norm names)."""
    enc = build_provicnet("test", img_size=28)
    sd = dict(enc.state_dict())
    sd.update({f"head.{k}": v for k, v in SegmentationConvHead(enc.out_dim, 4, (8, 6)).state_dict().items()})
    sd.update({f"CL_Head.{k}": v for k, v in CLHead(enc.out_dim, 16, 8, 32).state_dict().items()})
    return sd


def _bad_bytes(kind: str, good: bytes) -> bytes:
    return {"empty": b"", "truncated": good[: len(good) // 2], "garbage": b"not a checkpoint" * 8}[kind]


@pytest.mark.parametrize("kind, message", [
    ("empty", "checkpoint file (0 bytes)"),
    ("truncated", "truncated or corrupt"),
    ("garbage", "truncated or corrupt"),
])
def test_bad_released_files_name_the_path(tmp_path, kind, message):
    good_pf, good_pv = tmp_path / "good_profound.pt", tmp_path / "good_T2.pth"
    torch.save(build_profound("test").state_dict(), good_pf)
    torch.save(_provicnet_state(), good_pv)
    for good, load in ((good_pf, load_profound_checkpoint),
                       (good_pv, lambda p: load_provicnet_checkpoint(p, size="test", img_size=28))):
        bad = tmp_path / f"bad_{good.name}"
        bad.write_bytes(_bad_bytes(kind, good.read_bytes()))
        with pytest.raises(CheckpointError) as err:
            load(bad)
        assert str(err.value).startswith(f"{bad}: ") and message in str(err.value)
        load(good)  # the good file next to it still loads


@pytest.mark.parametrize("key, new_shape", [
    ("head.segmentation_conv.1.weight", (8, 5, 3, 3)),  # input width is not the encoder's
    ("head.segmentation_conv.6.running_var", (5,)),  # BN of the wrong width
    ("head.segmentation_conv.9.weight", (4, 7, 3, 3)),
    ("CL_Head.mlp.2.weight", (16, 15)),
])
def test_provicnet_head_tensor_of_wrong_shape_is_named(tmp_path, key, new_shape):
    sd = _provicnet_state()
    old_shape = tuple(sd[key].shape)
    sd[key] = torch.zeros(new_shape)
    path = tmp_path / "T2_best.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        load_provicnet_checkpoint(path, size="test", img_size=28)
    assert str(err.value).startswith(str(path)) and f"{key}: checkpoint {new_shape} vs model {old_shape}" in str(err.value)


def test_pickle_refusal_names_the_switch_of_the_caller(tmp_path):
    path = tmp_path / "checkpoint-799.pth"
    torch.save({"model": build_profound("test").state_dict(), "args": argparse.Namespace(lr=1.0)}, path)
    with pytest.raises(CheckpointError, match=r"argparse\.Namespace.*pass allow_pickle=True") as api:
        load_profound_checkpoint(path)
    with pytest.raises(CheckpointError) as cli:
        load_profound_checkpoint(path, hint=PICKLE_HINT_ENV)
    assert str(api.value).startswith(str(path)) and "TRANSFERLIMITS_ALLOW_PICKLE=1" in str(cli.value)
    assert "allow_pickle=True" not in str(cli.value)
    assert load_profound_checkpoint(path, allow_pickle=True).extra["args"].lr == 1.0


def test_training_checkpoint_is_weights_only_and_resumes_rng(tmp_path):
    ckpt = Checkpointer(tmp_path, every=1)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    ckpt.save(5, {"module": model.state_dict(), "optimizer": opt.state_dict(), "curve": [{"loss": 1.0}]})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    state = torch.load(ckpt.path, weights_only=True)  # plain types and tensors only
    assert state["step"] == 5 and set(state["rng"]) >= {"python", "numpy", "torch"}
    restore_rng(ckpt.load_latest())
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    restore_rng({"rng": {**rng_state(), "numpy": np.random.get_state()}})  # the old tuple form still restores
    ckpt.path.write_bytes(ckpt.path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=rf"^{ckpt.path}: truncated or corrupt training checkpoint"):
        ckpt.load_latest()


def test_truncated_pretrained_encoder_names_its_path(tmp_path):
    path = tmp_path / "encoder.pt"
    atomic_save_torch(path, {"state_dict": build_profound("test").state_dict(), "model": "profound", "size": "test",
                             "img_size": None})
    enc, meta = load_pretrained_encoder(path)
    assert meta["model"] == "profound"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(CheckpointError, match=rf"^{path}: truncated or corrupt pre-trained encoder"):
        load_pretrained_encoder(path)
    with pytest.raises(FileNotFoundError, match="no pre-trained encoder"):
        load_pretrained_encoder(tmp_path / "nope")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.json", b"{}")
        atomic_save_torch(tmp_path / "b.pt", {"x": torch.ones(1)})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "b.pt").stat().st_mode & 0o777 == mode
    assert load_torch_file(tmp_path / "b.pt")["x"].item() == 1.0


# --- issue 25: nothing silently wrong in the weights loaders ------------------------------------------------
class _Payload:
    """A pickled object whose unpickling would create a folder: a stand-in for a malicious file."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (os.mkdir, (self.target,))


@pytest.mark.parametrize("form", ["torch_zip", "raw_pickle"])
def test_malicious_pickle_is_blocked_not_called_corrupt(tmp_path, form):
    import pickle

    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pth"
    obj = {"model": build_profound("test").state_dict(), "x": _Payload(marker)}
    if form == "torch_zip":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps({"x": _Payload(marker)}))
    loaders = [
        (lambda p: load_profound_checkpoint(p, hint=PICKLE_HINT_ENV), "TRANSFERLIMITS_ALLOW_PICKLE=1"),
        (lambda p: load_profound_checkpoint(p, allow_pickle=True, hint=PICKLE_HINT_ENV), "TRANSFERLIMITS_ALLOW_PICKLE=1"),
        (lambda p: load_provicnet_checkpoint(p, size="test", img_size=28), "plain state dict"),
    ]
    for load, how in loaders:
        with pytest.raises(CheckpointError) as err:
            load(path)
        msg = str(err.value)
        assert msg.startswith(f"{path}: blocked: ") and "posix.mkdir" in msg and "trust" in msg and how in msg
        assert "truncated or corrupt" not in msg and "\n" not in msg
    assert not marker.exists()


def test_namespace_only_pickle_names_the_opt_in(tmp_path):
    path = tmp_path / "checkpoint-799.pth"
    torch.save({"model": build_profound("test").state_dict(), "args": argparse.Namespace(lr=1.0)}, path)
    with pytest.raises(CheckpointError) as err:
        load_profound_checkpoint(path, hint=PICKLE_HINT_ENV)
    msg = str(err.value)
    assert msg.startswith(f"{path}: blocked: ") and "argparse.Namespace" in msg
    assert "to read it anyway set the environment variable TRANSFERLIMITS_ALLOW_PICKLE=1 (only for files you trust)" in msg


def test_folder_given_as_checkpoint_is_named(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save(build_profound("test").state_dict(), folder / "profound.pth")
    with pytest.raises(CheckpointError, match=rf"^{folder}: is a folder, not a checkpoint file; pass the weights "
                                              r"file itself \(found here: \['profound\.pth'\]\)"):
        load_profound_checkpoint(folder)
    with pytest.raises(CheckpointError, match=rf"^{folder}: is a folder, not a ProViCNet checkpoint file"):
        load_provicnet_checkpoint(folder, size="test", img_size=28)


def test_folder_given_to_load_encoders_is_named(tmp_path):
    from transferlimits.config import get_profile
    from transferlimits.study.runs import load_encoders

    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "T2_best.pth").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=rf"^{folder}: is a folder without an encoder\.pt, not a weights "
                                                r"file; pass the file itself \(found here: \['T2_best\.pth'\]\)"):
        load_encoders(get_profile("smoke"), "profound", folder, 0, torch.device("cpu"))


def _poison(state, key, value):
    state = dict(state)
    t = state[key].clone()
    t.view(-1)[3] = value
    state[key] = t
    return state


def test_non_finite_released_weights_fail_at_load_naming_the_parameter(tmp_path):
    key = "stages.1.0.dwconv.weight"
    path = tmp_path / "profound_nan.pth"
    torch.save(_poison(build_profound("test").state_dict(), key, float("nan")), path)
    with pytest.raises(CheckpointError, match=rf"^{path}: parameter '{key}' \(\d+, 1, \d, \d, \d\) has 1 non-finite "
                                              r"value\(s\) \(NaN\) of \d+: diverged or corrupted weights"):
        load_profound_checkpoint(path)
    sd = _provicnet_state()
    first = next(k for k, v in sd.items() if v.is_floating_point())
    pv = tmp_path / "T2_inf.pth"
    torch.save(_poison(_poison(sd, "CL_Head.mlp.2.weight", float("inf")), first, float("-inf")), pv)
    with pytest.raises(CheckpointError, match=rf"^{pv}: parameter '{first}' .* non-finite value\(s\) \(Inf\)"):
        load_provicnet_checkpoint(pv, size="test", img_size=28)


def test_non_finite_pretrained_encoder_fails_in_load_encoders(tmp_path):
    from transferlimits.config import get_profile
    from transferlimits.study.runs import load_encoders

    path = tmp_path / "encoder.pt"
    state = _poison(build_profound("test").state_dict(), "downsample_layers.0.0.weight", float("nan"))
    atomic_save_torch(path, {"state_dict": state, "model": "profound", "size": "test", "img_size": None})
    with pytest.raises(CheckpointError, match=rf"^{path}: parameter 'downsample_layers\.0\.0\.weight'"):
        load_encoders(get_profile("smoke"), "profound", path, 0, torch.device("cpu"))


def test_weights_errors_keep_key_and_shapes_in_the_line_the_cli_shows(tmp_path):
    prof = get_profile("smoke", encoder_sizes={"profound": "test", "provicnet": "test"}, slice_size=28)
    sd = _provicnet_state()
    sd["head.segmentation_conv.9.weight"] = torch.zeros(4, 7, 3, 3)
    pv = tmp_path / "T2_best.pth"
    torch.save(sd, pv)
    with pytest.raises(ValueError) as err:
        check_weights({"provicnet": str(pv)}, prof)
    assert "head.segmentation_conv.9.weight: checkpoint (4, 7, 3, 3) vs model (4, 6, 3, 3)" in str(err.value)
    pf_sd = build_profound("test").state_dict()
    pf_sd.pop("stages.2.0.pwconv1.weight")
    pf = tmp_path / "profound.pth"
    torch.save(pf_sd, pf)
    with pytest.raises(ValueError) as err:
        check_weights({"profound": str(pf)}, prof)
    assert str(err.value) == (f"--weights profound={pf}: ProFound encoder state does not match the model: missing "
                              "keys (1): ['stages.2.0.pwconv1.weight']")


def test_weights_option_names_folder_nan_and_blocked_pickle_in_one_unquoted_line(tmp_path):
    """``--weights`` shows the loader's own line once (no quotes, the path once): a folder is not "does not
    exist", NaN weights and a malicious pickle are refused at the edge, before any job."""
    prof = get_profile("smoke", encoder_sizes={"profound": "test", "provicnet": "test"}, slice_size=28)
    state = build_profound("test").state_dict()
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save(state, folder / "profound.pth")
    nan = tmp_path / "nan.pth"
    torch.save(_poison(state, "stages.1.0.dwconv.weight", float("nan")), nan)
    evil = tmp_path / "evil.pth"
    torch.save({"model": state, "x": _Payload(tmp_path / "payload_ran")}, evil)
    cases = {folder: "is a folder, not a checkpoint file; pass the weights file itself (found here: ['profound.pth'])",
             nan: "parameter 'stages.1.0.dwconv.weight' (", evil: "blocked: the checkpoint holds pickled Python objects"}
    for path, says in cases.items():
        with pytest.raises(ValueError) as err:
            check_weights({"profound": str(path)}, prof)
        line = str(err.value)
        assert line.startswith(f"--weights profound={path}: {says}"), line
        assert line.count(str(path)) == 1 and "\n" not in line and "\\" not in line
    assert not (tmp_path / "payload_ran").exists()
