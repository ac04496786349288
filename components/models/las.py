"""LaS attention, "Local and Smooth" (Zimerman & Wolf, ICML 2024): per head, the pre-softmax
scores are multiplied by exp(-alpha_h * |i - j|) (head 0: alpha = 0, global; the others fixed and
log-spaced up to B), then after the softmax every row of the attention matrix is smoothed by a
1-D average pool of width P that keeps the L x L shape. No trainable parameters are added.
In causal use the causal mask is applied again after pooling, so no future position leaks in.
LaS-chunk runs the same operator inside fixed chunks of C positions: O(L * C).

Ablations are settings, not flags: decay only = `pool: 1`; smoothing only = `decay_max: 0`.

Legend: B batch, H heads, L length, E head width, C chunk size, n number of chunks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from components.config import LaSCfg, LaSChunkCfg
from components.models.attention import SelfAttention, attention_mask

# helpers --------------------------------------------------------------------------------------


def decay_rates(n_heads: int, decay_max: float, decay_min: float = 1e-4) -> torch.Tensor:
    """(H,) fixed rates: 0 for head 0, the others log-spaced over [min(decay_min, B), B]
    (our reading of the paper's "exponential-uniform in [0, B]")."""
    if n_heads == 1 or decay_max == 0:
        return torch.zeros(n_heads)
    lo = math.log(min(decay_min, decay_max))
    rest = torch.exp(torch.linspace(math.log(decay_max), lo, n_heads - 1)).flip(0)  # (H-1,), ends at B
    return torch.cat([torch.zeros(1), rest])


def las_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor, alphas: torch.Tensor, pool: int,
                causal: bool) -> torch.Tensor:
    """q, k: (B, H, L, E), mask: (B, L), alphas: (H,) -> attention weights (B, H, L, L)."""
    L = q.shape[2]
    pos = torch.arange(L, device=q.device)
    dist = (pos[:, None] - pos[None, :]).abs().float()  # (L, L)
    scores = torch.einsum("bhie, bhje -> bhij", q, k) / math.sqrt(q.shape[-1])  # (B, H, L, L)
    scores = scores * torch.exp(-alphas.to(q.device)[:, None, None] * dist)  # (B, H, L, L) ELD
    allowed = attention_mask(mask, causal).expand(-1, -1, L, -1)  # (B, 1, L, L)
    # a query with no real key at all (an all-padding chunk) attends to itself, never to nothing
    allowed = allowed | (torch.eye(L, dtype=torch.bool, device=q.device) & ~allowed.any(-1, keepdim=True))
    w = scores.masked_fill(~allowed, float("-inf")).softmax(-1)  # (B, H, L, L)
    if pool > 1:  # row-wise average pool, zero padding, same width (pool is odd)
        w = F.avg_pool1d(w.flatten(0, 2)[:, None], pool, stride=1, padding=pool // 2).view_as(w)
        w = w.masked_fill(~allowed, 0.0)  # re-apply causal and padding masks after smoothing
    return w


# main classes ---------------------------------------------------------------------------------


class LaSAttention(SelfAttention):
    """Multi-head attention with exponential locality decay and row smoothing (materialises L x L)."""

    def __init__(self, cfg: LaSCfg):
        super().__init__(cfg)
        self.pool = cfg.pool
        self.register_buffer("alphas", decay_rates(cfg.n_heads, cfg.decay_max), persistent=False)

    def attend(self, q, k, v, mask):
        """q, k, v: (B, H, L, E), mask: (B, L) -> (B, H, L, E)."""
        w = las_weights(q, k, mask, self.alphas, self.pool, self.causal)  # (B, H, L, L)
        return torch.einsum("bhij, bhje -> bhie", w, v)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) bool -> (B, L, D)."""
        q, k, v = self.split_heads(x)  # (B, H, L, E)
        return self.merge_heads(self.attend(q, k, v, mask))  # (B, L, D)


class LaSChunkAttention(LaSAttention):
    """LaS inside non-overlapping chunks of `cfg.chunk` positions (linear in L)."""

    def __init__(self, cfg: LaSChunkCfg):
        super().__init__(cfg)
        self.chunk = cfg.chunk

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) bool -> (B, L, D)."""
        q, k, v = self.split_heads(x)  # (B, H, L, E); rotary (if any) uses absolute positions
        B, H, L, E = q.shape
        C = min(self.chunk, L)
        n = math.ceil(L / C)
        pad = n * C - L

        def chunks(t):  # (B, H, L, E) -> (B n, H, C, E)
            return F.pad(t, (0, 0, 0, pad)).view(B, H, n, C, E).transpose(1, 2).reshape(B * n, H, C, E)

        m = F.pad(mask, (0, pad)).view(B * n, C)  # (B n, C)
        y = self.attend(chunks(q), chunks(k), chunks(v), m)  # (B n, H, C, E)
        y = y.view(B, n, H, C, E).transpose(1, 2).reshape(B, H, n * C, E)[:, :, :L]  # (B, H, L, E)
        return self.merge_heads(y)  # (B, L, D)
