"""Bidirectional multi-head self-attention on PyTorch SDPA, with its explicit-softmax twin.

Legend: B batch, L length, D model width, H heads, E head width (D = H * E).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from components.config import TransformerCfg

# reference ------------------------------------------------------------------------------------


def attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Explicit softmax attention; q, k, v: (B, H, L, E), mask: (B, L) True = real key -> (B, H, L, E)."""
    scores = torch.einsum("bhie, bhje -> bhij", q, k) / math.sqrt(q.shape[-1])  # (B, H, L, L)
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))  # (B, H, L, L)
    return torch.einsum("bhij, bhje -> bhie", scores.softmax(dim=-1), v)  # (B, H, L, E)


# main class -----------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Fused-kernel attention (SDPA) that ignores padded keys."""

    def __init__(self, cfg: TransformerCfg):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (B, L, D) -> q, k, v each (B, H, L, E)."""
        B, L, D = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.n_heads, D // self.n_heads)  # (B, L, 3, H, E)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, L, E)
        return q, k, v

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) bool -> (B, L, D)."""
        B, L, D = x.shape
        q, k, v = self.split_heads(x)  # (B, H, L, E)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # (B, H, L, E)
        return self.out(y.transpose(1, 2).reshape(B, L, D))  # (B, L, D)
