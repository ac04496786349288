"""Rotary position embeddings (Su et al. 2021, RoFormer), applied to queries and keys.

Legend: B batch, H heads, L length, E head width (even).
"""
from __future__ import annotations

import torch


def rotary_tables(L: int, E: int, device: torch.device, base: float = 10_000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin: (L, E/2) rotation angles theta_i * position, theta_i = base^(-2i/E)."""
    inv_freq = base ** (-torch.arange(0, E, 2, device=device, dtype=torch.float32) / E)  # (E/2,)
    angles = torch.arange(L, device=device, dtype=torch.float32)[:, None] * inv_freq  # (L, E/2)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, H, L, E) -> (B, H, L, E), each pair (x_2i, x_2i+1) rotated by its position's angle."""
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, H, L, E/2)
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, H, L, E/2, 2)
    return out.flatten(-2).to(x.dtype)  # (B, H, L, E)
