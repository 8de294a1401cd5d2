"""SeqFormer's deformable transformer: a per-frame encoder and a decoder with decomposed queries.

Decoder queries are split in two: one *instance query* per object shared by all
frames, and per-frame *box queries* that attend to their own frame.  After cross-attention,
learned per-frame weights (softmax over time) aggregate the frames' sampled features into the
instance query.  Frames are folded into the batch axis wherever the original loops over them.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.init import constant_, normal_, xavier_uniform_

from seqformer.models.deformable_attention import MSDeformAttn
from seqformer.models.layers import float32, full_precision, inverse_sigmoid


@dataclass
class TransformerOutput:
    hs: torch.Tensor  # [L_dec, B, Q, C] instance queries after each decoder layer
    hs_box: torch.Tensor  # [L_dec, B, T, Q, C] box queries after each decoder layer
    memory: torch.Tensor  # [B, T, S, C] encoder output
    init_reference: torch.Tensor  # [B, T, Q, 2]
    inter_references: torch.Tensor  # [L_dec, B, T, Q, 2|4] reference *after* each layer
    valid_ratios: torch.Tensor  # [B, L, 2] (w, h) of frame 0
    spatial_shapes: torch.Tensor  # [L, 2]
    level_start_index: torch.Tensor  # [L]


def _clones(module: nn.Module, n: int) -> nn.ModuleList:
    return nn.ModuleList(copy.deepcopy(module) for _ in range(n))


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, d_ffn: int, dropout: float, n_levels: int, n_heads: int, n_points: int, impl: str):
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points, impl)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src, pos, reference_points, spatial_shapes, level_start_index, padding_mask):
        sampled = self.self_attn.sample(src + pos, reference_points, src, spatial_shapes, level_start_index, padding_mask)
        src = self.norm1(src + self.dropout1(self.self_attn.output_proj(sampled)))
        src2 = self.linear2(self.dropout2(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout3(src2))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, d_ffn: int, dropout: float, n_levels: int, n_heads: int, n_points: int, impl: str):
        super().__init__()
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points, impl)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.dropout1_box = nn.Dropout(dropout)
        self.norm1_box = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.self_attn_box = nn.MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.dropout2_box = nn.Dropout(dropout)
        self.norm2_box = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)
        self.linear1_box = nn.Linear(d_model, d_ffn)
        self.dropout3_box = nn.Dropout(dropout)
        self.linear2_box = nn.Linear(d_ffn, d_model)
        self.dropout4_box = nn.Dropout(dropout)
        self.norm3_box = nn.LayerNorm(d_model)
        self.time_attention_weights = nn.Linear(d_model, 1)

    @staticmethod
    def _self_attention(attn: nn.MultiheadAttention, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Sequence-first MHA with q = k = x + pos and v = x; x is [N, Q, C].

        The inputs are made contiguous: a transposed view makes the input projection a batched
        matmul against the weight expanded per query (300 copies of 256x256 per call on the CPU).
        """
        q = (x + pos).transpose(0, 1).contiguous()
        return attn(q, q, x.transpose(0, 1).contiguous())[0].transpose(0, 1)

    def forward(self, tgt, tgt_box, query_pos, reference_points, memory, spatial_shapes, level_start_index, padding_mask):
        """tgt [B,Q,C]; tgt_box [B,Q,C] before the first layer, else [B,T,Q,C]; returns both updated."""
        tgt = self.norm2(tgt + self.dropout2(self._self_attention(self.self_attn, tgt, query_pos)))
        b, t = memory.shape[:2]
        if tgt_box.dim() == 3:  # first layer: one shared box query
            tgt_box = self.norm2_box(tgt_box + self.dropout2_box(self._self_attention(self.self_attn_box, tgt_box, query_pos)))
            query_box = (tgt_box + query_pos)[:, None]
            residual_box = tgt_box[:, None]
        else:  # per-frame box self-attention with shared weights
            q, c = tgt_box.shape[2:]
            flat = tgt_box.reshape(b * t, q, c)
            pos = query_pos.repeat_interleave(t, dim=0)
            flat = self.norm2_box(flat + self.dropout2_box(self._self_attention(self.self_attn_box, flat, pos)))
            tgt_box = flat.view(b, t, q, c)
            query_box = tgt_box + query_pos[:, None]
            residual_box = tgt_box
        sampled = self.cross_attn.sample(query_box, reference_points, memory, spatial_shapes, level_start_index, padding_mask)
        out_inst = self.cross_attn.output_proj(sampled)  # [B,T,Q,C]
        out_box = self.cross_attn.output_proj_box(sampled)
        tgt_box = self.norm1_box(residual_box + self.dropout1_box(out_box))
        box2 = self.linear2_box(self.dropout3_box(F.relu(self.linear1_box(tgt_box))))
        tgt_box = self.norm3_box(tgt_box + self.dropout4_box(box2))
        time_weight = F.softmax(self.time_attention_weights(tgt_box), dim=1)  # over frames
        tgt = self.norm1(tgt + self.dropout1((out_inst * time_weight).sum(1)))
        tgt2 = self.linear2(self.dropout3(F.relu(self.linear1(tgt))))
        tgt = self.norm3(tgt + self.dropout4(tgt2))
        return tgt, tgt_box


class Encoder(nn.Module):
    def __init__(self, layer: EncoderLayer, num_layers: int):
        super().__init__()
        self.layers = _clones(layer, num_layers)

    @staticmethod
    def reference_points(spatial_shapes: torch.Tensor, valid_ratios: torch.Tensor) -> torch.Tensor:
        """Pixel centres of every level, normalised by the valid region: [B, S, L, 2]."""
        refs = []
        for lvl, (h, w) in enumerate(spatial_shapes.tolist()):
            ref_y, ref_x = torch.meshgrid(
                torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=valid_ratios.device),
                torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=valid_ratios.device),
                indexing="ij",
            )
            ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * h)
            ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * w)
            refs.append(torch.stack((ref_x, ref_y), -1))
        return torch.cat(refs, 1)[:, :, None] * valid_ratios[:, None]

    def forward(self, src, spatial_shapes, level_start_index, valid_ratios, pos, padding_mask):
        t = src.shape[1]
        ref = self.reference_points(spatial_shapes, valid_ratios).to(torch.promote_types(src.dtype, torch.float32))
        ref = ref[:, None].expand(-1, t, -1, -1, -1)
        for layer in self.layers:
            src = layer(src, pos, ref, spatial_shapes, level_start_index, padding_mask)
        return src


class Decoder(nn.Module):
    def __init__(self, layer: DecoderLayer, num_layers: int):
        super().__init__()
        self.layers = _clones(layer, num_layers)
        self.bbox_embed: nn.ModuleList | None = None  # set by the model for iterative box refinement

    def forward(self, tgt, reference_points, memory, spatial_shapes, level_start_index, valid_ratios, query_pos, padding_mask):
        output, output_box = tgt, tgt
        hs, hs_box, refs = [], [], []
        for lid, layer in enumerate(self.layers):
            scale = valid_ratios if reference_points.shape[-1] == 2 else torch.cat([valid_ratios, valid_ratios], -1)
            ref_input = reference_points[:, :, :, None] * scale[:, None, None]
            output, output_box = layer(output, output_box, query_pos, ref_input, memory, spatial_shapes, level_start_index, padding_mask)
            if self.bbox_embed is not None:
                with full_precision(output_box):  # the next layer's reference points (see layers.full_precision)
                    tmp = self.bbox_embed[lid](float32(output_box))
                    if reference_points.shape[-1] == 4:
                        new_ref = tmp + inverse_sigmoid(reference_points)
                    else:
                        new_ref = torch.cat([tmp[..., :2] + inverse_sigmoid(reference_points), tmp[..., 2:]], -1)
                    reference_points = new_ref.sigmoid().detach()
            hs.append(output)
            hs_box.append(output_box)
            refs.append(reference_points)
        return torch.stack(hs), torch.stack(hs_box), torch.stack(refs)


class DeformableTransformer(nn.Module):
    def __init__(
        self,
        d_model: int = 256,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 1024,
        dropout: float = 0.1,
        num_feature_levels: int = 4,
        dec_n_points: int = 4,
        enc_n_points: int = 4,
        msda_impl: str = "auto",
    ):
        super().__init__()
        self.d_model, self.nhead, self.num_feature_levels = d_model, nhead, num_feature_levels
        enc = EncoderLayer(d_model, dim_feedforward, dropout, num_feature_levels, nhead, enc_n_points, msda_impl)
        dec = DecoderLayer(d_model, dim_feedforward, dropout, num_feature_levels, nhead, dec_n_points, msda_impl)
        self.encoder = Encoder(enc, num_encoder_layers)
        self.decoder = Decoder(dec, num_decoder_layers)
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        self.reference_points = nn.Linear(d_model, 2)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        xavier_uniform_(self.reference_points.weight, gain=1.0)
        constant_(self.reference_points.bias, 0.0)
        normal_(self.level_embed)

    @staticmethod
    def valid_ratio(mask: torch.Tensor) -> torch.Tensor:
        """(w, h) fraction of an [N,H,W] padding mask that holds image, read off row/column 0."""
        _, h, w = mask.shape
        valid_h = torch.sum(~mask[:, :, 0], 1)
        valid_w = torch.sum(~mask[:, 0, :], 1)
        return torch.stack([valid_w.float() / w, valid_h.float() / h], -1)

    def forward(self, srcs: list[torch.Tensor], masks: list[torch.Tensor], pos_embeds: list[torch.Tensor], query_embed: torch.Tensor) -> TransformerOutput:
        """srcs/pos_embeds: per level [B,T,C,H_l,W_l]; masks: [B,T,H_l,W_l]; query_embed: [Q, 2C]."""
        src_flat, mask_flat, pos_flat, shapes = [], [], [], []
        for lvl, (src, mask, pos) in enumerate(zip(srcs, masks, pos_embeds)):
            shapes.append(src.shape[-2:])
            src_flat.append(src.flatten(3).transpose(2, 3))
            mask_flat.append(mask.flatten(2))
            pos_flat.append(pos.flatten(3).transpose(2, 3) + self.level_embed[lvl].view(1, 1, 1, -1))
        src_flat = torch.cat(src_flat, 2)
        mask_flat = torch.cat(mask_flat, 2)
        pos_flat = torch.cat(pos_flat, 2)
        spatial_shapes = torch.as_tensor(shapes, dtype=torch.long, device=src_flat.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros((1,)), spatial_shapes.prod(1).cumsum(0)[:-1]))
        valid_ratios = torch.stack([self.valid_ratio(m[:, 0]) for m in masks], 1)

        memory = self.encoder(src_flat, spatial_shapes, level_start_index, valid_ratios, pos_flat, mask_flat)

        b, t, _, c = memory.shape
        query_pos, tgt = torch.split(query_embed, c, dim=1)
        query_pos = query_pos.unsqueeze(0).expand(b, -1, -1)
        tgt = tgt.unsqueeze(0).expand(b, -1, -1)
        with full_precision(query_pos):
            init_reference = self.reference_points(float32(query_pos)).sigmoid().unsqueeze(1).repeat(1, t, 1, 1)
        hs, hs_box, inter_references = self.decoder(
            tgt, init_reference, memory, spatial_shapes, level_start_index, valid_ratios, query_pos, mask_flat
        )
        return TransformerOutput(hs, hs_box, memory, init_reference, inter_references, valid_ratios, spatial_shapes, level_start_index)
