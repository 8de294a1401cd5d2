"""SeqFormer for spatio-temporal action detection: the shared core with actor and action heads.

Each instance query is one actor in the clip: its class head gives multi-label action logits,
an extra ``actor_embed`` head gives an actor/no-actor logit, and its per-frame box queries give a
box tube whose keyframe box is the detection (the fork averaged the 32 per-frame box logits and
supervised the mean with the keyframe box).

With ``tube_features`` the action head also sees the shape of the actor's box tube (per-frame
offsets and log-scale changes relative to the tube's mean box, detached): the instance query is a
weighted *sum* over frames and so cannot tell "walks left" from "walks right" by itself, while the
tube states exactly that kind of motion.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from seqformer.models.layers import MLP, float32, full_precision, tube_descriptor
from seqformer.models.video_detr import VideoDETR, _prior_bias
from seqformer.structures import ClipBatch


class ActionSeqFormer(nn.Module):
    def __init__(self, detr: VideoDETR, actor_score: bool = True, tube_features: bool = False, num_frames: int = 0):
        super().__init__()
        self.detr = detr
        self.actor_score = actor_score
        self.num_frames = num_frames
        if tube_features:
            if num_frames < 1:
                raise ValueError("tube_features needs the clip length (num_frames)")
            hidden_dim = detr.transformer.d_model
            self.tube_embed = MLP(4 * num_frames, hidden_dim, hidden_dim, 2)
        self.tube_features = tube_features
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
        with full_precision(heads.logits[0]):  # heads in float32, as VideoDETR.forward_heads
            return self._heads(heads, samples.tensors.shape[1])

    def _heads(self, heads, t_in: int) -> dict:
        layers = []
        for lvl, (logits, boxes) in enumerate(zip(heads.logits, heads.boxes)):
            t_out = boxes.shape[1]
            if t_out != t_in:
                boxes = boxes.repeat_interleave(-(-t_in // t_out), dim=1)[:, :t_in]
            if self.tube_features:
                if t_in != self.num_frames:
                    raise ValueError(f"model built for {self.num_frames}-frame clips, got {t_in} frames")
                hs = float32(heads.transformer.hs[lvl]) + self.tube_embed(tube_descriptor(boxes.detach()))
                logits = self.detr.class_embed[lvl](hs)
            out = {"pred_logits": logits, "pred_boxes": boxes}
            if self.actor_score:
                out["pred_actor"] = self.actor_embed[lvl](float32(heads.transformer.hs[lvl]))
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
