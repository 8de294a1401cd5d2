"""The AVA actor matcher and criterion against scalar re-derivations written with ``math``."""
from __future__ import annotations

import math

import pytest
import torch

from seqformer.config import Config
from seqformer.engine.task import get_task
from seqformer.engine.trainer import weighted_total
from seqformer.models.ava_criterion import SetCriterionAVA, build_ava_criterion
from seqformer.models.ava_matcher import HungarianMatcherAVA, build_ava_matcher

from scalar_refs import focal_cost_ref, focal_ref, giou_ref, sig


# ----------------------------------------------------------------------------- AVA
def ava_target(boxes: list[list[float]], labels: list[list[int]], key_frame: int, k: int) -> dict:
    multi_hot = torch.zeros(len(boxes), k)
    for n, labs in enumerate(labels):
        multi_hot[n, labs] = 1
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": multi_hot, "key_frame": torch.tensor(key_frame)}


def _ava_cfg(k: int, actor_score: bool = True) -> Config:
    cfg = Config()
    cfg.model.task, cfg.model.num_classes, cfg.model.actor_score = "ava", k, actor_score
    return cfg


def test_ava_matcher_assigns_by_labels_not_by_a_per_query_prior() -> None:
    k = 6
    box = [0.5, 0.5, 0.3, 0.6]
    targets = [ava_target([box, box], [[1, 4], [2]], key_frame=0, k=k)]
    logits = torch.full((1, 2, k), -5.0)
    logits[0, 0, 2] = 5.0  # query 0 says "class 2" -> actor 1
    logits[0, 1, [1, 4]] = 5.0  # query 1 says "classes 1, 4" -> actor 0
    outputs = {"pred_logits": logits, "pred_boxes": torch.tensor(box).expand(1, 1, 2, 4), "pred_actor": torch.zeros(1, 2, 1)}
    for cost in ("bce", "focal"):
        src, tgt = HungarianMatcherAVA(action_cost=cost)(outputs, targets)[0]
        assert dict(zip(src.tolist(), tgt.tolist())) == {0: 1, 1: 0}


def test_ava_matcher_cost_equals_scalar_rederivation() -> None:
    torch.manual_seed(5)
    k, q = 4, 3
    targets = [ava_target([[0.4, 0.5, 0.2, 0.3], [0.6, 0.4, 0.3, 0.2]], [[0, 3], [1]], key_frame=1, k=k)]
    outputs = {"pred_logits": torch.randn(1, q, k), "pred_actor": torch.randn(1, q, 1), "pred_boxes": torch.rand(1, 3, q, 4) * 0.4 + 0.2}
    for cost in ("bce", "focal"):
        matcher = HungarianMatcherAVA(cost_actor=2, cost_action=3, cost_bbox=5, cost_giou=2, action_cost=cost)
        got = matcher.cost_matrices(outputs, targets)[0]
        for i in range(q):
            pred = outputs["pred_boxes"][0, 1, i].tolist()
            for j in range(2):
                gt, y = targets[0]["boxes"][j].tolist(), targets[0]["labels"][j].tolist()
                xs = outputs["pred_logits"][0, i].tolist()
                if cost == "bce":
                    action = sum(-math.log(sig(x)) if v else -math.log(1 - sig(x)) for x, v in zip(xs, y)) / k
                else:
                    action = sum(focal_ref(x, v) for x, v in zip(xs, y)) / k
                want = (5 * sum(abs(a - b) for a, b in zip(pred, gt)) - 2 * giou_ref(pred, gt) + 3 * action
                        + 2 * focal_cost_ref(outputs["pred_actor"][0, i, 0].item()))
                assert got[i, j].item() == pytest.approx(want, abs=1e-5)


def test_ava_keyframe_is_per_clip_and_clips_do_not_mix() -> None:
    torch.manual_seed(6)
    k, q, t = 5, 4, 3
    targets = [ava_target([[0.3, 0.4, 0.2, 0.3]], [[1]], key_frame=0, k=k),
               ava_target([[0.6, 0.5, 0.3, 0.3], [0.2, 0.2, 0.1, 0.1]], [[0, 2], [4]], key_frame=2, k=k)]
    boxes = torch.rand(2, t, q, 4) * 0.1 + 0.8  # far from every GT except where planted
    boxes[0, 0, 3] = targets[0]["boxes"][0]
    boxes[1, 2, 0] = targets[1]["boxes"][0]
    boxes[1, 2, 2] = targets[1]["boxes"][1]
    outputs = {"pred_logits": torch.randn(2, q, k), "pred_actor": torch.randn(2, q, 1), "pred_boxes": boxes}
    crit = SetCriterionAVA(k, HungarianMatcherAVA(cost_action=0.1, cost_actor=0.1), {}, positive_weight=2.0)
    indices = crit.matcher(outputs, targets)
    assert indices[0][0].tolist() == [3] and dict(zip(*[x.tolist() for x in indices[1]])) == {0: 0, 2: 1}
    both = crit(outputs, targets)
    assert both["loss_bbox"].item() == pytest.approx(0.0, abs=1e-6)
    singles = [crit({key: v[c : c + 1] for key, v in outputs.items()}, [targets[c]]) for c in range(2)]
    for key in ("loss_action", "loss_actor", "loss_giou"):
        assert both[key].item() * 3 == pytest.approx(singles[0][key].item() * 1 + singles[1][key].item() * 2, rel=1e-5)
    with pytest.raises(ValueError, match="clip 1: key_frame 3"):
        crit(outputs, [targets[0], dict(targets[1], key_frame=torch.tensor(3))])


def test_ava_action_and_actor_losses_equal_scalar_rederivation() -> None:
    k, q = 3, 3
    targets = [ava_target([[0.5, 0.5, 0.2, 0.2]], [[0, 2]], key_frame=0, k=k)]
    logits = torch.tensor([[[0.5, -1.0, 2.0], [1.5, 0.2, -0.3], [-2.0, 0.0, 0.7]]])
    actor = torch.tensor([[[0.4], [-1.1], [2.2]]])
    outputs = {"pred_logits": logits, "pred_actor": actor, "pred_boxes": torch.tensor([0.5, 0.5, 0.2, 0.2]).expand(1, 1, q, 4)}
    indices = [(torch.tensor([1]), torch.tensor([0]))]
    y = [1, 0, 1]

    def bce(x: float, v: int, w: float) -> float:
        return -(w * v * math.log(sig(x)) + (1 - v) * math.log(1 - sig(x)))

    with_actor = SetCriterionAVA(k, HungarianMatcherAVA(), {}, positive_weight=3.0)(dict(outputs, indices=indices), targets)
    assert with_actor["loss_action"].item() == pytest.approx(sum(bce(x, v, 3.0) for x, v in zip(logits[0, 1].tolist(), y)), rel=1e-6)
    want_actor = focal_ref(-1.1, 1) + focal_ref(0.4, 0) + focal_ref(2.2, 0)
    assert with_actor["loss_actor"].item() == pytest.approx(want_actor, rel=1e-6)
    # top-2 of query 1 is {0, 1}, labels are {0, 2}: wrong
    assert with_actor["action_error"].item() == pytest.approx(100.0)
    no_actor = SetCriterionAVA(k, HungarianMatcherAVA(), {}, positive_weight=3.0)(
        {"pred_logits": logits, "pred_boxes": outputs["pred_boxes"], "indices": indices}, targets)
    want = sum(bce(x, v if i == 1 else 0, 3.0) for i in range(q) for x, v in zip(logits[0, i].tolist(), y))
    assert no_actor["loss_action"].item() == pytest.approx(want, rel=1e-6) and "loss_actor" not in no_actor
    focal = SetCriterionAVA(k, HungarianMatcherAVA(), {}, action_loss="focal")(dict(outputs, indices=indices), targets)
    assert focal["loss_action"].item() == pytest.approx(sum(focal_ref(x, v) for x, v in zip(logits[0, 1].tolist(), y)), rel=1e-6)


def test_ava_keyframes_without_actors_are_finite_and_push_actor_scores_down() -> None:
    k, q = 4, 3
    actor = torch.zeros(2, q, 1, requires_grad=True)
    logits = torch.zeros(2, q, k, requires_grad=True)
    outputs = {"pred_logits": logits, "pred_actor": actor, "pred_boxes": torch.full((2, 2, q, 4), 0.5, requires_grad=True)}
    targets = [ava_target([], [], key_frame=1, k=k) for _ in range(2)]
    crit = build_ava_criterion(_ava_cfg(k), build_ava_matcher(_ava_cfg(k)))
    losses = crit(outputs, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_action"].item() == 0.0
    assert losses["loss_actor"].item() == pytest.approx(2 * q * focal_ref(0.0, 0), rel=1e-6)
    weighted_total(losses, crit.weight_dict).backward()
    assert (actor.grad > 0).all() and torch.isfinite(logits.grad).all()


def test_ava_builders_follow_config() -> None:
    crit = get_task("ava").build_criterion(_ava_cfg(80))
    assert isinstance(crit, SetCriterionAVA) and crit.weight_dict["loss_actor_4"] == 2.0 and "loss_ce" not in crit.weight_dict
    cfg = _ava_cfg(80, actor_score=False)
    cfg.loss.action_loss, cfg.model.aux_loss = "focal", False
    crit = build_ava_criterion(cfg, build_ava_matcher(cfg))
    assert set(crit.weight_dict) == {"loss_action", "loss_bbox", "loss_giou"} and crit.action_loss == "focal"
    matcher = build_ava_matcher(cfg)
    assert matcher.cost_actor == 0.0 and matcher.action_cost == "focal"


def test_ava_optimisation_with_an_empty_keyframe_in_the_batch() -> None:
    torch.manual_seed(7)
    k, q, t = 6, 5, 3
    targets = [ava_target([[0.3, 0.4, 0.2, 0.5], [0.7, 0.5, 0.3, 0.6]], [[0, 3], [5]], key_frame=1, k=k),
               ava_target([], [], key_frame=2, k=k)]
    logits = torch.nn.Parameter(torch.randn(2, q, k) - 2)
    actor = torch.nn.Parameter(torch.randn(2, q, 1) - 2)
    box_logits = torch.nn.Parameter(torch.randn(2, t, q, 4) * 0.5)
    crit = build_ava_criterion(_ava_cfg(k), build_ava_matcher(_ava_cfg(k)))
    opt = torch.optim.Adam([logits, actor, box_logits], lr=0.1)

    def step() -> tuple[torch.Tensor, dict]:
        outputs = {"pred_logits": logits, "pred_actor": actor, "pred_boxes": box_logits.sigmoid()}
        return weighted_total(crit(outputs, targets), crit.weight_dict), outputs

    first = step()[0].item()
    for _ in range(100):
        opt.zero_grad()
        step()[0].backward()
        opt.step()
    with torch.no_grad():
        last, outputs = step()
        src, tgt = crit.matcher(outputs, targets)[0]
    assert last.item() < 0.1 * first
    assert torch.allclose(outputs["pred_boxes"][0, 1, src], targets[0]["boxes"][tgt], atol=0.02)
    assert torch.equal(logits[0, src] > 0, targets[0]["labels"][tgt] > 0.5)
    is_matched = torch.zeros(q, dtype=torch.bool)
    is_matched[src] = True
    assert (actor[0, is_matched] > 0).all() and (actor[0, ~is_matched] < 0).all() and (actor[1] < 0).all()
