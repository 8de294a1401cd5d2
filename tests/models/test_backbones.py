"""Backbones, position encodings and Joiner: checkpoint names, shapes, numerics and weight loading."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from seqformer.models.backbones.image import (
    Backbone2D,
    FrozenBatchNorm2d,
    build_backbone,
    load_backbone_weights,
)
from seqformer.models.backbones.swin import SwinTransformerBlock, shifted_window_mask
from seqformer.models.position_encoding import (
    Joiner,
    PositionEmbeddingLearned,
    PositionEmbeddingSine,
)
from seqformer.weight_files import CheckpointError

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
TSV_OF = {"resnet50": "r50", "resnet101": "r101", "resnext101_32x8d": "x101", "swin_l_p4w12": "swin_l"}


@pytest.fixture(scope="module")
def swin_l() -> Joiner:
    """The one real Swin-L of this module (197 M parameters; slow to initialise)."""
    torch.manual_seed(0)
    return build_backbone("swin_l_p4w12").eval()


@pytest.fixture(scope="module")
def resnet50() -> Joiner:
    torch.manual_seed(0)
    return build_backbone("resnet50").eval()


def reference_rows(tag: str) -> list[dict[str, str]]:
    path = REFERENCE / f"seqformer_{tag}_state_dict.tsv"
    if not path.is_file():
        pytest.skip(f"reference state-dict list {path} not available")
    with path.open() as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if r["name"].startswith("detr.backbone.")]


@pytest.mark.parametrize("name", list(TSV_OF))
def test_state_dict_matches_released_checkpoint(name):
    rows = reference_rows(TSV_OF[name])
    with torch.device("meta"):  # names, shapes, dtypes and flags only: no memory, no initialisation
        model = build_backbone(name)
    state = model.state_dict(prefix="detr.backbone.")
    params = dict(model.named_parameters(prefix="detr.backbone"))
    assert list(state) == [r["name"] for r in rows]  # same names in the same order
    for r in rows:
        tensor = state[r["name"]]
        assert "x".join(map(str, tensor.shape)) == r["shape"], r["name"]
        assert str(tensor.dtype).removeprefix("torch.") == r["dtype"], r["name"]
        assert (r["name"] in params) == (r["kind"] == "param"), r["name"]
        if r["kind"] == "param":
            assert str(params[r["name"]].requires_grad) == r["requires_grad"], r["name"]


def test_train_backbone_false_freezes_everything():
    assert not any(p.requires_grad for p in Backbone2D("resnet50", train_backbone=False).parameters())


def test_unknown_backbone_name_is_rejected():
    with pytest.raises(ValueError, match="unknown backbone 'resnet18'"):
        Backbone2D("resnet18")


@pytest.mark.parametrize("name", ["resnet50", "swin_l"])
def test_forward_levels_strides_and_masks(name, request):
    model = request.getfixturevalue(name)
    images = torch.randn(2, 3, 64, 96)
    mask = torch.zeros(2, 64, 96, dtype=torch.bool)
    mask[1, :, 80:] = True
    mask[1, 40:, :] = True
    with torch.no_grad():
        features, pos = model(images, mask)
    assert model.strides == [8, 16, 32]
    assert len(features) == len(pos) == 3
    for (feat, level_mask), p, stride, channels in zip(features, pos, model.strides, model.num_channels):
        assert feat.shape == (2, channels, 64 // stride, 96 // stride)
        # Nearest resize of an exactly divisible size picks every stride-th pixel.
        assert torch.equal(level_mask, mask[:, ::stride, ::stride])
        assert p.shape == (2, 256, 64 // stride, 96 // stride) and p.dtype == feat.dtype
        assert torch.isfinite(feat).all()


def test_resnet_dilation_keeps_c5_at_stride_16():
    model = Backbone2D("resnet50", dilation=True).eval()
    with torch.no_grad():
        (c3, _), (c4, _), (c5, _) = model(torch.randn(1, 3, 64, 64), torch.zeros(1, 64, 64, dtype=torch.bool))
    assert model.strides == [8, 16, 16]
    assert c4.shape[-2:] == c5.shape[-2:] == (4, 4)


def test_swin_accepts_sizes_that_are_not_window_multiples():
    model = build_backbone("swin_t_p4w7").eval()
    with torch.no_grad():
        features, _ = model(torch.randn(1, 3, 70, 101), torch.zeros(1, 70, 101, dtype=torch.bool))
    # 70x101 -> patches 18x26 (windows of 7 pad to 21x28) -> merging rounds up: 9x13, 5x7, 3x4.
    assert [tuple(f.shape[-2:]) for f, _ in features] == [(9, 13), (5, 7), (3, 4)]
    assert all(torch.isfinite(f).all() for f, _ in features)


def test_shifted_window_mask_separates_rolled_regions():
    hp, wp, window, shift = 4, 6, 2, 1

    def region(v: int, size: int) -> int:
        return 0 if v < size - window else (1 if v < size - shift else 2)

    mask = shifted_window_mask(hp, wp, window, shift, torch.device("cpu"))
    assert mask.shape == (hp // window * wp // window, window * window, window * window)
    for wy in range(hp // window):
        for wx in range(wp // window):
            pixels = [(wy * window + i, wx * window + j) for i in range(window) for j in range(window)]
            labels = [3 * region(y, hp) + region(x, wp) for y, x in pixels]
            for a in range(len(pixels)):
                for b in range(len(pixels)):
                    expected = 0.0 if labels[a] == labels[b] else -100.0
                    assert mask[wy * (wp // window) + wx, a, b].item() == expected


def test_swin_block_equals_explicit_softmax_attention():
    torch.manual_seed(0)
    dim, heads, window, shift = 8, 2, 3, 1
    block = SwinTransformerBlock(dim, heads, window, shift).eval()
    x = torch.randn(2, 5, 7, dim)  # padded to 6x9 inside the block
    mask = shifted_window_mask(6, 9, window, shift, x.device)
    with torch.no_grad():
        out = block(x, mask)
        y = F.pad(block.norm1(x), (0, 0, 0, 2, 0, 1)).roll((-shift, -shift), dims=(1, 2))
        result = torch.zeros_like(y)
        attn = block.attn
        table = attn.relative_position_bias_table
        for b in range(2):
            for wy in range(2):
                for wx in range(3):
                    rows, cols = slice(wy * window, (wy + 1) * window), slice(wx * window, (wx + 1) * window)
                    tokens = y[b, rows, cols].reshape(window * window, dim)
                    q, k, v = attn.qkv(tokens).view(-1, 3, heads, dim // heads).unbind(1)
                    for h in range(heads):
                        logits = (q[:, h] * (dim // heads) ** -0.5) @ k[:, h].T
                        for i in range(window * window):
                            for j in range(window * window):
                                (yi, xi), (yj, xj) = divmod(i, window), divmod(j, window)
                                idx = (yi - yj + window - 1) * (2 * window - 1) + (xi - xj + window - 1)
                                logits[i, j] += table[idx, h] + mask[wy * 3 + wx, i, j]
                        head_out = logits.softmax(-1) @ v[:, h]
                        result[b, rows, cols, h * (dim // heads):(h + 1) * (dim // heads)] = (
                            head_out.view(window, window, -1))
        attended = attn.proj(result).roll((shift, shift), dims=(1, 2))[:, :5, :7]
        expected = x + attended
        expected = expected + block.mlp(block.norm2(expected))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def _sine_by_hand(valid: list[list[bool]], i: int, j: int, feats: int) -> list[float]:
    rows, cols = len(valid), len(valid[0])
    y = sum(valid[r][j] for r in range(i + 1))
    x = sum(valid[i][c] for c in range(j + 1))
    y_n = (y - 0.5) / (sum(valid[r][j] for r in range(rows)) + 1e-6) * 2 * math.pi
    x_n = (x - 0.5) / (sum(valid[i][c] for c in range(cols)) + 1e-6) * 2 * math.pi
    out = []
    for v in (y_n, x_n):
        for c in range(feats):
            arg = v / 10000 ** (2 * (c // 2) / feats)
            out.append(math.sin(arg) if c % 2 == 0 else math.cos(arg))
    return out


@pytest.mark.parametrize("layout", ["holes", "bottom_right"])
def test_sine_position_encoding_matches_formula(layout):
    mask = torch.zeros(2, 3, 4, dtype=torch.bool)
    if layout == "holes":  # padding inside rows/columns that keep valid pixels
        mask[0, 2, 2:] = True
        mask[0, 1:, 3] = True
        mask[1, 0, 0] = True
    else:  # the real layout: whole rows/columns padded at the bottom/right
        mask[0, 2, :] = True
        mask[0, :, 3] = True
    feats = 4
    pos = PositionEmbeddingSine(num_pos_feats=feats, temperature=10000, normalize=True)(mask)
    assert pos.shape == (2, 2 * feats, 3, 4) and pos.dtype == torch.float32
    for n in range(2):
        valid = (~mask[n]).tolist()
        for i in range(3):
            for j in range(4):
                # In an all-padding row/column the normalised coordinate is about -3e6, where float32 sin/cos
                # are meaningless (and never used: those positions are masked), so only valid pixels count there.
                if layout == "bottom_right" and not valid[i][j]:
                    continue
                expected = torch.tensor(_sine_by_hand(valid, i, j, feats))
                torch.testing.assert_close(pos[n, :, i, j], expected, rtol=1e-5, atol=1e-5)


def test_learned_position_encoding_layout():
    module = PositionEmbeddingLearned(num_pos_feats=6)
    pos = module(torch.zeros(2, 3, 5, dtype=torch.bool))
    assert pos.shape == (2, 12, 3, 5)
    torch.testing.assert_close(pos[1, :6, 2, 4], module.col_embed.weight[4])
    torch.testing.assert_close(pos[0, 6:, 2, 4], module.row_embed.weight[2])
    with pytest.raises(ValueError, match="up to 50x50"):
        module(torch.zeros(1, 51, 4, dtype=torch.bool))


def test_frozen_batchnorm_equals_eval_batchnorm():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(6).eval()
    with torch.no_grad():
        for t in (bn.weight, bn.bias, bn.running_mean):
            t.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    frozen = FrozenBatchNorm2d(6)
    frozen.load_state_dict(bn.state_dict())  # carries num_batches_tracked, which must be dropped
    assert "num_batches_tracked" not in frozen.state_dict() and not list(frozen.parameters())
    x = torch.randn(3, 6, 5, 4)
    torch.testing.assert_close(frozen(x), bn(x), rtol=1e-5, atol=1e-6)


def _randomised_torchvision_resnet50() -> nn.Module:
    torch.manual_seed(1)
    net = torchvision.models.resnet50(weights=None).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net


@pytest.mark.parametrize("wrapper", ["plain", "model", "state_dict", "safetensors", "seqformer_checkpoint"])
def test_resnet_weights_round_trip(tmp_path, wrapper):
    net = _randomised_torchvision_resnet50()
    state = net.state_dict()  # includes fc.* and num_batches_tracked
    path = tmp_path / ("w.safetensors" if wrapper == "safetensors" else "w.pth")
    if wrapper == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif wrapper == "seqformer_checkpoint":  # a full model checkpoint: only its backbone body is taken
        model_state = {f"detr.backbone.0.body.{k}": v for k, v in state.items() if not k.startswith("fc.")}
        model_state["detr.transformer.level_embed"] = torch.zeros(4, 256)
        torch.save({"model": model_state, "optimizer": {}, "epoch": 11}, path)
    else:
        torch.save(state if wrapper == "plain" else {wrapper: state, "epoch": 3}, path)
    if wrapper == "plain":
        joined = build_backbone("resnet50", weights_path=path)
        assert torch.equal(joined[0].body.layer4[2].bn3.running_var, state["layer4.2.bn3.running_var"])
    backbone = Backbone2D("resnet50").eval()
    report = load_backbone_weights(backbone, path)
    assert report.missing == [] and report.unexpected == []
    body_state = backbone.body.state_dict()
    assert len(report.loaded) == len(body_state) == 265
    for key, value in body_state.items():
        assert torch.equal(value, state[key]), key
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        c3 = backbone(images, torch.zeros(1, 64, 64, dtype=torch.bool))[0][0]
        x = net.maxpool(net.relu(net.bn1(net.conv1(images))))
        torch.testing.assert_close(c3, net.layer2(net.layer1(x)), rtol=1e-4, atol=1e-4)


def test_swin_official_release_layout_loads(tmp_path):
    torch.manual_seed(0)
    source = Backbone2D("swin_t_p4w7").body
    state = {k: v.clone() for k, v in source.state_dict().items()
             if not k.startswith("norm") and not k.endswith("relative_position_index")}
    state["norm.weight"] = torch.ones(768)  # classification-model final norm: reported, not loaded
    state["head.weight"] = torch.zeros(1000, 768)  # classifier: dropped silently
    state["layers.0.blocks.1.attn_mask"] = torch.zeros(64, 49, 49)  # derived buffer: ignored
    torch.save({"model": state}, tmp_path / "swin_tiny_patch4_window7_224.pth")
    fresh = Backbone2D("swin_t_p4w7")
    report = load_backbone_weights(fresh, tmp_path / "swin_tiny_patch4_window7_224.pth")
    assert sorted(report.missing) == sorted(f"norm{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias"))
    assert report.unexpected == ["norm.weight"]
    loaded = fresh.body.state_dict()
    assert len(report.loaded) == len(state) - 3
    for key in report.loaded:
        assert torch.equal(loaded[key], state[key]), key


def test_weight_loading_errors_name_file_and_key(tmp_path):
    backbone = Backbone2D("resnet50")
    state = {k: v for k, v in torchvision.models.resnet50(weights=None).state_dict().items()}
    state["layer1.0.conv2.weight"] = torch.zeros(64, 64, 5, 5)
    wrong = tmp_path / "wrong_shape.pth"
    torch.save(state, wrong)
    with pytest.raises(ValueError, match=r"wrong_shape\.pth.*'layer1\.0\.conv2\.weight'.*\(64, 64, 5, 5\)"):
        load_backbone_weights(backbone, wrong)

    text = tmp_path / "notes.pth"
    text.write_text("this is not a checkpoint\n")
    with pytest.raises(ValueError, match=r"notes\.pth: not a PyTorch .*a text file"):
        load_backbone_weights(backbone, text)

    unrelated = tmp_path / "unrelated.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, unrelated)
    with pytest.raises(ValueError, match=r"unrelated\.pth: no key matches.*'encoder\.weight'"):
        load_backbone_weights(backbone, unrelated)

    with pytest.raises(CheckpointError, match="missing.pth: backbone weights file not found"):
        load_backbone_weights(backbone, tmp_path / "missing.pth")
