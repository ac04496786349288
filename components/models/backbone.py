"""One backbone for every architecture: input layer -> N pre-LN residual blocks -> final norm.

The input layer is a token embedding, or for continuous patch inputs (FPT's bit tasks) a linear
projection; the task decides which (`input_layer`). A block is `x + mixer(LN(x))`, then
`x + FF(LN(x))` when the architecture has a feed-forward sub-block. Mixers all map
(B, L, D) -> (B, L, D) and take the padding mask; the backbone never branches on the
architecture. Heads sit on top: a masked-LM head for self-pretraining, a mean-pooled
classification head for finetuning, and a per-bit head for the bit tasks, so a pretrained
backbone moves to finetuning unchanged while the head is fresh.

Legend: B batch, L length, D model width, V vocabulary, K classes, P patch (values per token),
n_bits output bits, T query tokens (n_bits / P).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Mixer = Callable[[], nn.Module]
Embed = Callable[[int], nn.Module]  # model width D -> the input layer, inputs -> (B, L, D)


def sinusoidal_positions(L: int, D: int, device: torch.device) -> torch.Tensor:
    """(L, D) fixed sin/cos position codes (Vaswani et al. 2017)."""
    pos = torch.arange(L, device=device, dtype=torch.float32)[:, None]  # (L, 1)
    freq = torch.exp(torch.arange(0, D, 2, device=device, dtype=torch.float32) * (-math.log(10_000.0) / D))
    pe = torch.zeros(L, D, device=device)  # (L, D)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: D // 2])
    return pe


class PatchEmbedding(nn.Linear):
    """Continuous inputs, P values per position, projected to the model width: FPT's `in_net`
    (Lu et al. 2021, universal-computation fpt.py), orthogonal weight with gain 1.41, zero bias."""

    def __init__(self, input_dim: int, d_model: int):
        super().__init__(input_dim, d_model)

    def reset_parameters(self) -> None:
        nn.init.orthogonal_(self.weight, gain=1.41)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, L, P) float -> (B, L, D)."""
        return super().forward(x)


def input_layer(d_model: int, vocab_size: int | None = None, pad_id: int | None = None,
                input_dim: int | None = None) -> nn.Module:
    """A token table (V, D) for token ids, or with `input_dim` a patch projection (P, D)."""
    if input_dim is not None:
        return PatchEmbedding(input_dim, d_model)
    return nn.Embedding(vocab_size, d_model, padding_idx=pad_id)


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
    def __init__(self, embed: Embed, d_model: int, n_layers: int, mixer: Mixer, ff_mult: int, positions: str):
        super().__init__()
        self.d_model = d_model
        self.embed = embed(d_model)
        self.positions = positions  # "rotary" is applied inside attention, "none" adds nothing
        self.blocks = nn.ModuleList([Block(d_model, mixer(), ff_mult) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens: (B, L) int64 (or patches (B, L, P) float), mask: (B, L) bool -> features (B, L, D)."""
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


class BitClassifier(nn.Module):
    """Backbone + per-bit head for FPT's bit tasks: the outputs at the query row's tokens (the
    last T = n_bits / P) each give 2 logits for each of their P bits (FPT's `out_net` over the
    last tokens; Lu et al. 2021, universal-computation)."""

    def __init__(self, backbone: nn.Module, n_bits: int):
        super().__init__()
        if not isinstance(backbone.embed, PatchEmbedding):
            raise ValueError("a per-bit head reads patch inputs: build the backbone with input_dim")
        self.backbone = backbone
        self.patch = backbone.embed.in_features  # P
        self.n_query = n_bits // self.patch  # T
        self.head = nn.Linear(backbone.d_model, 2 * self.patch)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """inputs: (B, L, P) float, mask: (B, L) -> logits (B, n_bits, 2)."""
        h = self.backbone(inputs, mask)[:, -self.n_query:]  # (B, T, D): the query row's tokens
        logits = self.head(h)  # (B, T, 2P)
        return logits.reshape(len(logits), -1, 2)  # (B, T*P, 2) = (B, n_bits, 2): bit t*P + p, classes last


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
