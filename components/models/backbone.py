"""One backbone for every architecture: token embedding -> N pre-LN residual blocks -> final norm.

A block is `x + mixer(LN(x))`, then `x + FF(LN(x))` when the architecture has a feed-forward
sub-block. Mixers all map (B, L, D) -> (B, L, D) and take the padding mask; the backbone never
branches on the architecture. Heads sit on top: a masked-LM head for self-pretraining and a
mean-pooled classification head for finetuning, so a pretrained backbone moves to finetuning
unchanged while the head is fresh.

Legend: B batch, L length, D model width, V vocabulary, K classes.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Mixer = Callable[[], nn.Module]


def sinusoidal_positions(L: int, D: int, device: torch.device) -> torch.Tensor:
    """(L, D) fixed sin/cos position codes (Vaswani et al. 2017)."""
    pos = torch.arange(L, device=device, dtype=torch.float32)[:, None]  # (L, 1)
    freq = torch.exp(torch.arange(0, D, 2, device=device, dtype=torch.float32) * (-math.log(10_000.0) / D))
    pe = torch.zeros(L, D, device=device)  # (L, D)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: D // 2])
    return pe


class FeedForward(nn.Module):
    def __init__(self, d_model: int, mult: int):
        super().__init__()
        self.up = nn.Linear(d_model, mult * d_model)
        self.down = nn.Linear(mult * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D) -> (B, L, D)."""
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    def __init__(self, d_model: int, mixer: nn.Module, ff_mult: int):
        super().__init__()
        self.norm_mix = nn.LayerNorm(d_model)
        self.mixer = mixer
        self.norm_ff = nn.LayerNorm(d_model) if ff_mult else None
        self.ff = FeedForward(d_model, ff_mult) if ff_mult else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) -> (B, L, D)."""
        x = x + self.mixer(self.norm_mix(x), mask)  # (B, L, D)
        if self.ff is not None:
            x = x + self.ff(self.norm_ff(x))  # (B, L, D)
        return x


class Backbone(nn.Module):
    def __init__(self, vocab_size: int, d_model: int, n_layers: int, mixer: Mixer, ff_mult: int,
                 positions: str, pad_id: int):
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.positions = positions  # "rotary" is applied inside attention, "none" adds nothing
        self.blocks = nn.ModuleList([Block(d_model, mixer(), ff_mult) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens: (B, L) int64, mask: (B, L) bool -> features (B, L, D)."""
        x = self.embed(tokens)  # (B, L, D)
        if self.positions == "sinusoidal":
            x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device)  # (B, L, D)
        for block in self.blocks:
            x = block(x, mask)  # (B, L, D)
        return self.norm(x)  # (B, L, D)


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """h: (B, L, D), mask: (B, L) -> (B, D), the mean over real positions."""
    m = mask[..., None].to(h.dtype)  # (B, L, 1)
    return (h * m).sum(1) / m.sum(1).clamp_min(1.0)


class Classifier(nn.Module):
    """Backbone + mean pooling over real positions + linear head."""

    def __init__(self, backbone: Backbone, n_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.d_model, n_classes)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens, mask: (B, L) -> logits (B, K)."""
        return self.head(masked_mean(self.backbone(tokens, mask), mask))


class MaskedLM(nn.Module):
    """Backbone + per-position linear head over the vocabulary, for self-pretraining (masked
    denoising, or next-token prediction with a causal backbone)."""

    def __init__(self, backbone: Backbone, vocab_size: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.d_model, vocab_size)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens, mask: (B, L) -> logits (B, L, V)."""
        return self.head(self.backbone(tokens, mask))
