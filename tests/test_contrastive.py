"""The ProViCNet objective on both backbones (``transferlimits.models.contrastive``)."""

from __future__ import annotations

import pytest
import torch

from transferlimits.models.contrastive import ConvNeXtContrastive, ProViCNetContrastive
from transferlimits.models.convnext3d import build_profound
from transferlimits.models.provicnet_heads import CLHead, SegmentationConvHead
from transferlimits.models.vit import build_provicnet

torch.set_num_threads(1)

CL = (32, 16, 64)


def _vit_model(**kwargs) -> ProViCNetContrastive:
    torch.manual_seed(0)
    return ProViCNetContrastive(build_provicnet("test", img_size=112), cl_dims=CL, head_mid=(16, 8), **kwargs)


def _vit_batch():
    """Two 112-px slices with a square lesion covering token cells (1..2, 1..2) of the 8x8 grid
    (label pixels 14..41 -> head pixels 8..23) inside a gland; gland and lesion light up different channels."""
    g = torch.Generator().manual_seed(1)
    labels = torch.zeros(2, 112, 112, dtype=torch.long)
    labels[:, 7:84, 7:84] = 1
    labels[:, 14:42, 14:42] = 3
    labels[1, 14:42, 14:42] = 2
    x = torch.randn(2, 3, 112, 112, generator=g) * 0.1
    x[:, 0] += (labels == 1).float()  # gland and lesion differ in direction, not only in scale
    x[:, 1] += (labels > 1).float()
    pos = torch.tensor([[5.0, 20.0], [6.0, 20.0]])
    return x, pos, labels


def test_vit_objective_shapes_and_stats():
    model = _vit_model()
    x, pos, labels = _vit_batch()
    loss, logits, stats = model(x, pos, labels)
    assert logits.shape == (2, 4, 64, 64)  # 8x the 8x8 token grid, like 256 px for 448 px input
    assert set(stats) == {"dice_ce", "contrastive", "n_pos_pairs", "n_neg_pairs"}
    assert stats["n_pos_pairs"] == stats["n_neg_pairs"] > 0
    assert stats["n_pos_pairs"] <= 2 * 30
    expected = (1 - 0.05) * stats["dice_ce"] + 0.05 * stats["contrastive"]
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_upstream_module_names():
    keys = _vit_model().state_dict().keys()
    assert "head.segmentation_conv.1.weight" in keys and "head.segmentation_conv.9.bias" in keys
    assert "head.segmentation_conv.2.running_var" in keys
    assert "CL_Head.mlp.4.weight" in keys
    assert "CL_Head.last_layer.parametrizations.weight.original0" in keys
    assert "encoder.backbone.pos_embed" in keys and "encoder.axis_max.weight" in keys


def test_no_anchor_batch_gives_zero_pair_loss_not_nan():
    model = _vit_model()
    x, pos, labels = _vit_batch()
    labels = labels.clamp(max=1)  # no cancer at all
    loss, _, stats = model(x, pos, labels)
    assert stats["contrastive"] == 0.0 and stats["n_pos_pairs"] == 0 and torch.isfinite(loss)
    loss.backward()
    assert model.encoder.backbone.blocks[0].attn.qkv.weight.grad is not None


@pytest.mark.parametrize("train_cl_head", [True, False])
def test_cl_head_trainability(train_cl_head):
    model = _vit_model(train_cl_head=train_cl_head)
    x, pos, labels = _vit_batch()
    model(x, pos, labels)[0].backward()
    mlp_w = model.CL_Head.mlp[0].weight
    assert mlp_w.requires_grad is train_cl_head
    assert (mlp_w.grad is not None) is train_cl_head
    # g of the weight-normalised last layer is fixed at 1 either way
    g = model.CL_Head.last_layer.parametrizations.weight.original0
    assert not g.requires_grad and torch.all(g == 1)
    # the pair loss reaches the backbone through the (possibly frozen) projector
    assert model.encoder.backbone.blocks[0].mlp.fc1.weight.grad is not None


def test_cl_head_rows_have_unit_norm_and_outputs_are_cosines():
    head = CLHead(8, 16, 4, 32)
    w = head.last_layer.weight
    torch.testing.assert_close(w.norm(dim=1), torch.ones(32))
    out = head(torch.randn(5, 8))
    assert out.shape == (5, 32) and out.abs().max() <= 1 + 1e-5


def test_segmentation_head_shapes_and_errors():
    head = SegmentationConvHead(12, 4, mid=(8, 6))
    assert head(torch.randn(2, 9, 12)).shape == (2, 4, 24, 24)
    assert head(torch.randn(2, 6, 12), grid=(2, 3)).shape == (2, 4, 16, 24)
    with pytest.raises(ValueError):
        head(torch.randn(2, 6, 12))  # 6 tokens are not square
    with pytest.raises(ValueError):
        SegmentationConvHead(12, 4, mid=(8,))


def _train(model, batch, steps=30, lr=2e-3):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses, pair = [], []
    for _ in range(steps):
        loss, _, stats = model(*batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        pair.append(stats["contrastive"])
    return losses, pair


def test_vit_objective_loss_decreases():
    model = _vit_model()  # alpha = 0.05 as upstream
    losses, pair = _train(model, _vit_batch())
    assert sum(losses[-5:]) / 5 < 0.7 * losses[0]
    assert sum(pair[-5:]) / 5 < pair[0]


def _convnext_batch():
    g = torch.Generator().manual_seed(2)
    labels = torch.zeros(1, 16, 64, 64, dtype=torch.long)
    labels[:, :, 4:60, 4:60] = 1
    labels[:, :, 0:32, 0:32] = 3  # stage-4 cells (0, 0..1, 0..1) of the 1x4x4 grid are anchors
    x = torch.randn(1, 3, 16, 64, 64, generator=g) * 0.1
    x[:, 0] += (labels == 1).float()
    x[:, 1] += (labels > 1).float()
    return x, labels


def test_convnext_objective_shapes_and_pairs():
    torch.manual_seed(0)
    model = ConvNeXtContrastive(build_profound("test"), cl_dims=CL, head_mid=8)
    x, labels = _convnext_batch()
    loss, logits, stats = model(x, labels)
    assert logits.shape == (1, 4, 16, 64, 64)
    assert stats["n_pos_pairs"] == stats["n_neg_pairs"] > 0 and torch.isfinite(loss)
    loss2, _, stats2 = model(x, labels.clamp(max=1))
    assert stats2["contrastive"] == 0.0 and torch.isfinite(loss2)
    with pytest.raises(ValueError, match="labels"):
        model(x, labels[:, :8])


def test_convnext_objective_loss_decreases():
    torch.manual_seed(0)
    model = ConvNeXtContrastive(build_profound("test"), alpha=0.3, cl_dims=CL, head_mid=8)
    losses, pair = _train(model, _convnext_batch(), steps=25)
    assert sum(losses[-5:]) / 5 < 0.7 * losses[0]
    assert sum(pair[-5:]) / 5 < pair[0]


@pytest.mark.parametrize(
    "kwargs",
    [{"alpha": 1.5}, {"alpha": -0.1}, {"class_weights": (0.5, 0.5)}, {"n_classes": 2, "class_weights": (1, 1)},
     {"cl_dims": (8, 8)}],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ProViCNetContrastive(build_provicnet("test", img_size=28), cl_dims=kwargs.pop("cl_dims", CL), **kwargs)


def test_bad_label_shape():
    model = _vit_model()
    x, pos, labels = _vit_batch()
    with pytest.raises(ValueError, match="labels"):
        model(x, pos, labels[0])


def test_four_class_labels_from_project_masks():
    from transferlimits.models.contrastive import four_class_labels

    zones = torch.tensor([[0, 1, 2, 3, 0, 2]])
    lesion = torch.tensor([[0, 0, 1, 2, 2, 0]])
    assert four_class_labels(zones, lesion).tolist() == [[0, 1, 2, 3, 3, 1]]
    with pytest.raises(ValueError):
        four_class_labels(zones, lesion[:, :3])


def test_pair_shuffle_state_is_saved_for_exact_resume():
    model = _vit_model()
    batch = _vit_batch()
    model(*batch)  # advance the generator
    state = model.state_dict()
    assert "_extra_state" in state
    expected = torch.randperm(100, generator=model.rng)
    fresh = _vit_model()
    fresh.load_state_dict(state)
    assert torch.equal(torch.randperm(100, generator=fresh.rng), expected)


def test_convnext_pair_stage_option():
    torch.manual_seed(0)
    enc = build_profound("test")
    model = ConvNeXtContrastive(enc, cl_dims=CL, head_mid=8, pair_stage=0)
    assert model.CL_Head.mlp[0].in_features == enc.map_dims[0]
    x, labels = _convnext_batch()
    loss, _, stats = model(x, labels)
    # stride-4 grid of a 16x64x64 volume: 4x16x16 cells of 64 voxels, many anchors -> capped at 30
    assert stats["n_pos_pairs"] == stats["n_neg_pairs"] == 30 and torch.isfinite(loss)
    assert not any(k.startswith("pair_norm") for k in ConvNeXtContrastive(enc, cl_dims=CL).state_dict())
    with pytest.raises(ValueError, match="pair_stage"):
        ConvNeXtContrastive(enc, cl_dims=CL, pair_stage=4)
