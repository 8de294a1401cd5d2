"""The set-prediction criterion shared by every task: match queries to targets, then sum loss terms.

What every task does the same way lives here: the number of ground-truth objects averaged over
ranks (``num_boxes``, the normaliser of every term), taking the matching from the model's outputs
when it matched inside its forward (VIS) or running the one matcher otherwise, and repeating the
losses for each auxiliary decoder layer with suffixes ``_0``, ``_1``, ...  A task criterion only
counts its targets and writes its ``loss_*`` terms (:meth:`SetCriterion.layer_losses`).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from seqformer.models.hungarian import HungarianMatcher
from seqformer.models.losses import Indices, average_num_boxes
from seqformer.structures import Targets


class SetCriterion(nn.Module):
    """``forward(outputs, targets)`` returns every loss term; ``weight_dict`` says which enter the objective."""

    def __init__(self, num_classes: int, matcher: HungarianMatcher, weight_dict: dict[str, float]) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher
        self.weight_dict = weight_dict

    def num_targets(self, targets: Targets) -> int:
        """Ground-truth objects in this rank's batch (instances, actors)."""
        raise NotImplementedError

    def layer_losses(self, outputs: dict[str, Any], targets: Targets, indices: Indices, num_boxes: float,
                     log: bool, batch_outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The task's loss terms of one decoder layer (``batch_outputs``: the last layer's full outputs)."""
        raise NotImplementedError

    def forward(self, outputs: dict[str, Any], targets: Targets) -> dict[str, torch.Tensor]:
        """Loss terms of the last layer, plus ``<key>_<i>`` for ``outputs['aux_outputs'][i]``."""
        num_boxes = average_num_boxes(self.num_targets(targets), outputs["pred_logits"].device)
        losses = self.layer_losses(outputs, targets, self.match(outputs, targets), num_boxes, True, outputs)
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            terms = self.layer_losses(aux, targets, self.match(aux, targets), num_boxes, False, outputs)
            losses.update({f"{k}_{i}": v for k, v in terms.items()})
        return losses

    def match(self, outputs: dict[str, Any], targets: Targets) -> Indices:
        """The model's matching of this layer (``outputs['indices']``) or the matcher's."""
        logits = outputs["pred_logits"]
        if logits.shape[0] != len(targets) or logits.shape[-1] != self.num_classes:
            raise ValueError(
                f"pred_logits {tuple(logits.shape)} does not fit {len(targets)} targets x {self.num_classes} classes"
            )
        indices = outputs.get("indices")
        if indices is None:
            indices = self.matcher(outputs, targets)
        if len(indices) != len(targets):
            raise ValueError(f"{len(indices)} matchings for {len(targets)} clips")
        return indices


def with_aux_weights(weights: dict[str, float], aux_loss: bool, dec_layers: int) -> dict[str, float]:
    """``weights`` plus a copy suffixed ``_0``..``_{L-2}`` for each auxiliary decoder layer."""
    out = dict(weights)
    if aux_loss:
        for i in range(dec_layers - 1):
            out.update({f"{k}_{i}": v for k, v in weights.items()})
    return out
