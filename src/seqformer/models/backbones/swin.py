"""Swin Transformer as the 2-D backbone of SeqFormer (the detection-style variant of the original repo).

Module, parameter and buffer names equal the released SeqFormer Swin checkpoints
(``patch_embed.proj``, ``layers.{i}.blocks.{j}.attn.relative_position_bias_table``,
``layers.{i}.downsample.reduction``, ``norm{i}`` ...), so those weights load without renaming.

Arbitrary input sizes are handled as in the original: the image is zero-padded to a multiple of the
patch size, each block pads its tokens to a multiple of the window size (after ``norm1``), and the
shifted-window mask is built for the actual padded size.  Padded tokens take part in unshifted windows
exactly like in the original; only the cyclic-shift regions are masked (with -100).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SwinConfig", "SWIN_CONFIGS", "SwinTransformer", "build_swin"]


@dataclass(frozen=True)
class SwinConfig:
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    drop_path_rate: float
    norm_indices: tuple[int, ...]  # stages that own an output LayerNorm ``norm{i}`` (original ``out_indices``)


# The original ``configs`` table: Swin-L variants carry norm0..norm3, the others norm1..norm3.  (swin_l_p4w12's
# ``pretrain_img_size=384`` only matters for absolute position embeddings, which no config enables.)
SWIN_CONFIGS: dict[str, SwinConfig] = {
    "swin_t_p4w7": SwinConfig(96, (2, 2, 6, 2), (3, 6, 12, 24), 7, 0.2, (1, 2, 3)),
    "swin_s_p4w7": SwinConfig(96, (2, 2, 18, 2), (3, 6, 12, 24), 7, 0.2, (1, 2, 3)),
    "swin_b_p4w7": SwinConfig(128, (2, 2, 18, 2), (4, 8, 16, 32), 7, 0.3, (1, 2, 3)),
    "swin_l_p4w7": SwinConfig(192, (2, 2, 18, 2), (6, 12, 24, 48), 7, 0.3, (0, 1, 2, 3)),
    "swin_l_p4w12": SwinConfig(192, (2, 2, 18, 2), (6, 12, 24, 48), 12, 0.3, (0, 1, 2, 3)),
}


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample (kept samples rescaled by 1/keep)."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * nW, window * window, C] (windows in row-major order per image)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: [B * nW, window * window, C] -> [B, H, W, C]."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def relative_position_index(window: int) -> torch.Tensor:
    """[window², window²] index into the (2·window−1)² bias table, as in the Swin paper."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shifted_window_mask(hp: int, wp: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """Additive mask [nW, window², window²]: -100 between tokens from different regions of the rolled map."""
    region = torch.zeros(1, hp, wp, 1, device=device)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for hs in bounds:
        for ws in bounds:
            region[:, hs, ws, :] = label
            label += 1
    ids = window_partition(region, window).squeeze(-1)
    diff = ids[:, None, :] - ids[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window with a learned relative position bias."""

    def __init__(self, dim: int, window: int, num_heads: int, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.window = window
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, shift_mask: torch.Tensor | None) -> torch.Tensor:
        """x: [B * nW, N, C]; shift_mask: [nW, N, N] additive or None."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, self.num_heads).permute(2, 0, 1).to(q.dtype)  # [heads, N, N]
        if shift_mask is None:
            attn_bias = bias
        else:
            # Group windows per image ([B, nW, heads, N, d]) so the [nW, heads, N, N] bias broadcasts over the
            # batch instead of being materialised B times.
            nw = shift_mask.shape[0]
            q, k, v = (t.reshape(bw // nw, nw, self.num_heads, n, -1) for t in (q, k, v))
            attn_bias = bias.unsqueeze(0) + shift_mask.to(q.dtype).unsqueeze(1)
        drop = self.attn_drop if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=drop)
        return self.proj_drop(self.proj(out.reshape(bw, self.num_heads, n, -1).transpose(1, 2).reshape(bw, n, c)))


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        if not 0 <= shift < window:
            raise ValueError(f"shift {shift} must be in [0, window {window})")
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: torch.Tensor, shift_mask: torch.Tensor) -> torch.Tensor:
        """x: [B, H, W, C] -> same shape."""
        b, h, w, c = x.shape
        y = self.norm1(x)
        pad_b, pad_r = (-h) % self.window, (-w) % self.window
        y = F.pad(y, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = h + pad_b, w + pad_r
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, self.window), shift_mask if self.shift else None)
        y = window_reverse(y, self.window, hp, wp)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y[:, :h, :w, :])
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat (odd sizes zero-padded) -> LayerNorm(4C) -> Linear(4C, 2C, no bias)."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), 2C]."""
        h, w = x.shape[1:3]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    """One stage: blocks alternating regular / shifted windows, then an optional PatchMerging."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, drop_path: list[float],
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
                 downsample: bool = True):
        super().__init__()
        self.window = window
        self.shift = window // 2
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, window, 0 if i % 2 == 0 else self.shift, mlp_ratio,
                                 qkv_bias, drop, attn_drop, drop_path[i])
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, H, W, C] -> (stage output [B, H, W, C], input of the next stage)."""
        h, w = x.shape[1:3]
        hp, wp = math.ceil(h / self.window) * self.window, math.ceil(w / self.window) * self.window
        mask = shifted_window_mask(hp, wp, self.window, self.shift, x.device)
        for block in self.blocks:
            x = block(x, mask)
        return x, (self.downsample(x) if self.downsample is not None else x)


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, embed_dim: int, patch_norm: bool = True):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, ceil(H/p), ceil(W/p), C] (channels last)."""
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % self.patch_size, 0, (-h) % self.patch_size))
        x = self.proj(x).permute(0, 2, 3, 1)
        return self.norm(x) if self.norm is not None else x


class SwinTransformer(nn.Module):
    """Hierarchical Swin backbone returning channels-first maps of the requested stages (strides 4·2^i)."""

    def __init__(self, embed_dim: int = 96, depths: tuple[int, ...] = (2, 2, 6, 2),
                 num_heads: tuple[int, ...] = (3, 6, 12, 24), window_size: int = 7, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.2, patch_size: int = 4, in_chans: int = 3, patch_norm: bool = True,
                 norm_indices: tuple[int, ...] = (0, 1, 2, 3)):
        super().__init__()
        self.num_features = [embed_dim * 2**i for i in range(len(depths))]
        self.norm_indices = tuple(norm_indices)
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, patch_norm)
        self.pos_drop = nn.Dropout(drop_rate)
        total = sum(depths)  # stochastic depth grows linearly from 0 to drop_path_rate over all blocks
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList(
            BasicLayer(self.num_features[i], depths[i], num_heads[i], window_size,
                       rates[starts[i]:starts[i] + depths[i]], mlp_ratio, qkv_bias, drop_rate, attn_drop_rate,
                       downsample=i < len(depths) - 1)
            for i in range(len(depths))
        )
        for i in self.norm_indices:
            self.add_module(f"norm{i}", nn.LayerNorm(self.num_features[i]))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # The original ``init_weights(None)``: trunc-normal Linear weights, zero biases, unit LayerNorms.
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, stages: tuple[int, ...] | None = None) -> dict[str, torch.Tensor]:
        """x: [B, 3, H, W] -> {str(stage): [B, C_stage, h, w]} for ``stages`` (default: all normed stages).

        Stages after the last requested one are not computed.
        """
        stages = self.norm_indices if stages is None else tuple(stages)
        missing = [s for s in stages if s not in self.norm_indices]
        if missing:
            raise ValueError(f"stages {missing} have no output norm (available: {self.norm_indices})")
        x = self.pos_drop(self.patch_embed(x))
        outs: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers[: max(stages) + 1]):
            stage_out, x = layer(x)
            if i in stages:
                outs[str(i)] = getattr(self, f"norm{i}")(stage_out).permute(0, 3, 1, 2).contiguous()
        return outs


def build_swin(name: str, drop_path_rate: float | None = None) -> SwinTransformer:
    """Swin backbone ``name`` (a key of :data:`SWIN_CONFIGS`), randomly initialised like the original."""
    if name not in SWIN_CONFIGS:
        raise ValueError(f"unknown Swin backbone {name!r}; choose from {sorted(SWIN_CONFIGS)}")
    cfg = SWIN_CONFIGS[name]
    return SwinTransformer(
        embed_dim=cfg.embed_dim, depths=cfg.depths, num_heads=cfg.num_heads, window_size=cfg.window_size,
        drop_path_rate=cfg.drop_path_rate if drop_path_rate is None else drop_path_rate,
        norm_indices=cfg.norm_indices,
    )
