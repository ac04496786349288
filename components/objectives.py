"""Training objectives: masked-token denoising and next-token prediction (self-pretraining), and
classification (one label per row, or one per output bit for FPT's bit tasks).

Legend: B batch, L length, V vocabulary, K classes, n_bits output bits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100  # target id for positions that carry no loss


def mask_tokens(tokens: torch.Tensor, mask: torch.Tensor, ratio: float, mask_id: int,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Bernoulli(ratio) masking of real positions, as the SPT code does (no 80/10/10 split).
    tokens, mask: (B, L) -> inputs (B, L) with chosen tokens replaced by `mask_id`,
    targets (B, L) holding the original token where chosen and IGNORE elsewhere."""
    chosen = (torch.rand(tokens.shape, generator=gen) < ratio).to(tokens.device) & mask  # (B, L)
    inputs = tokens.masked_fill(chosen, mask_id)  # (B, L)
    targets = tokens.masked_fill(~chosen, IGNORE)  # (B, L)
    return inputs, targets


def mask_values(x: torch.Tensor, mask: torch.Tensor, ratio: float,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Masking for continuous inputs (pixels as intensities), as the SPT code does: chosen
    positions are zeroed and an is-masked channel is appended; one draw per position covers all
    channels. x: (B, L, C) float, mask: (B, L) -> inputs (B, L, C+1), chosen (B, L) bool."""
    chosen = (torch.rand(x.shape[:2], generator=gen) < ratio).to(x.device) & mask  # (B, L)
    m = chosen[..., None].to(x.dtype)  # (B, L, 1)
    return torch.cat([x * (1 - m), m], dim=-1), chosen


def masked_l1_loss(pred: torch.Tensor, target: torch.Tensor, chosen: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Mean absolute error over the chosen positions only. pred, target: (B, L, C), chosen: (B, L)
    -> (loss, 0, n chosen); there is no accuracy for a regression."""
    n = int(chosen.sum())
    err = (pred - target).abs().mean(-1)  # (B, L)
    return (err * chosen).sum() / max(n, 1), 0, n


def next_token_targets(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Causal self-pretraining targets: position t predicts token t+1 (the last real position and
    padding predict nothing). tokens, mask: (B, L) -> targets (B, L)."""
    nxt = F.pad(tokens[:, 1:], (0, 1), value=IGNORE)  # (B, L)
    real = F.pad(mask[:, 1:], (0, 1), value=False)  # (B, L): is position t+1 a real token
    return nxt.masked_fill(~real, IGNORE)


def masked_lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Cross-entropy over target positions only (masked tokens, or next tokens). logits: (B, L, V), targets: (B, L) ->
    (mean loss, n correct, n masked). A batch with no masked position has loss 0."""
    flat_logits, flat_targets = logits.flatten(0, 1), targets.flatten()  # (B*L, V), (B*L,)
    counted = flat_targets != IGNORE  # (B*L,)
    n = int(counted.sum())
    loss = F.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE, reduction="sum") / max(n, 1)
    correct = int((flat_logits.argmax(-1)[counted] == flat_targets[counted]).sum())
    return loss, correct, n


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Cross-entropy where every label counts once. logits: (B, K), labels: (B,) -> (mean
    cross-entropy, n correct, B); per bit (FPT's bit tasks), logits: (B, n_bits, 2), labels:
    (B, n_bits) -> (mean over every bit, n bits correct, B * n_bits), so accuracy is per bit."""
    flat_logits, flat_labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)  # (N, K), (N,)
    loss = F.cross_entropy(flat_logits, flat_labels)
    return loss, int((flat_logits.argmax(-1) == flat_labels).sum()), flat_labels.numel()
