"""The SeqFormer model: released parameter names/shapes, checkpoint round-trips, forward/backward."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seqformer.config import load_config
from seqformer.structures import pad_clips
from seqformer.weight_files import CheckpointError, load_model_weights

from helpers import build_model_for

REF = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
BACKBONES = {"r50": "resnet50", "r101": "resnet101", "x101": "resnext101_32x8d", "swin_l": "swin_l_p4w12"}


def read_tsv(name: str) -> list[dict[str, str]]:
    path = REF / f"seqformer_{name}_state_dict.tsv"
    if not path.is_file():
        pytest.skip(f"{path} not available (../shared absent)")
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:] if line.strip()]


def _shape(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split("x")) if s else ()


def released_config(backbone: str):
    return load_config(None, [f"model.backbone={backbone}"])


@pytest.mark.parametrize("name", list(BACKBONES))
def test_state_dict_matches_released_checkpoint(name):
    rows = read_tsv(name)
    # meta tensors make building the big backbones instant; Swin computes buffers at init, so CPU
    device = "cpu" if name == "swin_l" else "meta"
    with torch.device(device):
        model = build_model_for(released_config(BACKBONES[name]))
    sd = model.state_dict(keep_vars=True)
    expected = {r["name"]: r for r in rows}
    assert set(sd) == set(expected), (sorted(set(expected) - set(sd))[:5], sorted(set(sd) - set(expected))[:5])
    for key, row in expected.items():
        assert tuple(sd[key].shape) == _shape(row["shape"]), key
        if row["kind"] == "param":
            assert isinstance(sd[key], torch.nn.Parameter), key
            assert sd[key].requires_grad == (row["requires_grad"] == "True"), key
    # aliased entries (shared modules) are the same tensor object
    for key, row in expected.items():
        if row.get("same_tensor_as"):
            assert sd[key] is sd[row["same_tensor_as"]], key


def _tiny_cfg(**extra):
    overrides = [
        "model.num_queries=12", "model.enc_layers=2", "model.dec_layers=2", "model.hidden_dim=64",
        "model.dim_feedforward=128", "model.nheads=4", "model.num_classes=5", "model.num_frames=2",
    ] + [f"{k}={v}" for k, v in extra.items()]
    return load_config(None, overrides)


def test_released_format_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model_for(_tiny_cfg()).eval()
    path = tmp_path / "ckpt.pth"
    torch.save({"model": model.state_dict(), "epoch": 3}, path)
    other = build_model_for(_tiny_cfg()).eval()
    load_model_weights(other, path)
    for (k, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), k
    clip = pad_clips([torch.randn(2, 3, 64, 64)], 32)
    torch.testing.assert_close(model.inference(clip)["pred_logits"], other.inference(clip)["pred_logits"])


def test_checkpoint_errors_name_the_problem(tmp_path):
    model = build_model_for(_tiny_cfg())
    state = model.state_dict()
    bad_shape = dict(state)
    key = "detr.class_embed.0.weight"
    bad_shape[key] = torch.zeros(7, 64)
    torch.save({"model": bad_shape}, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="detr.class_embed.0.weight"):
        load_model_weights(model, tmp_path / "shape.pth")
    missing = {k: v for k, v in state.items() if k != "detr.query_embed.weight"}
    torch.save({"model": missing}, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="missing key 'detr.query_embed.weight'"):
        load_model_weights(model, tmp_path / "missing.pth")
    extra = dict(state, **{"detr.bogus": torch.zeros(1)})
    torch.save({"model": extra}, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="unexpected key 'detr.bogus'"):
        load_model_weights(model, tmp_path / "extra.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="text.pth"):
        load_model_weights(model, tmp_path / "text.pth")
    torch.save({"model": state}, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.pth"):
        load_model_weights(model, tmp_path / "trunc.pth")


@pytest.mark.parametrize("mask_channels", [None, 8])
def test_forward_backward_tiny_all_parameters_get_gradients(mask_channels):
    torch.manual_seed(0)
    cfg = _tiny_cfg(**({} if mask_channels is None else {"model.mask_channels": mask_channels}))
    model = build_model_for(cfg).train()
    channels = mask_channels or 64 // 32  # the original's hidden_dim // 32 by default
    assert model.mask_head.lay2.out_channels == channels
    assert model.controller.layers[-1].out_features == (channels + 2) * 8 + 8 * 8 + 8 + 8 + 8 + 1
    assert model.matcher is not None  # the task gives the model its matcher
    clips = [torch.randn(2, 3, 64, 96), torch.randn(2, 3, 48, 64)]
    batch = pad_clips(clips, 32)
    targets = []
    for c in clips:
        h, w = c.shape[-2:]
        masks = torch.zeros(1, 2, h, w, dtype=torch.uint8)
        masks[:, :, 10:30, 10:40] = 1
        targets.append({
            "labels": torch.tensor([1]),
            "boxes": torch.tensor([[[25 / w, 20 / h, 30 / w, 20 / h]] * 2]),
            "masks": masks, "valid": torch.ones(1, 2, dtype=torch.bool),
            "size": torch.tensor([h, w]), "orig_size": torch.tensor([h, w]),
        })
    out = model(batch, targets)
    assert out["pred_logits"].shape == (2, 12, 5)
    assert out["pred_boxes"].shape == (2, 2, 12, 4)
    assert [m.shape for m in out["pred_masks"]] == [(1, 2, 16, 24), (1, 2, 16, 24)]
    assert len(out["aux_outputs"]) == 1
    loss = sum(
        v.sum() for o in [out] + out["aux_outputs"] for v in [o["pred_logits"], o["pred_boxes"]] + o["pred_masks"]
    )
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    # encoder-side output_proj_box is unused by design (kept for checkpoint compatibility)
    assert all("encoder" in n and "output_proj_box" in n for n in no_grad), no_grad[:5]


def test_batch_is_not_mixed_across_clips():
    """Each clip's predictions are independent of the other clips in the batch (the AVA fork mixed them)."""
    torch.manual_seed(0)
    model = build_model_for(_tiny_cfg()).eval()
    a, b = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    both = model.inference(pad_clips([a, b], 32))
    alone = model.inference(pad_clips([b], 32))
    torch.testing.assert_close(both["pred_logits"][1], alone["pred_logits"][0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(both["pred_masks"][1], alone["pred_masks"][0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("strides", [[1, 1, 1, 1], [1, 2, 2, 2]])
def test_action_model_csn_shapes_and_batch_independence(strides):
    torch.manual_seed(0)
    cfg = _tiny_cfg(**{"model.task": "ava", "model.backbone": "csn50", "model.masks": "false",
                       "model.csn_temporal_strides": str(strides), "model.num_frames": 8})
    model = build_model_for(cfg).eval()
    a, b = torch.randn(8, 3, 64, 96), torch.randn(8, 3, 64, 96)
    with torch.no_grad():
        both = model(pad_clips([a, b]))
        alone = model(pad_clips([b]))
    assert both["pred_logits"].shape == (2, 12, 5)
    assert both["pred_actor"].shape == (2, 12, 1)
    assert both["pred_boxes"].shape == (2, 8, 12, 4)  # one box per input frame, whatever the stride
    torch.testing.assert_close(both["pred_boxes"][1], alone["pred_boxes"][0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(both["pred_actor"][1], alone["pred_actor"][0], atol=1e-5, rtol=1e-4)


def test_original_style_checkpoint_with_argparse_namespace_loads(tmp_path):
    """The original main.py saves {'model', 'optimizer', 'lr_scheduler', 'epoch', 'args': Namespace}."""
    import argparse

    model = build_model_for(_tiny_cfg())
    args = argparse.Namespace(lr=2e-4, backbone="resnet50", lr_drop=[4, 10], masks=True)
    torch.save({"model": model.state_dict(), "epoch": 11, "args": args}, tmp_path / "orig.pth")
    load_model_weights(build_model_for(_tiny_cfg()), tmp_path / "orig.pth")
