"""The model on a CUDA GPU: same numbers as on the CPU, autocast, loss scaling (skipped without a GPU).

Run by ``benchmarks/gpu/run.sh`` (``pytest -m cuda``); on CPU-only machines every test here skips.
"""
from __future__ import annotations

import pytest
import torch

from seqformer.config import load_config
from seqformer.engine import precision
from seqformer.engine.trainer import weighted_total
from seqformer.structures import ClipBatch, clip_batch_from_tensor
from seqformer.tasks.vis import VISTask

from helpers import build_model_for

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

TINY = ["model.backbone=tiny", "model.hidden_dim=64", "model.nheads=4", "model.dim_feedforward=128",
        "model.enc_layers=2", "model.dec_layers=2", "model.num_queries=12", "model.num_classes=5", "model.dropout=0.0"]


def _model(impl: str = "auto"):
    torch.manual_seed(0)
    model = build_model_for(load_config(None, TINY + [f"model.msda_impl={impl}"]))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("impl", ["auto", "pytorch"])
def test_cuda_inference_matches_cpu(impl):
    """auto = the Triton kernel on CUDA; both backends reproduce the CPU float32 outputs."""
    clip = torch.randn(3, 3, 96, 160, generator=torch.Generator().manual_seed(1))
    model = _model(impl)
    with torch.no_grad():
        ref = model.inference(clip_batch_from_tensor(clip))
        out = model.cuda().inference(clip_batch_from_tensor(clip.cuda()))
    torch.testing.assert_close(out["pred_logits"].cpu(), ref["pred_logits"], atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(out["pred_boxes"].cpu(), ref["pred_boxes"], atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(out["pred_masks"][0].cpu(), ref["pred_masks"][0], atol=2e-3, rtol=1e-3)


def test_uint8_frames_normalised_on_the_gpu_equal_cpu():
    g = torch.Generator().manual_seed(2)
    pixels = torch.randint(0, 256, (1, 2, 3, 32, 48), dtype=torch.uint8, generator=g)
    cmap = torch.eye(3)[None] + 0.01 * torch.randn(1, 3, 3, generator=g)
    batch = ClipBatch(pixels, torch.zeros(1, 2, 32, 48, dtype=torch.bool), cmap)
    torch.testing.assert_close(batch.to("cuda").normalized().cpu(), batch.normalized(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_mixed_precision_training_steps(amp):
    """Autocast + (for fp16) loss scaling on CUDA: finite float32 losses that go down over a few steps."""
    from test_precision import _vis_batch

    cfg = load_config(None, TINY + ["model.num_frames=2", f"train.amp={amp}"])
    torch.manual_seed(0)
    task = VISTask()
    model, criterion = task.build_model(cfg).cuda().train(), task.build_criterion(cfg).cuda()
    precision.prepare_model(model, amp)
    scaler = precision.grad_scaler(amp, "cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs, targets = _vis_batch()
    inputs = inputs.to("cuda")
    targets = [{k: v.cuda() for k, v in t.items()} for t in targets]
    losses = []
    for _ in range(12):
        with precision.autocast(amp, "cuda"):
            outputs = model(inputs, targets)
        loss_dict = criterion(outputs, targets)
        assert all(v.dtype == torch.float32 for v in loss_dict.values())
        loss = weighted_total(loss_dict, criterion.weight_dict)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(float(loss.detach()))
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert sum(losses[-3:]) / 3 < losses[0]
