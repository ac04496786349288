"""Multi-head self-attention on PyTorch SDPA (bidirectional or causal, absolute or rotary
positions), with its explicit-softmax twin.

Legend: B batch, L length, D model width, H heads, E head width (D = H * E).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from components.config import TransformerCfg
from components.models.rotary import apply_rotary, rotary_tables

# helpers --------------------------------------------------------------------------------------


def attention_mask(mask: torch.Tensor, causal: bool) -> torch.Tensor:
    """Boolean SDPA mask, True = may attend. mask: (B, L) real positions -> (B, 1, 1|L, L)."""
    allowed = mask[:, None, None, :]  # (B, 1, 1, L)
    if causal:
        L = mask.shape[1]
        allowed = allowed & torch.ones(L, L, dtype=torch.bool, device=mask.device).tril()  # (B, 1, L, L)
    return allowed


def right_padded(mask: torch.Tensor) -> bool:
    """(B, L) -> whether every sequence's real positions come first (padding only at the end)."""
    return not bool((mask[:, 1:] & ~mask[:, :-1]).any())


# reference ------------------------------------------------------------------------------------


def attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                  causal: bool = False) -> torch.Tensor:
    """Explicit softmax attention; q, k, v: (B, H, L, E), mask: (B, L) True = real key -> (B, H, L, E)."""
    scores = torch.einsum("bhie, bhje -> bhij", q, k) / math.sqrt(q.shape[-1])  # (B, H, L, L)
    scores = scores.masked_fill(~attention_mask(mask, causal), float("-inf"))  # (B, H, L, L)
    return torch.einsum("bhij, bhje -> bhie", scores.softmax(dim=-1), v)  # (B, H, L, E)


# main class -----------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Fused-kernel attention (SDPA) that ignores padded keys; causal if configured."""

    def __init__(self, cfg: TransformerCfg):
        super().__init__()
        self.n_heads, self.causal, self.rotary = cfg.n_heads, cfg.causal, cfg.positions == "rotary"
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (B, L, D) -> q, k, v each (B, H, L, E), rotary applied to q and k when configured."""
        B, L, D = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.n_heads, D // self.n_heads)  # (B, L, 3, H, E)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, L, E)
        if self.rotary:
            cos, sin = rotary_tables(L, q.shape[-1], x.device)  # (L, E/2)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        return q, k, v

    def merge_heads(self, y: torch.Tensor) -> torch.Tensor:
        """y: (B, H, L, E) -> (B, L, D) through the output projection."""
        B, H, L, E = y.shape
        return self.out(y.transpose(1, 2).reshape(B, L, H * E))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) bool -> (B, L, D)."""
        q, k, v = self.split_heads(x)  # (B, H, L, E)
        if self.causal and right_padded(mask):  # a real query sees only real keys: the kernel's own causal mask
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, L, E); padded rows read padding
        else:  # no L x L mask for the kernel to read (1.7-2.4x faster causal on CPU at 1K-4K)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask(mask, self.causal))
        return self.merge_heads(y)  # (B, L, D)
