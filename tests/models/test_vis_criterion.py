"""The VIS matcher and criterion (and the shared loss pieces) against scalar re-derivations written with ``math``."""
from __future__ import annotations

import os
import tempfile

import pytest
import torch
import torch.nn.functional as F

from seqformer.config import Config
from seqformer.engine.task import get_task
from seqformer.engine.trainer import weighted_total
from seqformer.models.losses import average_num_boxes, dice_loss, sigmoid_focal_loss
from seqformer.models.vis_criterion import (
    SetCriterionVIS,
    subsample_target_masks,
)
from seqformer.models.vis_matcher import HungarianMatcherVIS

from scalar_refs import focal_cost_ref, focal_ref, giou_ref, sig, vis_target


# ----------------------------------------------------------------------------- shared pieces
def test_focal_and_dice_match_hand_formulas() -> None:
    x = torch.tensor([[0.3, -1.2, 2.0, -0.1]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    got = sigmoid_focal_loss(x, y)
    want = [focal_ref(a, b) for a, b in zip(x[0].tolist(), y[0].tolist())]
    assert got[0].tolist() == pytest.approx(want, rel=1e-12)
    p = [sig(v) for v in x[0].tolist()]
    dice_want = 1 - (2 * (p[0] + p[2]) + 1) / (sum(p) + 2 + 1)
    assert dice_loss(x, y).item() == pytest.approx(dice_want, rel=1e-12)


def test_num_boxes_is_clamped_and_all_reduced_in_a_process_group() -> None:
    assert average_num_boxes(0, torch.device("cpu")) == 1.0
    assert average_num_boxes(7, torch.device("cpu")) == 7.0
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed not built")
    with tempfile.TemporaryDirectory() as tmp:
        torch.distributed.init_process_group("gloo", init_method=f"file://{os.path.join(tmp, 'pg')}", rank=0, world_size=1)
        try:
            assert average_num_boxes(5, torch.device("cpu")) == 5.0
            assert average_num_boxes(0, torch.device("cpu")) == 1.0
        finally:
            torch.distributed.destroy_process_group()


# ----------------------------------------------------------------------------- VIS matcher
def test_vis_matcher_recovers_a_permutation() -> None:
    torch.manual_seed(0)
    q, t, k = 6, 3, 5
    gt = torch.rand(3, t, 4) * 0.3 + 0.3
    boxes = torch.rand(1, t, q, 4) * 0.2 + 0.1
    logits = torch.full((1, q, k), -4.0)
    for g, query in enumerate([4, 0, 2]):
        boxes[0, :, query] = gt[g]
        logits[0, query, [1, 3, 2][g]] = 4.0
    src, tgt = HungarianMatcherVIS()({"pred_logits": logits, "pred_boxes": boxes}, [vis_target([1, 3, 2], gt)])[0]
    assert dict(zip(src.tolist(), tgt.tolist())) == {0: 1, 2: 2, 4: 0}
    assert src.dtype == tgt.dtype == torch.int64


def test_vis_matcher_cost_equals_scalar_rederivation() -> None:
    torch.manual_seed(1)
    q, t, k = 3, 2, 4
    logits = torch.randn(1, q, k)
    boxes = torch.rand(1, t, q, 4) * 0.4 + 0.2
    gt = torch.rand(2, t, 4) * 0.4 + 0.2
    labels = [2, 0]
    for box_cost, norm in (("l2", 2), ("l1", 1)):
        matcher = HungarianMatcherVIS(cost_class=2, cost_bbox=5, cost_giou=2, box_cost=box_cost)
        cost = matcher.cost_matrices({"pred_logits": logits, "pred_boxes": boxes}, [vis_target(labels, gt)])[0]
        for i in range(q):
            for j in range(2):
                diffs = [abs(boxes[0, f, i, c].item() - gt[j, f, c].item()) for f in range(t) for c in range(4)]
                c_box = sum(d**norm for d in diffs) ** (1 / norm)
                c_giou = -sum(giou_ref(boxes[0, f, i].tolist(), gt[j, f].tolist()) for f in range(t)) / t
                c_cls = focal_cost_ref(logits[0, i, labels[j]].item())
                assert cost[i, j].item() == pytest.approx(5 * c_box + 2 * c_cls + 2 * c_giou, abs=1e-5)


def test_l2_and_l1_box_costs_pick_different_queries() -> None:
    # query 0 is off by 0.1 in all four values (L1 0.4, L2 0.2); query 1 by 0.3 in one (L1 0.3, L2 0.3)
    gt = torch.tensor([[[0.5, 0.5, 0.3, 0.3]]])
    boxes = torch.tensor([[[[0.6, 0.6, 0.4, 0.4], [0.8, 0.5, 0.3, 0.3]]]])
    outputs = {"pred_logits": torch.zeros(1, 2, 1), "pred_boxes": boxes}
    target = [vis_target([0], gt)]
    pick = {c: HungarianMatcherVIS(cost_class=0, cost_giou=0, box_cost=c)(outputs, target)[0][0].item() for c in ("l1", "l2")}
    assert pick == {"l2": 0, "l1": 1}


def test_skip_empty_frames_ignores_absent_frames_in_matching() -> None:
    gt = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [1e-6, 1e-6, 1e-6, 1e-6]]])  # absent in frame 1 (original's ~0 box)
    exact_then_far = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]])
    off_then_zero = torch.tensor([[0.56, 0.5, 0.2, 0.2], [0.01, 0.01, 0.01, 0.01]])
    boxes = torch.stack([exact_then_far, off_then_zero], dim=1)[None]  # [1, T=2, Q=2, 4]
    target = vis_target([0], gt)
    target["valid"] = torch.tensor([[True, False]])
    outputs = {"pred_logits": torch.zeros(1, 2, 1), "pred_boxes": boxes}
    original = HungarianMatcherVIS(cost_class=0)(outputs, [target])[0][0].item()
    skipping = HungarianMatcherVIS(cost_class=0, skip_empty_frames=True)(outputs, [target])[0][0].item()
    assert (original, skipping) == (1, 0)
    for norm, name in ((2, "l2"), (1, "l1")):
        cost = HungarianMatcherVIS(cost_class=0, box_cost=name, skip_empty_frames=True).cost_matrices(outputs, [target])[0]
        for i in range(2):
            pred = boxes[0, 0, i].tolist()  # frame 0 only
            c_box = sum(abs(a - b) ** norm for a, b in zip(pred, gt[0, 0].tolist())) ** (1 / norm)
            assert cost[i, 0].item() == pytest.approx(5 * c_box - 2 * giou_ref(pred, gt[0, 0].tolist()), abs=1e-6)


# ----------------------------------------------------------------------------- VIS criterion
def test_subsample_target_masks_equals_pad_to_32_then_slice_2_every_4() -> None:
    torch.manual_seed(2)
    masks = [(torch.rand(2, 3, 45, 70) > 0.5).to(torch.uint8), (torch.rand(1, 3, 61, 33) > 0.5).to(torch.uint8)]
    size = (64, 96)  # max (61, 70) rounded up to multiples of 32
    got = subsample_target_masks(masks, size, stride=4)
    for m, g in zip(masks, got):
        padded = F.pad(m, (0, size[1] - m.shape[-1], 0, size[0] - m.shape[-2]))
        assert torch.equal(g, padded[..., 2::4, 2::4].float())
    single = torch.zeros(1, 1, 10, 10, dtype=torch.uint8)
    single[0, 0, 2, 6] = 1  # row 2 -> 0, col 6 -> 1
    single[0, 0, 3, 3] = 1  # not on the stride-4 grid: dropped
    sub = subsample_target_masks([single], (32, 32))[0]
    assert sub.shape == (1, 1, 8, 8) and sub.sum() == 1 and sub[0, 0, 0, 1] == 1


def _vis_case() -> tuple[dict, list[dict]]:
    torch.manual_seed(3)
    b, q, t, k = 2, 4, 2, 3
    outputs = {
        "pred_logits": torch.randn(b, q, k, dtype=torch.float64),
        "pred_boxes": torch.rand(b, t, q, 4, dtype=torch.float64) * 0.4 + 0.2,
        "input_size": (32, 32),
    }
    targets = [
        vis_target([2, 0], torch.rand(2, t, 4) * 0.4 + 0.2, torch.rand(2, t, 30, 25) > 0.5),
        vis_target([1], torch.rand(1, t, 4) * 0.4 + 0.2, torch.rand(1, t, 20, 32) > 0.5),
    ]
    return outputs, targets


def test_vis_criterion_equals_scalar_rederivation() -> None:
    outputs, targets = _vis_case()
    b, q, k = outputs["pred_logits"].shape
    t = outputs["pred_boxes"].shape[1]
    indices = [(torch.tensor([1, 3]), torch.tensor([1, 0])), (torch.tensor([2]), torch.tensor([0]))]
    pred_masks = [torch.randn(2, t, 8, 8, dtype=torch.float64), torch.randn(1, t, 8, 8, dtype=torch.float64)]
    outputs.update(indices=indices, pred_masks=pred_masks)
    crit = SetCriterionVIS(k, HungarianMatcherVIS(), {}, losses=("labels", "cardinality", "boxes", "masks"))
    got = crit(outputs, targets)

    num_boxes = 3
    pairs = [(c, int(s), int(g), n) for c, (src, tgt) in enumerate(indices) for n, (s, g) in enumerate(zip(src, tgt))]
    onehot = {(c, s, targets[c]["labels"][g].item()) for c, s, g, _ in pairs}
    logits = outputs["pred_logits"]
    ce = sum(focal_ref(logits[c, i, j].item(), 1 if (c, i, j) in onehot else 0) for c in range(b) for i in range(q) for j in range(k))
    assert got["loss_ce"].item() == pytest.approx(ce / num_boxes, rel=1e-9)
    correct = sum(int(logits[c, s].argmax()) == targets[c]["labels"][g].item() for c, s, g, _ in pairs)
    assert got["class_error"].item() == pytest.approx(100 - 100 * correct / 3)
    card = [sum(int(logits[c, i].argmax()) != k - 1 for i in range(q)) for c in range(b)]
    assert got["cardinality_error"].item() == pytest.approx((abs(card[0] - 2) + abs(card[1] - 1)) / 2)

    l1 = giou = mask = dice = 0.0
    for c, s, g, n in pairs:
        pred, gt = outputs["pred_boxes"][c, :, s], targets[c]["boxes"][g]
        l1 += (pred - gt).abs().sum().item() / t
        giou += sum(1 - giou_ref(pred[f].tolist(), gt[f].tolist()) for f in range(t)) / t
        full = torch.zeros(t, 32, 32)
        m = targets[c]["masks"][g]
        full[:, : m.shape[-2], : m.shape[-1]] = m.float()
        gt_mask = [full[f, 2 + 4 * r, 2 + 4 * col].item() for f in range(t) for r in range(8) for col in range(8)]
        logit = pred_masks[c][n].flatten().tolist()
        mask += sum(focal_ref(x, y) for x, y in zip(logit, gt_mask)) / len(logit)
        p = [sig(x) for x in logit]
        dice += 1 - (2 * sum(a * y for a, y in zip(p, gt_mask)) + 1) / (sum(p) + sum(gt_mask) + 1)
    assert got["loss_bbox"].item() == pytest.approx(l1 / num_boxes, rel=1e-9)
    assert got["loss_giou"].item() == pytest.approx(giou / num_boxes, rel=1e-6)
    assert got["loss_mask"].item() == pytest.approx(mask / num_boxes, rel=1e-9)
    assert got["loss_dice"].item() == pytest.approx(dice / num_boxes, rel=1e-9)


def test_vis_criterion_matches_itself_when_no_indices_and_accepts_all_query_masks() -> None:
    outputs, targets = _vis_case()
    outputs["pred_masks"] = torch.randn(2, 4, 2, 8, 8, dtype=torch.float64)
    crit = SetCriterionVIS(3, HungarianMatcherVIS(), {})
    own = crit(outputs, targets)
    indices = crit.matcher(outputs, targets)
    listed = dict(outputs, indices=indices, pred_masks=[outputs["pred_masks"][c, s] for c, (s, _) in enumerate(indices)])
    given = crit(listed, targets)
    assert own.keys() == given.keys()
    for key in own:
        assert own[key].item() == pytest.approx(given[key].item(), rel=1e-12), key
    swapped = dict(listed, indices=[(s, tgt.flip(0)) for s, tgt in indices])
    assert crit(swapped, targets)["loss_bbox"].item() != pytest.approx(own["loss_bbox"].item())


def test_vis_list_masks_without_indices_is_an_error() -> None:
    outputs, targets = _vis_case()
    outputs["pred_masks"] = [torch.zeros(2, 2, 8, 8), torch.zeros(1, 2, 8, 8)]
    with pytest.raises(ValueError, match="indices"):
        SetCriterionVIS(3, HungarianMatcherVIS(), {})(outputs, targets)


def test_vis_builder_aux_losses_weights_and_empty_clips() -> None:
    cfg = Config()
    cfg.model.num_classes = 3
    task = get_task("vis")
    crit = task.build_criterion(cfg)
    assert isinstance(crit, SetCriterionVIS) and crit.losses == ("labels", "boxes", "cardinality", "masks")
    assert crit.weight_dict["loss_dice_4"] == cfg.loss.dice_loss_coef and "loss_ce_5" not in crit.weight_dict
    assert len(crit.weight_dict) == 5 * 6
    outputs, targets = _vis_case()
    targets[1] = vis_target([], torch.zeros(0, 2, 4), torch.zeros(0, 2, 20, 32))
    outputs["pred_masks"] = torch.randn(2, 4, 2, 8, 8, dtype=torch.float64)
    layer = {key: outputs[key] for key in ("pred_logits", "pred_boxes", "pred_masks")}
    outputs["aux_outputs"] = [dict(layer), dict(layer)]
    losses = crit(outputs, targets)
    assert "class_error" in losses and "class_error_0" not in losses and "loss_dice_1" in losses
    assert losses["loss_ce_0"].item() == pytest.approx(losses["loss_ce"].item())
    assert all(torch.isfinite(v).all() for v in losses.values())
    total = weighted_total(losses, crit.weight_dict)
    manual = sum(losses[key].item() * w for key, w in crit.weight_dict.items() if key in losses)
    assert total.item() == pytest.approx(manual)
    # all clips empty: num_boxes clamps to 1 and only the "no object" focal terms remain
    empty = [vis_target([], torch.zeros(0, 2, 4), torch.zeros(0, 2, 20, 32)) for _ in range(2)]
    losses = SetCriterionVIS(3, HungarianMatcherVIS(), {})({k: outputs[k] for k in layer}, empty)
    want = sigmoid_focal_loss(outputs["pred_logits"], torch.zeros_like(outputs["pred_logits"])).sum()
    assert losses["loss_ce"].item() == pytest.approx(want.item()) and losses["loss_bbox"].item() == 0.0


def test_vis_skip_empty_frames_leaves_absent_frames_out_of_box_losses() -> None:
    gt = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [1e-6, 1e-6, 1e-6, 1e-6]]])
    target = vis_target([0], gt)
    target["valid"] = torch.tensor([[True, False]])
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.4, 0.6, 0.3, 0.1]])[:, None][None]  # [1, T=2, Q=1, 4]
    outputs = {"pred_logits": torch.zeros(1, 1, 1), "pred_boxes": boxes, "indices": [(torch.tensor([0]), torch.tensor([0]))]}
    skipping = SetCriterionVIS(1, HungarianMatcherVIS(), {}, losses=("boxes",), skip_empty_frames=True)(outputs, [target])
    assert skipping["loss_bbox"].item() == pytest.approx(0.0, abs=1e-7) and skipping["loss_giou"].item() == pytest.approx(0.0, abs=1e-6)
    original = SetCriterionVIS(1, HungarianMatcherVIS(), {}, losses=("boxes",))(outputs, [target])
    assert original["loss_bbox"].item() == pytest.approx((1.4 - 4e-6) / 2, rel=1e-5)


def test_vis_optimisation_drives_predictions_to_targets() -> None:
    torch.manual_seed(4)
    q, t, k = 5, 2, 3
    targets = [vis_target([2, 0], torch.tensor([[[0.3, 0.3, 0.2, 0.2]] * t, [[0.7, 0.6, 0.3, 0.4]] * t]),
                          torch.rand(2, t, 32, 32) > 0.5)]
    logits = torch.nn.Parameter(torch.randn(1, q, k) - 2)
    box_logits = torch.nn.Parameter(torch.randn(1, t, q, 4) * 0.5)
    masks = torch.nn.Parameter(torch.randn(1, q, t, 8, 8))
    crit = SetCriterionVIS(k, HungarianMatcherVIS(), {"loss_ce": 2, "loss_bbox": 5, "loss_giou": 2, "loss_mask": 2, "loss_dice": 5})
    opt = torch.optim.Adam([logits, box_logits, masks], lr=0.1)

    def step() -> tuple[torch.Tensor, dict]:
        outputs = {"pred_logits": logits, "pred_boxes": box_logits.sigmoid(), "pred_masks": masks, "input_size": (32, 32)}
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
    assert torch.allclose(outputs["pred_boxes"][0][:, src], targets[0]["boxes"][tgt].transpose(0, 1), atol=0.02)
    assert (logits[0, src].sigmoid().argmax(-1) == targets[0]["labels"][tgt]).all()
    gt_masks = subsample_target_masks([targets[0]["masks"]], (32, 32))[0][tgt]
    assert torch.equal(masks[0, src] > 0, gt_masks > 0.5)
