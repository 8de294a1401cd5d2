"""ir-CSN 3-D backbone: parameter names/counts, shapes, batch-major layout, freezing and weight loading."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F

from seqformer.models.backbones.csn import (
    Backbone3D,
    CSNBottleneck,
    IrCSN,
    build_csn_backbone,
    caffe2_blob_names,
    load_csn_weights,
)
from seqformer.weight_files import CheckpointError

torch.set_num_threads(1)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Distinct random values in every weight and BN statistic (running_var kept positive)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if key.endswith("num_batches_tracked"):
                continue
            values = torch.rand(t.shape, generator=gen) + 0.5 if key.endswith("running_var") else \
                torch.randn(t.shape, generator=gen) * 0.1
            t.copy_(values)
    return model


def reference_caffe2_blobs(model: IrCSN, starts: list[int]) -> dict[str, np.ndarray]:
    """The VMZ blob layout written independently of the loader's mapping."""
    sd = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    blobs = {"conv1_w": sd["conv1.weight"]}
    for attr, suf in (("weight", "s"), ("bias", "b"), ("running_mean", "rm"), ("running_var", "riv")):
        blobs[f"conv1_spatbn_relu_{suf}"] = sd[f"bn1.{attr}"]
    for stage, start in zip(("layer1", "layer2", "layer3", "layer4"), starts):
        for k in range(len(getattr(model, stage))):
            i, p = start + k, f"{stage}.{k}."
            for n in (1, 3, 4):
                blobs[f"comp_{i}_conv_{n}_w"] = sd[f"{p}conv{n}.weight"]
                for attr, suf in (("weight", "s"), ("bias", "b"), ("running_mean", "rm"), ("running_var", "riv")):
                    blobs[f"comp_{i}_spatbn_{n}_{suf}"] = sd[f"{p}bn{n}.{attr}"]
            if k == 0:
                blobs[f"shortcut_projection_{i}_w"] = sd[f"{p}down_sample.0.weight"]
                for attr, suf in (("weight", "s"), ("bias", "b"), ("running_mean", "rm"), ("running_var", "riv")):
                    blobs[f"shortcut_projection_{i}_spatbn_{suf}"] = sd[f"{p}down_sample.1.{attr}"]
    return blobs


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sb = b.state_dict()
    for key, value in a.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, sb[key]), key


# ------------------------------------------------------------------------------------------ structure

def test_csn50_names_and_parameter_counts_match_spec():
    m = IrCSN(50)
    keys = list(m.state_dict())
    assert keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                        "bn1.num_batches_tracked"]
    assert m.state_dict()["conv1.weight"].shape == (64, 3, 3, 7, 7)
    assert m.state_dict()["layer2.1.conv1.weight"].shape == (128, 512, 1, 1, 1)
    assert m.state_dict()["layer2.1.conv3.weight"].shape == (128, 1, 3, 3, 3)
    assert m.state_dict()["layer2.1.conv4.weight"].shape == (512, 128, 1, 1, 1)
    assert m.state_dict()["layer1.0.down_sample.0.weight"].shape == (256, 64, 1, 1, 1)
    assert {k.split(".")[2] for k in keys if ".down_sample." in k} == {"down_sample"}
    assert sorted({k.rsplit(".", 3)[0] for k in keys if ".down_sample." in k}) == \
        ["layer1.0", "layer2.0", "layer3.0", "layer4.0"]
    assert not any(k.startswith(("out_fc", "fc", "avgpool")) for k in keys)
    # stem 1 conv + 5 BN keys, 16 blocks x 18 keys, 4 projections x 6 keys
    assert len(keys) == 6 + 16 * 18 + 4 * 6
    # the ir-CSN-50 parameter counts: body 12.31 M; stem 28.4 k, layer1 110 k, layer2 644 k, layer3 3.60 M, layer4 7.93 M
    assert round(n_params(m) / 1e6, 2) == 12.31
    assert round((n_params(m.conv1) + n_params(m.bn1)) / 1e3, 1) == 28.4
    assert [round(n_params(getattr(m, f"layer{i}")) / d, r) for i, d, r in
            ((1, 1e3, 0), (2, 1e3, 0), (3, 1e6, 2), (4, 1e6, 2))] == [110, 644, 3.60, 7.93]
    bn = m.layer3[2].bn3
    assert (bn.eps, bn.momentum) == (1e-3, 0.1)


def test_csn152_blocks_and_parameter_count():
    m = IrCSN(152)
    assert [len(getattr(m, f"layer{i}")) for i in range(1, 5)] == [3, 8, 36, 3]

    def stage(in_ch: int, planes: int, blocks: int) -> int:  # conv1 + depthwise conv3 + conv4 + 3 BNs (+ projection)
        block = lambda c: c * planes + planes * 27 + planes * 4 * planes + 2 * (2 * planes + 4 * planes)
        return block(in_ch) + (in_ch * 4 * planes + 2 * 4 * planes) + (blocks - 1) * block(4 * planes)

    expected = 64 * 3 * 3 * 7 * 7 + 2 * 64 + stage(64, 64, 3) + stage(256, 128, 8) + stage(512, 256, 36) \
        + stage(1024, 512, 3)
    assert n_params(m) == expected
    with torch.no_grad():
        out = m.eval()(torch.randn(1, 3, 2, 32, 32))
    assert {k: tuple(v.shape) for k, v in out.items()} == \
        {"layer2": (1, 512, 2, 4, 4), "layer3": (1, 1024, 2, 2, 2), "layer4": (1, 2048, 2, 2, 2)}


def test_bottleneck_matches_functional_definition():
    """conv1 1x1x1 -> depthwise 3x3x3 with stride (t,s,s) and pad 1 -> conv4 x4, BN eps 1e-3, projection."""
    block = randomize(CSNBottleneck(8, 4, spatial_stride=2, temporal_stride=2, project=True), seed=3).eval()
    x = torch.randn(2, 8, 5, 9, 7)

    def bn(y, m):
        return F.batch_norm(y, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, 1e-3)

    y = F.relu(bn(F.conv3d(x, block.conv1.weight), block.bn1))
    y = F.relu(bn(F.conv3d(y, block.conv3.weight, stride=(2, 2, 2), padding=1, groups=4), block.bn3))
    y = bn(F.conv3d(y, block.conv4.weight), block.bn4)
    shortcut = bn(F.conv3d(x, block.down_sample[0].weight, stride=(2, 2, 2)), block.down_sample[1])
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, 16, 3, 5, 4)
    torch.testing.assert_close(out, F.relu(y + shortcut), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ shapes

@pytest.mark.parametrize("temporal_strides, t_out, t_strides", [
    ((1, 1, 1, 1), [8, 8, 8], [1, 1, 1]),
    ((1, 2, 2, 2), [4, 2, 1], [2, 4, 8]),
])
@pytest.mark.parametrize("last_stride, hw4, stride4", [(False, 4, 16), (True, 2, 32)])
def test_backbone3d_shapes_and_strides(temporal_strides, t_out, t_strides, last_stride, hw4, stride4):
    bb = build_csn_backbone(50, temporal_strides, last_stride, frozen_stages=-1).eval()
    assert bb.strides == [8, 16, stride4]
    assert bb.num_channels == [512, 1024, 2048]
    assert bb.temporal_strides == t_strides
    clips = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        levels = bb(clips, torch.zeros(1, 64, 64, dtype=torch.bool))
    sizes = [(8, 8), (4, 4), (hw4, hw4)]
    for (feat, mask), c, t, (h, w), s in zip(levels, bb.num_channels, t_out, sizes, bb.strides):
        assert feat.shape == (1, t, c, h, w)
        assert mask.shape == (1, t, h, w) and mask.dtype == torch.bool
        assert 64 // s == h


def test_odd_input_sizes_follow_conv_arithmetic():
    # hand-computed: stem conv (k7 s2 p3) 70x45 -> 35x23, max-pool (k3 s2 p1) -> 18x12,
    # layer2/3 (k3 s2 p1) -> 9x6 -> 5x3, layer4 with last_stride -> 3x2
    m = IrCSN(50, last_stride=True, out_layers=("layer1", "layer2", "layer3", "layer4")).eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 3, 70, 45))
    assert {k: tuple(v.shape[2:]) for k, v in out.items()} == \
        {"layer1": (3, 18, 12), "layer2": (3, 9, 6), "layer3": (3, 5, 3), "layer4": (3, 3, 2)}


@pytest.mark.slow
def test_ava_resolution_matches_fork_shapes():
    # the fork's feature sizes: 256x455 input, last_stride False -> 32x57, 16x29, 16x29
    bb = build_csn_backbone(50, frozen_stages=-1).eval()
    with torch.no_grad():
        levels = bb(torch.randn(1, 3, 2, 256, 455), torch.zeros(1, 256, 455, dtype=torch.bool))
    assert [tuple(f.shape[-2:]) for f, _ in levels] == [(32, 57), (16, 29), (16, 29)]


def test_out_layers_stop_early_and_validate():
    m = IrCSN(50, out_layers=("layer1",)).eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 2, 32, 32))
    assert list(out) == ["layer1"] and out["layer1"].shape == (1, 256, 2, 8, 8)
    for bad in [dict(depth=101), dict(temporal_strides=(1, 2, 2)), dict(frozen_stages=5),
                dict(out_layers=("layer4", "layer2")), dict(out_layers=("layer5",))]:
        with pytest.raises(ValueError):
            IrCSN(**bad)
    with pytest.raises(ValueError, match=r"\[B, 3, T, H, W\]"):
        m(torch.randn(1, 3, 32, 32))


def test_batch_major_layout_and_masks():
    """Each clip of a batch gives what it gives alone (eval); masks are per clip, repeated over time."""
    bb = build_csn_backbone(50, (1, 2, 1, 1), frozen_stages=-1).eval()
    randomize(bb.body, seed=1)
    clips = torch.randn(2, 3, 4, 64, 64)
    mask = torch.zeros(2, 64, 64, dtype=torch.bool)
    mask[1, :, 32:] = True  # clip 1 is padded on its right half
    with torch.no_grad():
        both = bb(clips, mask)
        alone = [bb(clips[i:i + 1], mask[i:i + 1]) for i in range(2)]
    for lvl, (feat, level_mask) in enumerate(both):
        for i in range(2):
            torch.testing.assert_close(feat[i], alone[i][lvl][0][0], rtol=1e-4, atol=1e-5)
        flat = feat.flatten(0, 1)  # row b * T_l + t
        t_l = feat.shape[1]
        torch.testing.assert_close(flat[t_l + 1], alone[1][lvl][0][0, 1], rtol=1e-4, atol=1e-5)
        assert not level_mask[0].any()
        w = level_mask.shape[-1]
        # nearest resize 64 -> w keeps source column floor(j * 64 / w): padded iff j >= w / 2
        expected_row = torch.arange(w) >= w // 2
        assert torch.equal(level_mask[1], expected_row.expand_as(level_mask[1]))
    with pytest.raises(ValueError, match="mask must be bool"):
        bb(clips, mask[:, :32])


# ------------------------------------------------------------------------------------------ freezing

def test_frozen_stages_semantics():
    def trainable(m: IrCSN) -> dict[str, bool]:
        groups = {"stem": [m.conv1, m.bn1]} | {f"layer{i}": [getattr(m, f"layer{i}")] for i in range(1, 5)}
        return {g: all(p.requires_grad for mod in mods for p in mod.parameters()) for g, mods in groups.items()}

    groups = ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert trainable(IrCSN(50, frozen_stages=-1)) == dict.fromkeys(groups, True)
    assert trainable(IrCSN(50, frozen_stages=0)) == {"stem": False, "layer1": True, "layer2": True, "layer3": True,
                                                    "layer4": True}
    # the fork's tune_point 4: stem, layer1 and layer2 frozen
    assert trainable(IrCSN(50, frozen_stages=2)) == {"stem": False, "layer1": False, "layer2": False,
                                                    "layer3": True, "layer4": True}
    assert not any(p.requires_grad for p in IrCSN(50, frozen_stages=4).parameters())

    m = IrCSN(50, frozen_stages=2, out_layers=("layer3",))
    m(torch.randn(2, 3, 2, 32, 32))["layer3"].sum().backward()
    assert m.layer2[0].conv1.weight.grad is None and m.conv1.weight.grad is None
    assert m.layer3[0].conv1.weight.grad is not None


@pytest.mark.parametrize("norm_eval", [False, True])
def test_norm_eval_controls_frozen_bn_statistics(norm_eval):
    m = IrCSN(50, frozen_stages=1, norm_eval=norm_eval, out_layers=("layer2",)).train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with torch.no_grad():
        m(torch.randn(2, 3, 2, 32, 32))
    after = m.state_dict()
    frozen_changed = not torch.equal(before["layer1.1.bn3.running_mean"], after["layer1.1.bn3.running_mean"])
    assert frozen_changed is not norm_eval  # the fork (norm_eval False) keeps updating frozen BN statistics
    assert m.layer1[1].bn3.training is not norm_eval and m.bn1.training is not norm_eval
    assert m.layer2[0].bn1.training  # trainable stages always follow train()
    assert not torch.equal(before["layer2.0.bn1.running_mean"], after["layer2.0.bn1.running_mean"])


# ------------------------------------------------------------------------------------------ weights

def test_caffe2_names_use_global_block_counter():
    names50, names152 = caffe2_blob_names(IrCSN(50)), caffe2_blob_names(IrCSN(152))
    assert names50["layer2.0.conv1.weight"] == "comp_3_conv_1_w"
    assert names50["layer3.0.down_sample.1.running_var"] == "shortcut_projection_7_spatbn_riv"
    assert names50["layer4.0.bn3.running_mean"] == "comp_13_spatbn_3_rm"
    assert names50["layer4.2.conv4.weight"] == "comp_15_conv_4_w"
    assert names152["layer3.0.down_sample.0.weight"] == "shortcut_projection_11_w"
    assert names152["layer4.0.bn1.weight"] == "comp_47_spatbn_1_s"
    assert names152["layer4.2.bn4.bias"] == "comp_49_spatbn_4_b"
    assert names50["bn1.running_var"] == "conv1_spatbn_relu_riv"


@pytest.fixture
def csn50_blobs() -> tuple[IrCSN, dict[str, np.ndarray]]:
    source = randomize(IrCSN(50), seed=7)
    return source, reference_caffe2_blobs(source, [0, 3, 7, 13])


def test_mat_round_trip_is_exact(tmp_path: Path, csn50_blobs):
    source, blobs = csn50_blobs
    extras = {"last_out_L400_w": np.zeros((400, 2048), np.float32), "last_out_L400_b": np.zeros((1, 400), np.float32),
              "comp_0_conv_1_w_momentum": np.zeros((64, 64, 1, 1, 1), np.float32), "model_iter": np.array([5])}
    path = tmp_path / "irCSN_50.mat"
    scipy.io.savemat(path, {**blobs, **extras})
    assert scipy.io.loadmat(path)["comp_3_spatbn_1_riv"].shape == (1, 128)  # vectors come back as [1, C]
    target = IrCSN(50)
    report = load_csn_weights(target, path)
    assert report.source_format == "caffe2-mat"
    assert len(report.loaded) == 318 - 53  # every key except the 53 num_batches_tracked counters
    assert report.ignored == sorted(extras)
    assert_same_weights(source, target)
    # `_riv` is the running variance itself (no inversion): eval BN == scale * (x - rm) / sqrt(riv + eps) + b
    x = torch.randn(1, 64, 1, 2, 2)
    s, b = (torch.from_numpy(blobs[f"conv1_spatbn_relu_{k}"]) for k in "sb")
    rm, riv = (torch.from_numpy(blobs[f"conv1_spatbn_relu_{k}"]) for k in ("rm", "riv"))
    expected = s.view(1, -1, 1, 1, 1) * (x - rm.view(1, -1, 1, 1, 1)) / torch.sqrt(riv.view(1, -1, 1, 1, 1) + 1e-3) \
        + b.view(1, -1, 1, 1, 1)
    torch.testing.assert_close(target.bn1.eval()(x), expected)


def test_mat_errors_name_file_and_blob(tmp_path: Path, csn50_blobs):
    source, blobs = csn50_blobs
    missing = dict(blobs)
    del missing["comp_9_spatbn_3_rm"]
    scipy.io.savemat(tmp_path / "missing.mat", missing)
    with pytest.raises(ValueError, match=r"missing\.mat: missing caffe2 blob 'comp_9_spatbn_3_rm' for 'layer3\.2\.bn3"):
        load_csn_weights(IrCSN(50), tmp_path / "missing.mat")
    # a CSN-50 file into CSN-152: layer2.4 is comp_7, which the 50 file holds for layer3.0 (other shape)
    scipy.io.savemat(tmp_path / "csn50.mat", blobs)
    with pytest.raises(ValueError, match=r"csn50\.mat: blob 'comp_7_conv_1_w' has shape \[256, 512, 1, 1, 1\]"):
        load_csn_weights(IrCSN(152), tmp_path / "csn50.mat")
    # a deeper file: weights with no place in the model are an error, not silently dropped
    scipy.io.savemat(tmp_path / "extra.mat", {**blobs, "comp_16_conv_1_w": np.zeros((1,), np.float32)})
    with pytest.raises(ValueError, match=r"extra\.mat: blob 'comp_16_conv_1_w' has no place"):
        load_csn_weights(IrCSN(50), tmp_path / "extra.mat")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match=r"junk\.mat: not a readable MATLAB"):
        load_csn_weights(IrCSN(50), tmp_path / "junk.mat")
    with pytest.raises(CheckpointError, match="nothing.mat: MATLAB .mat file not found"):
        load_csn_weights(IrCSN(50), tmp_path / "nothing.mat")


@pytest.mark.parametrize("protocol", [2, 5])
def test_caffe2_pickle_round_trip(tmp_path: Path, csn50_blobs, protocol):
    source, blobs = csn50_blobs
    path = tmp_path / "irCSN_50.pkl"
    with path.open("wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=protocol)
    target = IrCSN(50)
    assert load_csn_weights(target, path).source_format == "caffe2-pkl"
    assert_same_weights(source, target)


def test_caffe2_pickle_refuses_code(tmp_path: Path):
    path = tmp_path / "evil.pkl"
    with path.open("wb") as f:
        pickle.dump({"blobs": {"conv1_w": Path("/x")}}, f)
    with pytest.raises(ValueError, match=r"evil\.pkl: not a caffe2 blob pickle .*refusing to load global pathlib"):
        load_csn_weights(IrCSN(50), path)


def test_state_dict_loading_prefixes_and_wrappers(tmp_path: Path):
    source = randomize(IrCSN(50), seed=11)
    sd = source.state_dict()
    cases = {
        "plain.pth": sd,
        "fork_model.pth": {"model": {**{f"backbone.0.body.{k}": v for k, v in sd.items()},
                                     "transformer.level_embed": torch.zeros(4, 256)}},
        "ddp.pt": {"state_dict": {f"module.backbone.{k}": v for k, v in sd.items()}, "epoch": 3},
        "classifier.pth": {**sd, "out_fc.weight": torch.zeros(400, 2048), "out_fc.bias": torch.zeros(400)},
    }
    for name, obj in cases.items():
        torch.save(obj, tmp_path / name)
        target = build_csn_backbone(50, weights_path=tmp_path / name)
        assert isinstance(target, Backbone3D)
        assert_same_weights(source, target.body)
    report = load_csn_weights(IrCSN(50), tmp_path / "classifier.pth")
    assert report.source_format == "state_dict" and report.ignored == ["out_fc.bias", "out_fc.weight"]
    assert len(report.loaded) == 318  # num_batches_tracked included when present


def test_state_dict_errors(tmp_path: Path):
    sd = IrCSN(50).state_dict()
    broken = {k: v for k, v in sd.items() if k != "layer3.1.conv3.weight"}
    torch.save(broken, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"missing\.pth: missing key 'layer3\.1\.conv3\.weight'"):
        load_csn_weights(IrCSN(50), tmp_path / "missing.pth")
    reshaped = dict(sd, **{"layer4.0.bn4.bias": torch.zeros(7)})
    torch.save(reshaped, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"shape\.pth: key 'layer4\.0\.bn4\.bias' has shape \[7\]"):
        load_csn_weights(IrCSN(50), tmp_path / "shape.pth")
    # CSN-152 weights hold every CSN-50 key with the same shape; the extra blocks must not be dropped silently
    torch.save(IrCSN(152).state_dict(), tmp_path / "csn152.pth")
    with pytest.raises(ValueError, match=r"csn152\.pth: unexpected key 'layer2\.4\.conv1\.weight'"):
        load_csn_weights(IrCSN(50), tmp_path / "csn152.pth")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"other\.pth: no ir-CSN weights found"):
        load_csn_weights(IrCSN(50), tmp_path / "other.pth")
    (tmp_path / "truncated.pth").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match=r"truncated\.pth: not a readable PyTorch checkpoint"):
        load_csn_weights(IrCSN(50), tmp_path / "truncated.pth")
