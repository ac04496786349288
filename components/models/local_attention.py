"""Block-local attention for very long inputs: the sequence is cut into non-overlapping blocks of
W positions, and each block attends to itself and its neighbouring blocks (the previous one only,
when causal), as the SPT work did from 16K tokens on. Cost O(L * 3W) instead of O(L^2).

Legend: B batch, H heads, L length, E head width, W block size, n number of blocks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from components.config import TransformerCfg
from components.models.attention import SelfAttention

# helpers --------------------------------------------------------------------------------------


def band_mask(mask: torch.Tensor, W: int, causal: bool) -> torch.Tensor:
    """Dense equivalent of the block pattern: (B, 1, L, L), True where query i may attend key j:
    key real, |block(i) - block(j)| <= 1 (and j <= i when causal); a query with no such key
    sees itself, so no row is empty."""
    L = mask.shape[1]
    pos = torch.arange(L, device=mask.device)
    blk = pos // W
    allowed = (blk[:, None] - blk[None, :]).abs() <= 1  # (L, L)
    if causal:
        allowed = allowed & (pos[None, :] <= pos[:, None])
    allowed = allowed[None, None] & mask[:, None, None, :]  # (B, 1, L, L)
    return allowed | (torch.eye(L, dtype=torch.bool, device=mask.device) & ~allowed.any(-1, keepdim=True))


def _neighbours(x: torch.Tensor, causal: bool, fill: float = 0.0) -> torch.Tensor:
    """x: (..., n, W, F) -> (..., n, 3W or 2W, F): each block's previous, own (and next) block,
    `fill` outside the sequence."""
    prev = F.pad(x, (0, 0, 0, 0, 1, 0), value=fill)[..., :-1, :, :]  # (..., n, W, F)
    parts = [prev, x] if causal else [prev, x, F.pad(x, (0, 0, 0, 0, 0, 1), value=fill)[..., 1:, :, :]]
    return torch.cat(parts, dim=-2)


# reference ------------------------------------------------------------------------------------


def block_local_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, W: int,
                    causal: bool) -> torch.Tensor:
    """Dense attention under `band_mask`; q, k, v: (B, H, L, E) -> (B, H, L, E). Tests only."""
    scores = torch.einsum("bhie, bhje -> bhij", q, k) / math.sqrt(q.shape[-1])  # (B, H, L, L)
    scores = scores.masked_fill(~band_mask(mask, W, causal), float("-inf"))
    return torch.einsum("bhij, bhje -> bhie", scores.softmax(-1), v)  # (B, H, L, E)


# main class -----------------------------------------------------------------------------------


class BlockLocalAttention(SelfAttention):
    """SDPA inside blocks of `cfg.block_size` positions, each also seeing its neighbour blocks."""

    def __init__(self, cfg: TransformerCfg):
        super().__init__(cfg)
        self.W = cfg.block_size

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) bool -> (B, L, D)."""
        q, k, v = self.split_heads(x)  # (B, H, L, E)
        B, H, L, E = q.shape
        W, n = self.W, math.ceil(L / self.W)
        pad = n * W - L
        q, k, v = (F.pad(t, (0, 0, 0, pad)).view(B, H, n, W, E) for t in (q, k, v))  # (B, H, n, W, E)
        q_pos = torch.arange(n * W, device=x.device, dtype=torch.float32).view(n, W)  # (n, W) absolute
        keys_pos = _neighbours(q_pos[..., None], self.causal, fill=-1.0)[..., 0]  # (n, 3W), -1 = outside
        real = F.pad(mask, (0, pad)).view(B, n, W, 1).float()  # (B, n, W, 1)
        keys_real = _neighbours(real, self.causal)[..., 0] > 0  # (B, n, 3W); outside = not real
        allowed = keys_real[:, :, None, :]  # (B, n, 1, 3W)
        if self.causal:
            allowed = allowed & (keys_pos[:, None, :] <= q_pos[..., None])[None]  # (B, n, W, 3W)
        allowed = allowed.expand(B, n, W, -1)  # (B, n, W, 3W)
        # a query with no real key at all (all padding around it) attends to itself, never to nothing
        allowed = allowed | ((keys_pos[:, None, :] == q_pos[..., None])[None] & ~allowed.any(-1, keepdim=True))
        y = F.scaled_dot_product_attention(q, _neighbours(k, self.causal), _neighbours(v, self.causal),
                                           attn_mask=allowed[:, None])  # (B, H, n, W, E)
        return self.merge_heads(y.reshape(B, H, n * W, E)[:, :, :L])  # (B, L, D)
