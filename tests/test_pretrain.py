"""Facts about the pre-training runner: loss goes down for the four (backbone, objective) pairs,
resume reproduces an uninterrupted run exactly, NaN stops the run clearly, bad names are rejected."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.data import Dataset

from transferlimits.config import Profile, get_profile
from transferlimits.training.pretrain_record import SHORT_ENCODER_FILE
from transferlimits.training.loop import NonFiniteLossError
from transferlimits.training.pretrain_data import forward_objective
from transferlimits.training.pretrain import PretrainCollaborators, finished_pretrain, load_pretrained_encoder
from transferlimits.training.pretrain import pretrain as _pretrain

torch.set_num_threads(1)

PAIRS = [("profound", "fcmae"), ("profound", "contrastive"), ("provicnet", "contrastive"), ("provicnet", "mae")]


def tiny_profile(steps: int = 30, lr: float = 2e-3, pool: int = 2, **pretrain_overrides) -> Profile:
    """Smoke profile shrunk to test sizes: 16x32x32 volumes, 28 px slices, ``pool`` pre-training patients."""
    recipe = {"steps": steps, "batch_size": 2, "warmup_steps": 3, "checkpoint_every": 5, "lr": lr}
    recipe.update(pretrain_overrides)
    return get_profile(
        "smoke",
        grid={"shape": (16, 32, 32), "spacing": (3.0, 3.0, 3.0)},
        slice_size=28,
        encoder_sizes={"profound": "test", "provicnet": "test"},
        splits={"pretrain": pool, "train": 1, "val": 1, "test": 1},
        pretrain=recipe,
        num_threads=1,
    )


class SyntheticPool(Dataset):
    """A fixed pool of smooth 'gland with lesion' images in the view a model expects.

    profound items: x [3, D, H, W], labels [D, H, W]; provicnet items: x [3, S, S], pos [2], labels [S, S].
    Labels: 0 background, 1 gland, 2/3 lesion (as the contrastive objective expects).
    """

    def __init__(self, model: str, profile: Profile, n: int = 4) -> None:
        gen = torch.Generator().manual_seed(123)
        self.model, self.items = model, []
        for i in range(n):
            if model == "profound":
                shape = profile.grid.shape
            else:
                shape = (1, profile.slice_size, profile.slice_size)
            axes = torch.meshgrid(*[torch.linspace(-1, 1, s) for s in shape], indexing="ij")
            centre = torch.rand(len(shape), generator=gen) * 0.4 - 0.2
            r2 = sum((a - c) ** 2 for a, c in zip(axes, centre))
            gland = r2 < 0.5
            lesion = sum((a - c - 0.15) ** 2 for a, c in zip(axes, centre)) < 0.06
            labels = gland.long()
            labels[lesion & gland] = 2 + i % 2
            x = torch.stack([torch.exp(-r2 * k) for k in (1.0, 2.0, 4.0)])
            x = x + 0.05 * torch.randn(3, *shape, generator=gen)
            x = x + labels.float()[None] * 0.3
            if model == "profound":
                self.items.append({"x": x.float(), "labels": labels})
            else:
                self.items.append({"x": x[:, 0].float(), "labels": labels[0], "pos": torch.tensor([float(i), 16.0])})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


#: the synthetic pool instead of the cohort's (passed in, no module global patched)
SYNTHETIC = PretrainCollaborators(load_pool=lambda profile, model: SyntheticPool(model, profile))


def pretrain(*args, collaborators=None, **kwargs):
    """``training.pretrain.pretrain`` on the synthetic pool (other collaborators may be given)."""
    collab = SYNTHETIC if collaborators is None else collaborators
    return _pretrain(*args, collaborators=collab, **kwargs)


@pytest.fixture()
def synthetic_pool(monkeypatch, tmp_path):
    """Point the results tree at tmp_path (the synthetic pool is passed in by :func:`pretrain`)."""
    monkeypatch.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path / "results"))
    return tmp_path


def _losses(result) -> list[float]:
    return [r["loss"] for r in result.curve]


@pytest.mark.parametrize("model,objective", PAIRS)
def test_loss_decreases_for_each_pair(synthetic_pool, model, objective):
    result = pretrain(model, objective, tiny_profile(steps=30), device="cpu", progress=False)
    losses = _losses(result)
    assert len(losses) == 30 and all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.9 * first, (first, last)
    assert result.encoder_path is not None and result.encoder_path.name == "encoder.pt"
    assert result.summary["first_loss"] > result.summary["last_loss"]
    out = result.encoder_path.parent
    assert out.parent.name == "pretrain" and out.name == f"{model}__{objective}"
    assert json.loads((out / "curve.json").read_text())[-1]["step"] == 29
    assert not (out / "checkpoint_last.pt").exists()  # removed once the final outputs exist
    if objective == "contrastive":
        assert {"n_pos_pairs", "n_neg_pairs"} <= set(result.curve[0])
        frac = result.summary["contrastive_active_fraction"]
        assert frac == sum(r["n_pos_pairs"] > 0 for r in result.curve) / len(result.curve)
    else:
        assert result.summary["contrastive_active_fraction"] is None
        assert "no pairs" in result.summary["contrastive_active_fraction_reason"]


@pytest.mark.parametrize("model,objective", [("profound", "contrastive"), ("provicnet", "mae")])
def test_resume_reproduces_uninterrupted_run(synthetic_pool, model, objective):
    prof = tiny_profile(steps=12)
    full = pretrain(model, objective, prof, device="cpu", out_dir=synthetic_pool / "full", progress=False)
    part = pretrain(model, objective, prof, device="cpu", out_dir=synthetic_pool / "cut", progress=False,
                    stop_after=7)
    assert part.encoder_path is None and len(part.curve) == 7
    assert (synthetic_pool / "cut" / "checkpoint_last.pt").exists()
    resumed = pretrain(model, objective, prof, device="cpu", out_dir=synthetic_pool / "cut", progress=False)
    assert resumed.summary["resumed_from_step"] == 7
    assert _losses(resumed) == _losses(full)  # bit-exact on CPU
    enc_full, _ = load_pretrained_encoder(full.encoder_path)
    enc_res, meta = load_pretrained_encoder(synthetic_pool / "cut")
    assert meta["steps"] == 12 and meta["objective"] == objective and "state_dict" not in meta
    for (k, a), (_, b) in zip(enc_full.state_dict().items(), enc_res.state_dict().items()):
        assert torch.equal(a, b), k


def test_short_steps_writes_the_encoder_of_that_step_beside_the_final_one(synthetic_pool):
    """The ``native_short`` encoder is the same run stopped early: bit-equal to a run of ``short_steps`` steps' encoder
    at that step (a run interrupted there and not resumed), different from the final encoder."""
    prof = tiny_profile(steps=12, short_fraction=5 / 12)
    full = pretrain("profound", "fcmae", prof, device="cpu", progress=False)
    short_path = full.encoder_path.parent / SHORT_ENCODER_FILE
    cut = pretrain("profound", "fcmae", tiny_profile(steps=12), device="cpu", out_dir=synthetic_pool / "cut",
                   progress=False, stop_after=5)
    state = torch.load(cut.summary["checkpoint"], weights_only=True)["module"]
    short, meta = load_pretrained_encoder(short_path)
    final, _ = load_pretrained_encoder(full.encoder_path)
    assert meta["steps"] == 5 and meta["settings"]["short_steps"] == 5 and full.summary["steps"] == 12
    for k, v in short.state_dict().items():
        assert torch.equal(v, state["encoder." + k]), k
    assert any(not torch.equal(v, final.state_dict()[k]) for k, v in short.state_dict().items())
    short_path.unlink()  # a finished run without its short encoder is not reused: it runs again and writes it
    again = pretrain("profound", "fcmae", prof, device="cpu", progress=False)
    assert short_path.is_file() and _losses(again) == _losses(full)
    assert prof.pretrain.short_steps == 5 and tiny_profile(steps=6, short_fraction=0.25).pretrain.short_steps == 2
    with pytest.raises(ValueError, match="short_fraction"):
        tiny_profile(steps=12, short_fraction=1.0)


def test_finished_run_is_reused_and_settings_change_reruns(synthetic_pool):
    prof = tiny_profile(steps=4)
    first = pretrain("provicnet", "mae", prof, device="cpu", progress=False)

    def _fail(*args, **kwargs):
        raise AssertionError("a finished run must not be rebuilt")

    failing = PretrainCollaborators(load_pool=SYNTHETIC.load_pool, build_modules=_fail)
    again = pretrain("provicnet", "mae", prof, device="cpu", progress=False, collaborators=failing)
    assert again.encoder_path == first.encoder_path and _losses(again) == _losses(first)
    with pytest.raises(AssertionError, match="must not be rebuilt"):  # other seed: different settings
        pretrain("provicnet", "mae", prof, device="cpu", seed=1, progress=False, collaborators=failing)


def test_finished_run_renders_from_its_record_without_weights(synthetic_pool):
    """Render-only: a run computed elsewhere comes back without encoder.pt; its record is shown, nothing trains."""
    prof = tiny_profile(steps=4)
    with pytest.raises(FileNotFoundError, match="no finished pre-training to render .*curve.json and pretrain.json"):
        finished_pretrain("provicnet", "mae", prof)
    first = pretrain("provicnet", "mae", prof, device="cpu", progress=False)
    assert finished_pretrain("provicnet", "mae", prof).encoder_path == first.encoder_path
    first.encoder_path.unlink()
    shown = finished_pretrain("provicnet", "mae", prof)
    assert shown.encoder_path is None and _losses(shown) == _losses(first)
    assert shown.summary["last_loss"] == first.summary["last_loss"]
    with pytest.raises(ValueError, match=r"pretrain.json: made with other settings .*differ in seed"):
        finished_pretrain("provicnet", "mae", prof, seed=1)
    with pytest.raises(ValueError, match="differ in steps"):
        finished_pretrain("provicnet", "mae", tiny_profile(steps=5))


def test_nan_loss_stops_with_clear_error(synthetic_pool):
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = forward_objective(*args, **kwargs)
        calls["n"] += 1
        return (out[0] * float("nan"), *out[1:]) if calls["n"] == 4 else out

    collab = PretrainCollaborators(load_pool=SYNTHETIC.load_pool, forward=poisoned)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step 3 of pretraining provicnet/mae"):
        pretrain("provicnet", "mae", tiny_profile(steps=10), device="cpu", progress=False, collaborators=collab)


def test_huge_lr_gives_nonfinite_error_not_garbage(synthetic_pool):
    with pytest.raises(NonFiniteLossError, match="step"):
        pretrain("provicnet", "mae", tiny_profile(steps=20, lr=1e30, warmup_steps=0), device="cpu", progress=False)


@pytest.mark.parametrize(
    "model,objective,match",
    [("resnet", "fcmae", "unknown model 'resnet'"), ("profound", "simclr", "unknown objective 'simclr'"),
     ("profound", "mae", "not defined for 'profound'"), ("provicnet", "fcmae", "not defined for 'provicnet'")],
)
def test_bad_names_raise_value_error(synthetic_pool, model, objective, match):
    with pytest.raises(ValueError, match=match):
        pretrain(model, objective, tiny_profile(), device="cpu", progress=False)


@pytest.mark.parametrize("kwargs,match", [(dict(max_steps=0), "max_steps"), (dict(stop_after=99), "stop_after")])
def test_bad_step_counts_raise(synthetic_pool, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pretrain("profound", "fcmae", tiny_profile(steps=5), device="cpu", progress=False, **kwargs)


def test_cli_help_explains_options(capsys):
    from transferlimits.cli import main as cli_main

    with pytest.raises(SystemExit) as exc:
        cli_main(["pretrain", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--model", "--objective", "--profile", "--seed", "--device", "--steps", "--out", "--no-resume"):
        assert option in text
    assert "native" in text and "swapped" in text


def test_cli_runs_and_rejects_unknown_model(synthetic_pool, capsys):
    from transferlimits.cli import build_parser
    from transferlimits.cli import main as cli_main
    from transferlimits.runner import cli_pretrain

    out = synthetic_pool / "cli"
    args = build_parser().parse_args(["pretrain", "--model", "provicnet", "--steps", "3", "--device", "cpu", "--out",
                                      str(out), "--no-progress"])
    assert cli_pretrain.main(args, collaborators=SYNTHETIC) == 0
    assert (out / "encoder.pt").exists() and "provicnet/contrastive" in capsys.readouterr().out
    assert json.loads((out / "pretrain.json").read_text())["objective"] == "contrastive"  # native default
    assert cli_main(["pretrain", "--model", "vgg"]) == 2
    assert "unknown model 'vgg'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def phantom_results(tmp_path_factory):
    """A tiny phantom cohort built from the geometry pack (skipped when the pack is not built)."""
    from transferlimits import paths

    if not paths.GEOMETRY_PACK.exists():
        pytest.skip(f"geometry pack missing: {paths.GEOMETRY_PACK}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERLIMITS_RESULTS", str(tmp_path_factory.mktemp("phantom") / "results"))
        yield


@pytest.mark.parametrize("model,objective", PAIRS)
def test_loss_decreases_on_phantom_pool(phantom_results, model, objective):
    prof = tiny_profile(steps=24, pool=3)
    result = _pretrain(model, objective, prof, device="cpu", progress=False)
    losses = _losses(result)
    # the pretrain split only: the 2 real exams are a test set, never pre-trained on
    assert result.summary["pool_items"] == 3 * (1 if model == "profound" else prof.grid.shape[0])
    assert sum(losses[-5:]) / 5 < 0.95 * sum(losses[:5]) / 5, losses
