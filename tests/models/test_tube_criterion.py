"""Tube matcher and criterion on partial tubes (tubes that start or end inside the clip), and the tube head."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqformer.config import load_config
from seqformer.engine.task import get_task
from seqformer.models.tube_criterion import SetCriterionTube
from seqformer.models.tube_matcher import HungarianMatcherTube, presence_cost
from seqformer.structures import clip_batch_from_tensor

T, Q, K = 4, 3, 5


def _targets():
    """One clip, two tubes: tube 0 (label 1) lives in frames 0-1, tube 1 (label 3) in all frames."""
    boxes = torch.zeros(2, T, 4)
    boxes[0, :2] = torch.tensor([0.3, 0.3, 0.2, 0.2])
    boxes[1] = torch.tensor([0.7, 0.6, 0.2, 0.3])
    valid = torch.tensor([[True, True, False, False], [True, True, True, True]])
    return [{"labels": torch.tensor([1, 3]), "boxes": boxes, "valid": valid}]


def _outputs(targets):
    """Query 2 = tube 0 on its frames (garbage after it ends), query 0 = tube 1, query 1 = tube 0's box everywhere."""
    boxes = torch.full((1, T, Q, 4), 0.5)
    boxes[0, :, 2] = torch.tensor([0.9, 0.9, 0.1, 0.1])  # garbage ...
    boxes[0, :2, 2] = targets[0]["boxes"][0, :2]  # ... except where tube 0 exists
    boxes[0, :, 0] = targets[0]["boxes"][1]
    boxes[0, :, 1] = torch.tensor([0.35, 0.35, 0.2, 0.2])
    logits = torch.full((1, Q, K), -3.0)
    logits[0, 2, 1] = logits[0, 0, 3] = logits[0, 1, 1] = 3.0
    presence = torch.full((1, T, Q), 4.0)
    presence[0, 2:, 2] = -4.0  # query 2 says "gone" after frame 1
    return {"pred_logits": logits, "pred_boxes": boxes, "pred_presence": presence}


def test_matcher_ignores_frames_where_the_tube_does_not_exist():
    targets = _targets()
    outputs = _outputs(targets)
    matcher = HungarianMatcherTube(cost_class=2, cost_bbox=5, cost_giou=2, cost_presence=1)
    (queries, tubes), = matcher(outputs, targets)
    assert dict(zip(tubes.tolist(), queries.tolist())) == {0: 2, 1: 0}
    box_only = HungarianMatcherTube(cost_class=0, cost_bbox=1, cost_giou=0, cost_presence=0)
    cost = box_only.cost_matrices(outputs, targets)[0]
    assert cost[2, 0] == pytest.approx(0.0, abs=1e-6)  # exact on the 2 valid frames; garbage after is free
    # query 1 is off by 0.05 in cx and cy on the 2 valid frames: mean L1 over valid frames = 0.1
    assert cost[1, 0] == pytest.approx(0.1, abs=1e-6)


def test_presence_cost_is_the_mean_frame_bce():
    logits = torch.randn(T, Q)
    valid = torch.tensor([[True, False, True, True], [False, False, False, True]])
    cost = presence_cost(logits, valid)
    for q in range(Q):
        for n in range(2):
            expected = F.binary_cross_entropy_with_logits(logits[:, q], valid[n].float())
            assert cost[q, n] == pytest.approx(float(expected), rel=1e-5)


def test_criterion_on_partial_tubes():
    targets = _targets()
    outputs = _outputs(targets)
    outputs["pred_boxes"].requires_grad_(True)
    weights = {"loss_ce": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0, "loss_presence": 2.0}
    criterion = SetCriterionTube(K, HungarianMatcherTube(), weights)
    losses = criterion(outputs, targets)
    values = {k: float(v.detach()) for k, v in losses.items()}
    assert values["loss_bbox"] == pytest.approx(0.0, abs=1e-6)
    assert values["loss_giou"] == pytest.approx(0.0, abs=1e-5)
    expected = (F.binary_cross_entropy_with_logits(outputs["pred_presence"][0, :, 2], targets[0]["valid"][0].float())
                + F.binary_cross_entropy_with_logits(outputs["pred_presence"][0, :, 0], targets[0]["valid"][1].float())) / 2
    assert values["loss_presence"] == pytest.approx(float(expected), rel=1e-5)
    assert values["class_error"] == 0.0
    # query 2's boxes after tube 0 ended are not supervised: no gradient reaches them
    total = sum(losses[k] * w for k, w in weights.items())
    total.backward()
    assert outputs["pred_boxes"].grad[0, 2:, 2].abs().max() == 0


def test_tube_head_shapes_and_task_wiring():
    cfg = load_config("configs/jhmdb/tiny_synth.yaml", ["model.num_queries=4", "model.num_frames=4"])
    task = get_task("ucf24")
    model = task.build_model(cfg)
    assert task.build_criterion(cfg).matcher is task.matcher(cfg)
    out = model(clip_batch_from_tensor(torch.rand(2, 4, 3, 32, 48)))
    assert tuple(out["pred_logits"].shape) == (2, 4, 5)
    assert tuple(out["pred_boxes"].shape) == (2, 4, 4, 4) and tuple(out["pred_presence"].shape) == (2, 4, 4)
    assert len(out["aux_outputs"]) == cfg.model.dec_layers - 1 and "pred_presence" in out["aux_outputs"][0]
    with pytest.raises(ValueError, match="4-frame clips"):
        model(clip_batch_from_tensor(torch.rand(1, 3, 3, 32, 48)))
