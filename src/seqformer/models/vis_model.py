"""SeqFormer for video instance segmentation: the shared core plus a dynamic mask head.

Training follows the original: for every decoder layer the Hungarian matcher runs inside the
forward pass and masks are rendered only for the matched queries (rendering 300 queries x T
frames x 6 layers would dominate memory).  Inference renders masks only for the queries asked
for -- the original renders all 300 queries after every layer and keeps the last layer's.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from seqformer.models.layers import MLP, float32, full_precision
from seqformer.models.mask_head import MaskHeadSmallConv, dynamic_mask_logits, dynamic_param_sizes
from seqformer.models.video_detr import HeadOutputs, VideoDETR, level_maps, unpadded_sizes
from seqformer.structures import ClipBatch

Matcher = Callable[[dict, list[dict]], list[tuple[torch.Tensor, torch.Tensor]]]


class SeqFormer(nn.Module):
    def __init__(
        self,
        detr: VideoDETR,
        rel_coord: bool = True,
        mask_out_stride: int = 4,
        matcher: Matcher | None = None,
        masks: bool = True,
        mask_channels: int | None = None,
    ):
        super().__init__()
        self.detr = detr
        self.rel_coord = rel_coord
        self.mask_out_stride = mask_out_stride
        self.with_masks = masks
        hidden_dim = detr.transformer.d_model
        self.in_channels = mask_channels or hidden_dim // 32  # 8 at the original's hidden_dim 256
        if masks:
            w_sizes, b_sizes = dynamic_param_sizes(self.in_channels, rel_coord)
            self.controller = MLP(hidden_dim, hidden_dim, sum(w_sizes) + sum(b_sizes), 3)
            for layer in self.controller.layers:
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
            self.mask_head = MaskHeadSmallConv(hidden_dim, hidden_dim, self.in_channels)
        self.matcher = matcher  # plain callable, not a submodule (no parameters)

    # -- mask rendering ------------------------------------------------------------------
    def _mask_features(self, heads: HeadOutputs) -> torch.Tensor:
        out = heads.transformer
        maps = level_maps(out.memory, out.spatial_shapes, 3)
        feats = self.mask_head(maps)  # [B*T, in_channels, h, w]
        b, t = out.memory.shape[:2]
        return feats.view(b, t, *feats.shape[1:])

    def render_masks(
        self,
        heads: HeadOutputs,
        layer: int,
        query_indices: Sequence[torch.Tensor],
        image_sizes: torch.Tensor,
        mask_feats: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Mask logits [n_b, T, H/4, W/4] of the given queries of each clip at decoder ``layer``.

        The instance location is the layer's input reference point in pixels of the unpadded
        clip (``image_sizes`` [B,2] as (h, w)), as in the original.
        """
        if mask_feats is None:
            mask_feats = self._mask_features(heads)
        with full_precision(mask_feats):  # predicted conv weights: float32 (see layers.full_precision)
            return self._render(heads, layer, query_indices, image_sizes, float32(mask_feats))

    def _render(self, heads, layer, query_indices, image_sizes, mask_feats) -> list[torch.Tensor]:
        params = self.controller(float32(heads.transformer.hs[layer]))  # [B, Q, P]
        ref_xy = heads.references[layer][..., :2].sigmoid()  # [B, T, Q, 2]
        results = []
        for b, q_idx in enumerate(query_indices):
            scale = torch.stack([image_sizes[b, 1], image_sizes[b, 0]]).to(ref_xy)
            points = ref_xy[b][:, q_idx] * scale  # [T, n, 2]
            frames = []
            for t in range(mask_feats.shape[1]):
                feats = mask_feats[b, t][None].expand(len(q_idx), -1, -1, -1)
                inst_points = points[t] if self.rel_coord else None
                frames.append(dynamic_mask_logits(feats, params[b, q_idx], inst_points, self.in_channels,
                                                  self.mask_out_stride))
            results.append(torch.stack(frames, 1))
        return results

    # -- training / evaluation forward -------------------------------------------------
    def forward(self, samples: ClipBatch, targets: list[dict] | None = None) -> dict:
        """Training: per-layer matching and matched-query masks (needs ``targets`` and ``self.matcher``).

        Without targets, returns logits/boxes of every layer and no masks (use :meth:`inference`).
        """
        heads = self.detr.forward_heads(samples)
        layers = []
        sizes = unpadded_sizes(samples)
        render = targets is not None and self.with_masks
        mask_feats = self._mask_features(heads) if render else None
        for lvl in range(len(heads.logits)):
            out = {"pred_logits": heads.logits[lvl], "pred_boxes": heads.boxes[lvl]}
            if render:
                if self.matcher is None:
                    raise RuntimeError("SeqFormer.forward with targets needs model.matcher to be set")
                with full_precision(out["pred_logits"]):  # heads are float32 already
                    indices = self.matcher(out, targets)
                out["indices"] = indices
                out["pred_masks"] = self.render_masks(heads, lvl, [src for src, _ in indices], sizes, mask_feats)
            layers.append(out)
        outputs = dict(layers[-1])
        outputs["input_size"] = tuple(samples.tensors.shape[-2:])
        if self.detr.aux_loss:
            outputs["aux_outputs"] = layers[:-1]
        return outputs

    @torch.no_grad()
    def inference(self, samples: ClipBatch, query_indices: Sequence[torch.Tensor] | None = None) -> dict:
        """The original ``inference()`` outputs, with masks only for ``query_indices`` (default: all).

        Returns ``pred_logits [B,Q,K]``, ``pred_boxes [B,T,Q,4]`` and ``pred_masks``: a list over
        the batch of ``[n_b, T, H/4, W/4]`` mask logits of the requested queries.
        """
        heads = self.detr.forward_heads(samples)
        b, q = heads.logits[-1].shape[:2]
        outputs = {"pred_logits": heads.logits[-1], "pred_boxes": heads.boxes[-1]}
        if self.with_masks:
            if query_indices is None:
                query_indices = [torch.arange(q, device=samples.tensors.device)] * b
            outputs["pred_masks"] = self.render_masks(heads, len(heads.logits) - 1, query_indices, unpadded_sizes(samples))
        return outputs
