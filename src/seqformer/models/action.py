"""SeqFormer for spatio-temporal action detection: the shared core with actor and action heads.

Each instance query is one actor in the clip: its class head gives multi-label action logits,
an extra ``actor_embed`` head gives an actor/no-actor logit, and its per-frame box queries give a
box tube whose keyframe box is the detection (the fork averaged the 32 per-frame box logits and
supervised the mean with the keyframe box).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..utils.clip_batch import ClipBatch
from .detr import VideoDETR, _prior_bias


class ActionSeqFormer(nn.Module):
    def __init__(self, detr: VideoDETR, actor_score: bool = True):
        super().__init__()
        self.detr = detr
        self.actor_score = actor_score
        if actor_score:
            hidden_dim = detr.transformer.d_model
            head = nn.Linear(hidden_dim, 1)
            head.bias.data.fill_(_prior_bias())
            n = len(detr.transformer.decoder.layers)
            if detr.with_box_refine:
                self.actor_embed = nn.ModuleList(copy.deepcopy(head) for _ in range(n))
            else:
                self.actor_embed = nn.ModuleList([head] * n)

    def forward(self, samples: ClipBatch, targets: list[dict] | None = None) -> dict:
        """Returns ``pred_logits [B,Q,K]``, ``pred_actor [B,Q,1]``, ``pred_boxes [B,T,Q,4]`` (+ aux).

        With a temporally strided 3-D backbone the transformer sees fewer frames than the clip;
        boxes are then repeated so that frame index ``t`` of the clip is always valid.
        """
        heads = self.detr.forward_heads(samples)
        t_in = samples.tensors.shape[1]
        layers = []
        for lvl, (logits, boxes) in enumerate(zip(heads.logits, heads.boxes)):
            t_out = boxes.shape[1]
            if t_out != t_in:
                boxes = boxes.repeat_interleave(-(-t_in // t_out), dim=1)[:, :t_in]
            out = {"pred_logits": logits, "pred_boxes": boxes}
            if self.actor_score:
                out["pred_actor"] = self.actor_embed[lvl](heads.transformer.hs[lvl])
            layers.append(out)
        outputs = dict(layers[-1])
        if self.detr.aux_loss:
            outputs["aux_outputs"] = layers[:-1]
        return outputs


def action_scores(outputs: dict) -> torch.Tensor:
    """Per-query, per-class detection scores: sigmoid(action) x sigmoid(actor) when an actor head exists."""
    scores = outputs["pred_logits"].sigmoid()
    if "pred_actor" in outputs:
        scores = scores * outputs["pred_actor"].sigmoid()
    return scores
