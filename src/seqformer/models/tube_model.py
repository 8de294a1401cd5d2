"""SeqFormer as an action-tube detector (JHMDB-21, UCF101-24): one query = one actor tube over the clip.

The shared core (:class:`seqformer.models.video_detr.VideoDETR`) already gives every instance query a
box per frame (its box queries).  This head adds what a tube needs:

* ``pred_logits [B,Q,K]``: one class distribution per tube, from the core's class head on the
  instance query plus, with ``tube_features``, the shape of the query's box tube (the motion that
  defines most actions; see :func:`seqformer.models.layers.tube_descriptor`, shared with AVA).
  Classes are independent sigmoids trained with the focal loss, as in SeqFormer's VIS head, not a
  softmax with a "no action" class: the core's class head, its prior bias, the VIS matcher's focal class
  cost and VIS checkpoints all carry over unchanged, and a background query simply scores low on every
  class instead of needing a tuned no-object weight.  Tube scores are then per class, which is what the
  per-class frame/video AP ranks.
* ``pred_presence [B,T,Q]``: a per-frame "actor present" logit from each frame's box query, so a
  tube can start or end inside the clip (UCF101-24 tubes do).
* ``pred_boxes [B,T,Q,4]``: the core's per-frame boxes (normalised cxcywh).

With a temporally strided 3-D backbone the transformer sees fewer frames than the clip; boxes and
presence are repeated so that frame ``t`` of the clip is always valid (as the AVA head does).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from seqformer.models.layers import MLP, tube_descriptor
from seqformer.models.video_detr import VideoDETR
from seqformer.structures import ClipBatch


def _repeat_frames(x: torch.Tensor, t_in: int) -> torch.Tensor:
    """Repeat dim 1 (frames) of ``x`` so that it has ``t_in`` entries."""
    t_out = x.shape[1]
    return x if t_out == t_in else x.repeat_interleave(-(-t_in // t_out), dim=1)[:, :t_in]


class TubeSeqFormer(nn.Module):
    def __init__(self, detr: VideoDETR, num_frames: int, tube_features: bool = True, presence_score: bool = True):
        super().__init__()
        self.detr = detr
        self.num_frames = num_frames
        self.tube_features = tube_features
        self.presence_score = presence_score
        hidden_dim = detr.transformer.d_model
        n = len(detr.transformer.decoder.layers)
        if tube_features:
            self.tube_embed = MLP(4 * num_frames, hidden_dim, hidden_dim, 2)
        if presence_score:
            head = nn.Linear(hidden_dim, 1)
            nn.init.constant_(head.bias, 2.0)  # start "present": absence is learnt from the tube ends
            heads = (copy.deepcopy(head) for _ in range(n)) if detr.with_box_refine else [head] * n
            self.presence_embed = nn.ModuleList(heads)

    def forward(self, samples: ClipBatch, targets: list[dict] | None = None) -> dict:
        """``pred_logits [B,Q,K]``, ``pred_boxes [B,T,Q,4]``, ``pred_presence [B,T,Q]`` (+ ``aux_outputs``)."""
        heads = self.detr.forward_heads(samples)
        t_in = samples.tensors.shape[1]
        if self.tube_features and t_in != self.num_frames:
            raise ValueError(f"model built for {self.num_frames}-frame clips, got {t_in} frames")
        layers = []
        for lvl, (logits, boxes) in enumerate(zip(heads.logits, heads.boxes)):
            boxes = _repeat_frames(boxes, t_in)
            if self.tube_features:
                hs = heads.transformer.hs[lvl] + self.tube_embed(tube_descriptor(boxes.detach()))
                logits = self.detr.class_embed[lvl](hs)
            out = {"pred_logits": logits, "pred_boxes": boxes}
            if self.presence_score:
                presence = self.presence_embed[lvl](heads.transformer.hs_box[lvl])[..., 0]  # [B, T', Q]
                out["pred_presence"] = _repeat_frames(presence, t_in)
            layers.append(out)
        outputs = dict(layers[-1])
        if self.detr.aux_loss:
            outputs["aux_outputs"] = layers[:-1]
        return outputs


def tube_scores(outputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-query class probabilities ``[B,Q,K]`` and per-frame presence probabilities ``[B,T,Q]`` (1 without a head)."""
    classes = outputs["pred_logits"].sigmoid()
    presence = outputs.get("pred_presence")
    if presence is None:
        b, t, q = outputs["pred_boxes"].shape[:3]
        return classes, classes.new_ones((b, t, q))
    return classes, presence.sigmoid()
