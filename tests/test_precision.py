"""Mixed precision and compilation: options, float32 islands under autocast, bf16/fp16 steps, predict agreement."""
from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
import yaml

import seqformer.models.deformable_attention as deformable_attention
from seqformer.cli import main
from seqformer.config import ConfigError, config_from_dict, load_config
from seqformer.data.synth_vis import generate_synthetic_vis
from seqformer.engine import precision
from seqformer.engine.trainer import weighted_total
from seqformer.models.build import build_model
from seqformer.tasks.vis import VISTask
from seqformer.utils.clip_batch import clip_batch_from_tensor, pad_clips

PREDICT_TINY = {"model": {"num_queries": 16, "enc_layers": 1, "dec_layers": 2, "hidden_dim": 64,
                          "dim_feedforward": 128, "nheads": 4, "num_classes": 6}}
TINY = ["model.backbone=tiny", "model.hidden_dim=64", "model.nheads=4", "model.dim_feedforward=128",
        "model.enc_layers=1", "model.dec_layers=2", "model.num_queries=12", "model.num_classes=5", "model.dropout=0.0"]


def test_options_are_validated_and_old_boolean_amp_still_loads():
    cfg = load_config(None, ["train.amp=bf16", "eval.amp=fp16", "train.compile=true", "model.msda_impl=triton"])
    assert (cfg.train.amp, cfg.eval.amp, cfg.train.compile, cfg.model.msda_impl) == ("bf16", "fp16", True, "triton")
    with pytest.raises(ConfigError, match="train.amp must be one of none, bf16, fp16, got 'fp8'"):
        load_config(None, ["train.amp=fp8"])
    with pytest.raises(ConfigError, match="model.msda_impl must be one of"):
        load_config(None, ["model.msda_impl=cuda"])
    # configs saved before train.amp became a string (inside checkpoints) still load
    assert config_from_dict({"train": {"amp": True}}).train.amp == "fp16"
    assert config_from_dict({"train": {"amp": False}}).train.amp == "none"
    with pytest.raises(precision.PrecisionError, match="eval.amp"):
        precision.amp_dtype("half", "eval.amp")


def _tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(load_config(None, TINY))
    with torch.no_grad():  # spread the scores so that rankings mean something
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_bf16_autocast_keeps_sampling_and_heads_in_float32(monkeypatch):
    model = _tiny_model().eval()
    clip = clip_batch_from_tensor(torch.randn(3, 3, 64, 96, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        ref = model.inference(clip)
    seen = []
    original = deformable_attention.ms_deform_attn

    def spy(value, shapes, starts, loc, weights, impl):
        seen.append((value.dtype, loc.dtype, weights.dtype))
        return original(value, shapes, starts, loc, weights, impl=impl)

    monkeypatch.setattr(deformable_attention, "ms_deform_attn", spy)
    precision.prepare_model(model, "bf16")
    convs = [p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    with torch.no_grad(), precision.autocast("bf16", "cpu"):
        out = model.inference(clip)
    assert len(seen) == 3  # 1 encoder + 2 decoder layers
    # the projections ran in bfloat16 (value), the locations and weights stayed float32
    assert all(v == torch.bfloat16 and loc == torch.float32 and w == torch.float32 for v, loc, w in seen), seen
    assert out["pred_logits"].dtype == out["pred_boxes"].dtype == out["pred_masks"][0].dtype == torch.float32
    torch.testing.assert_close(out["pred_logits"], ref["pred_logits"], atol=0.1, rtol=0.05)
    torch.testing.assert_close(out["pred_boxes"], ref["pred_boxes"], atol=0.02, rtol=0.02)
    agree = ((out["pred_masks"][0] > 0) == (ref["pred_masks"][0] > 0)).float().mean()
    assert agree > 0.97


def _vis_batch():
    clips = [torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(2)),
             torch.randn(2, 3, 48, 64, generator=torch.Generator().manual_seed(3))]
    targets = []
    for c in clips:
        h, w = c.shape[-2:]
        masks = torch.zeros(1, 2, h, w, dtype=torch.uint8)
        masks[:, :, 10:30, 10:40] = 1
        targets.append({"labels": torch.tensor([1]), "boxes": torch.tensor([[[25 / w, 20 / h, 30 / w, 20 / h]] * 2]),
                        "masks": masks, "valid": torch.ones(1, 2, dtype=torch.bool),
                        "size": torch.tensor([h, w]), "orig_size": torch.tensor([h, w])})
    return pad_clips(clips, 32), targets


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_step_on_cpu(amp):
    """One optimiser step under CPU autocast: finite float32 losses near the float32 ones, gradients everywhere."""
    cfg = load_config(None, TINY + ["model.num_frames=2", f"train.amp={amp}"])
    task = VISTask()
    inputs, targets = _vis_batch()
    losses = {}
    for mode in ("none", amp):
        torch.manual_seed(0)
        model, criterion = task.build_model(cfg).train(), task.build_criterion(cfg)
        precision.prepare_model(model, mode)
        scaler = precision.grad_scaler(mode, "cpu", init_scale=2.0**8)  # fewer skipped steps than 2**16
        assert scaler.is_enabled() == (mode == "fp16")
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for _ in range(16):  # fp16: the scale halves after each overflowing step
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast(mode, "cpu"):
                outputs = model(inputs, targets)
            loss_dict = criterion(outputs, targets)
            assert all(v.dtype == torch.float32 for v in loss_dict.values())
            loss = weighted_total(loss_dict, criterion.weight_dict)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            finite = all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
            if finite:
                break
            assert mode == "fp16"  # only fp16 may overflow
            scaler.step(optimizer)  # skipped, the scale halves
            scaler.update()
        # every parameter but the encoder's unused output_proj_box gets a finite float32 gradient
        grads = {n: p.grad for n, p in model.named_parameters() if not ("encoder" in n and "output_proj_box" in n)}
        bad = [n for n, g in grads.items() if g is None or g.dtype != torch.float32 or not torch.isfinite(g).all()]
        assert not bad, bad[:5]
        losses[mode] = float(loss.detach())
    assert np.isfinite(losses[amp]) and abs(losses[amp] - losses["none"]) < 0.05 * abs(losses["none"])


def _iou(a, b) -> float:
    inter = mask_util.area(mask_util.merge([a, b], intersect=True))
    union = mask_util.area(mask_util.merge([a, b], intersect=False))
    return float(inter / union) if union else 1.0


def test_predict_vis_bf16_agrees_with_float32(tmp_path):
    """``predict vis eval.amp=bf16`` keeps every well-separated rank of the float32 results, with the same masks.

    bfloat16 moves this random model's scores by up to ~0.01, so only near-ties may swap.
    """
    paths = generate_synthetic_vis(tmp_path / "data", num_train_videos=1, num_val_videos=2, num_frames=3,
                                   size=(64, 96), seed=4)
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(PREDICT_TINY))
    torch.manual_seed(0)
    model = build_model(load_config(cfg_path))
    with torch.no_grad():  # spread the scores over (query, class)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.detr.class_embed[-1].weight.mul_(4.0)
    torch.save({"model": model.state_dict()}, tmp_path / "w.pth")
    results = {}
    for amp in ("none", "bf16"):
        out = tmp_path / f"{amp}.json"
        assert main(["predict", "vis", "--config", str(cfg_path), "--weights", str(tmp_path / "w.pth"),
                     "--images", str(paths["valid_images"]), "--annotations", str(paths["valid_ann"]),
                     "--out", str(out), f"eval.amp={amp}", "data.val_short_side=64"]) == 0
        results[amp] = json.loads(out.read_text())
    checked = 0
    for vid in {r["video_id"] for r in results["none"]}:
        ref = sorted((r for r in results["none"] if r["video_id"] == vid), key=lambda r: -r["score"])
        got = sorted((r for r in results["bf16"] if r["video_id"] == vid), key=lambda r: -r["score"])
        assert len(ref) == len(got) == 10
        scores = [r["score"] for r in ref]
        for i, (a, b) in enumerate(zip(ref, got)):
            gap = min(abs(scores[i] - scores[j]) for j in (i - 1, i + 1) if 0 <= j < len(scores))
            assert abs(a["score"] - b["score"]) < 0.01
            if gap < 0.02:
                continue
            assert a["category_id"] == b["category_id"]
            ious = [_iou(x, y) for x, y in zip(a["segmentations"], b["segmentations"]) if x and y]
            assert ious and np.mean(ious) > 0.9  # a random tiny model: weak mask margins
            checked += 1
    assert checked >= 6


@pytest.mark.slow
def test_compiled_model_matches_eager():
    model = _tiny_model().eval()
    clip = clip_batch_from_tensor(torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        ref = model.inference(clip)
        precision.compile_model(model)
        out = model.inference(clip)
    torch.testing.assert_close(out["pred_logits"], ref["pred_logits"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out["pred_masks"][0], ref["pred_masks"][0], atol=1e-3, rtol=1e-3)
    assert set(model.state_dict()) == set(_tiny_model().state_dict())  # names unchanged by compilation
