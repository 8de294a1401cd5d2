"""SeqFormer's set criterion for video instance segmentation (formulas of the original).

Every box and mask term is summed over matched instances and divided by ``num_boxes`` (the
number of ground-truth instances, averaged over ranks, at least 1), so the loss scale does not
depend on the batch size.  The original's quirks are kept by default: absent-instance frames
are supervised towards a ~0 box and an empty mask, and the mask focal loss uses alpha 0.25
whatever ``focal_alpha`` is.  ``skip_empty_frames=True`` leaves absent frames out of the box
terms (masks keep them: "nothing here" is the right mask for an absent instance).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import torch
import torch.nn.functional as F

from seqformer.models.losses import Indices, dice_loss, sigmoid_focal_loss, source_index
from seqformer.models.set_criterion import SetCriterion, with_aux_weights
from seqformer.models.vis_matcher import HungarianMatcherVIS
from seqformer.structures import Targets
from seqformer.utils.box_ops import box_cxcywh_to_xyxy, elementwise_generalized_box_iou

if TYPE_CHECKING:
    from seqformer.config import Config

MASK_FOCAL_ALPHA = 0.25  # the original's loss_masks calls the focal loss with its default alpha
PAD_DIVISIBILITY = 32  # the original pads GT masks with nested_tensor_from_tensor_list(size_divisibility=32)
KNOWN_LOSSES = ("labels", "cardinality", "boxes", "masks")


def padded_input_size(targets: Targets, divisibility: int = PAD_DIVISIBILITY) -> tuple[int, int]:
    """Batch padding size of the GT masks rounded up to ``divisibility`` (used when the model gives none)."""
    h = max(int(t["masks"].shape[-2]) for t in targets)
    w = max(int(t["masks"].shape[-1]) for t in targets)
    return -(-h // divisibility) * divisibility, -(-w // divisibility) * divisibility


def subsample_target_masks(
    masks: list[torch.Tensor], input_size: tuple[int, int], stride: int = 4
) -> list[torch.Tensor]:
    """GT masks ``[N,T,H,W]`` as seen by stride-``stride`` predictions: ``[N,T,H_pad/s,W_pad/s]`` float.

    Equals zero-padding to ``input_size`` then taking pixels ``s//2, s//2 + s, ...`` (the original's
    ``[..., 2::4, 2::4]``), but subsamples before padding to avoid the full-resolution copy.
    """
    h_pad, w_pad = int(input_size[0]), int(input_size[1])
    if h_pad % stride or w_pad % stride:
        raise ValueError(f"padded input size {(h_pad, w_pad)} is not a multiple of mask_out_stride {stride}")
    start = stride // 2
    out = []
    for b, m in enumerate(masks):
        if m.shape[-2] > h_pad or m.shape[-1] > w_pad:
            raise ValueError(f"clip {b}: GT masks {tuple(m.shape[-2:])} larger than the padded input {(h_pad, w_pad)}")
        sub = m[..., start::stride, start::stride]
        full = sub.new_zeros((*m.shape[:-2], h_pad // stride, w_pad // stride), dtype=torch.float)
        full[..., : sub.shape[-2], : sub.shape[-1]] = sub
        out.append(full)
    return out


class SetCriterionVIS(SetCriterion):
    """SeqFormer's VIS losses: focal class, per-frame box L1 + GIoU, mask focal + dice."""

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcherVIS,
        weight_dict: dict[str, float],
        losses: Iterable[str] = ("labels", "boxes", "masks"),
        focal_alpha: float = 0.25,
        mask_out_stride: int = 4,
        skip_empty_frames: bool = False,
    ) -> None:
        super().__init__(num_classes, matcher, weight_dict)
        self.losses = tuple(losses)
        unknown = set(self.losses) - set(KNOWN_LOSSES)
        if unknown:
            raise ValueError(f"unknown VIS loss(es) {sorted(unknown)}; known: {KNOWN_LOSSES}")
        self.focal_alpha = focal_alpha
        self.mask_out_stride = mask_out_stride
        self.skip_empty_frames = skip_empty_frames

    def num_targets(self, targets: Targets) -> int:
        return sum(len(t["labels"]) for t in targets)

    def layer_losses(self, outputs: dict[str, Any], targets: Targets, indices: Indices, num_boxes: float,
                     log: bool, batch_outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        for name in self.losses:
            if name == "labels":
                losses.update(self.loss_labels(outputs, targets, indices, num_boxes, log))
            elif name == "cardinality":
                losses.update(self.loss_cardinality(outputs, targets))
            elif name == "boxes":
                losses.update(self.loss_boxes(outputs, targets, indices, num_boxes))
            else:
                losses.update(self.loss_masks(outputs, targets, indices, num_boxes, batch_outputs.get("input_size")))
        return losses

    def loss_labels(
        self, outputs: dict[str, Any], targets: Targets, indices: Indices, num_boxes: float, log: bool = True
    ) -> dict[str, torch.Tensor]:
        """Focal loss against one-hot targets; unmatched queries are all-zero ("no object")."""
        logits = outputs["pred_logits"]
        clip, query = source_index(indices, logits.device)
        labels = []
        for b, (t, (_, tgt)) in enumerate(zip(targets, indices)):
            lab = t["labels"][tgt]
            if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= self.num_classes):
                raise ValueError(f"clip {b}: labels {lab.tolist()} outside [0, {self.num_classes})")
            labels.append(lab)
        matched_labels = torch.cat(labels).to(logits.device) if labels else clip.new_zeros(0)
        onehot = torch.zeros_like(logits)
        onehot[clip, query, matched_labels] = 1
        focal = sigmoid_focal_loss(logits, onehot, self.focal_alpha)
        # The original's reduction: mean over queries, sum, / num_boxes, times Q (= sum / num_boxes).
        losses = {"loss_ce": focal.mean(1).sum() / num_boxes * logits.shape[1]}
        if log:
            losses["class_error"] = self._class_error(logits[clip, query], matched_labels)
        return losses

    @staticmethod
    @torch.no_grad()
    def _class_error(matched_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """100 − top-1 accuracy of matched queries; 100 when nothing is matched (DETR's convention)."""
        if labels.numel() == 0:
            return matched_logits.new_tensor(100.0)
        return 100 - (matched_logits.argmax(-1) == labels).float().mean() * 100

    @torch.no_grad()
    def loss_cardinality(self, outputs: dict[str, Any], targets: Targets) -> dict[str, torch.Tensor]:
        """Logging only: |#queries whose argmax is not the last class − #instances|, mean over clips."""
        logits = outputs["pred_logits"]
        predicted = (logits.argmax(-1) != logits.shape[-1] - 1).sum(1).float()
        expected = torch.as_tensor([float(len(t["labels"])) for t in targets], device=logits.device)
        return {"cardinality_error": F.l1_loss(predicted, expected)}

    def loss_boxes(
        self, outputs: dict[str, Any], targets: Targets, indices: Indices, num_boxes: float
    ) -> dict[str, torch.Tensor]:
        """Per instance: L1 summed over the T×4 values / T, and Σ_t (1 − GIoU_t) / T."""
        pred_boxes = outputs["pred_boxes"]
        clip, query = source_index(indices, pred_boxes.device)
        src = pred_boxes.permute(0, 2, 1, 3)[clip, query]  # [n, T, 4]
        tgt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)]).to(src)
        num_frames = src.shape[1]
        l1 = F.l1_loss(src, tgt, reduction="none").sum(-1)  # [n, T]
        giou = 1 - elementwise_generalized_box_iou(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(tgt))  # [n, T]
        if self.skip_empty_frames:
            valid = torch.cat([t["valid"][j] for t, (_, j) in zip(targets, indices)]).to(src)
            count = valid.sum(1).clamp(min=1)
            loss_bbox = (l1 * valid).sum(1) / count
            loss_giou = (giou * valid).sum(1) / count
        else:
            loss_bbox = l1.sum(1) / num_frames
            loss_giou = giou.sum(1) / num_frames
        return {"loss_bbox": loss_bbox.sum() / num_boxes, "loss_giou": loss_giou.sum() / num_boxes}

    def loss_masks(
        self, outputs: dict[str, Any], targets: Targets, indices: Indices, num_boxes: float, input_size: Any
    ) -> dict[str, torch.Tensor]:
        """Focal (mean over T·h·w per instance) and dice (all frames jointly) on stride-4 masks.

        ``pred_masks`` is either the training form, a list over clips of ``[n_b,T,h,w]`` for the
        matched queries in the order of ``outputs['indices']``, or ``[B,Q,T,h,w]`` for all queries.
        """
        if "pred_masks" not in outputs:
            raise KeyError("'masks' loss requested but outputs have no 'pred_masks'")
        src = self._matched_pred_masks(outputs, indices)
        if input_size is None:
            input_size = padded_input_size(targets)
        gt = subsample_target_masks([t["masks"] for t in targets], input_size, self.mask_out_stride)
        tgt = torch.cat([g[j.to(g.device)] for g, (_, j) in zip(gt, indices)]).to(src)
        if src.shape != tgt.shape:
            raise ValueError(
                f"pred_masks {tuple(src.shape)} vs stride-{self.mask_out_stride} GT {tuple(tgt.shape)} "
                f"(padded input size {tuple(input_size)})"
            )
        src, tgt = src.flatten(1), tgt.flatten(1)
        return {
            "loss_mask": sigmoid_focal_loss(src, tgt, MASK_FOCAL_ALPHA).mean(1).sum() / num_boxes,
            "loss_dice": dice_loss(src, tgt).sum() / num_boxes,
        }

    @staticmethod
    def _matched_pred_masks(outputs: dict[str, Any], indices: Indices) -> torch.Tensor:
        pred = outputs["pred_masks"]
        if isinstance(pred, torch.Tensor):
            clip, query = source_index(indices, pred.device)
            return pred[clip, query]
        if "indices" not in outputs:
            raise ValueError("list-form pred_masks (matched queries only) need the model's outputs['indices']")
        for b, (m, (src, _)) in enumerate(zip(pred, indices)):
            if m.shape[0] != len(src):
                raise ValueError(f"clip {b}: {m.shape[0]} predicted masks for {len(src)} matched queries")
        return torch.cat(list(pred))


def vis_weight_dict(cfg: Config) -> dict[str, float]:
    """Loss weights, repeated with suffixes ``_0``..``_{L-2}`` for the auxiliary decoder layers."""
    weights = {"loss_ce": cfg.loss.cls_loss_coef, "loss_bbox": cfg.loss.bbox_loss_coef, "loss_giou": cfg.loss.giou_loss_coef}
    if cfg.model.masks:
        weights.update(loss_mask=cfg.loss.mask_loss_coef, loss_dice=cfg.loss.dice_loss_coef)
    return with_aux_weights(weights, cfg.model.aux_loss, cfg.model.dec_layers)


def build_vis_criterion(cfg: Config, matcher: HungarianMatcherVIS) -> SetCriterionVIS:
    """Criterion with the original's loss list (cardinality logged, masks when the mask head is on).

    ``matcher`` is the instance the model matches with inside its forward, so both always agree.
    """
    losses = ["labels", "boxes", "cardinality"] + (["masks"] if cfg.model.masks else [])
    return SetCriterionVIS(
        num_classes=cfg.model.num_classes,
        matcher=matcher,
        weight_dict=vis_weight_dict(cfg),
        losses=losses,
        focal_alpha=cfg.loss.focal_alpha,
        mask_out_stride=cfg.model.mask_out_stride,
        skip_empty_frames=cfg.loss.skip_empty_frames,
    )
