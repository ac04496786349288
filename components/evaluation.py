"""Evaluation: accuracy and loss of a classifier (per bit for the bit tasks); token accuracy of a
denoiser (masked or next-token)."""
from __future__ import annotations

import torch
from torch import nn

from components.data.batching import BitSplit, TokenSplit, eval_batches
from components.objectives import classification_loss, mask_tokens, masked_lm_loss, next_token_targets


@torch.no_grad()
def evaluate_classifier(model: nn.Module, split: TokenSplit | BitSplit, batch_size: int, pad_id: int | None,
                        device: torch.device) -> dict[str, float]:
    """Mean loss and accuracy over every label of `split` (rows; for a BitSplit, target bits)."""
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for rows in eval_batches(split.lengths, batch_size):
        tokens, mask, labels = (t.to(device) for t in split.batch(rows, pad_id))
        loss, c, k = classification_loss(model(tokens, mask), labels)
        loss_sum, correct, n = loss_sum + loss.item() * k, correct + c, n + k
    return {"loss": loss_sum / n, "accuracy": correct / n, "score": correct / n}


@torch.no_grad()
def evaluate_masked_lm(model: nn.Module, split: TokenSplit, batch_size: int, pad_id: int, mask_id: int,
                       ratio: float, seed: int, device: torch.device) -> dict[str, float]:
    """Masked-token loss and accuracy on `split` with masks drawn from `seed` (the same every call)."""
    gen = torch.Generator().manual_seed(seed)
    return _evaluate_lm(model, split, batch_size, pad_id, device,
                        lambda tokens, mask: mask_tokens(tokens, mask, ratio, mask_id, gen))


@torch.no_grad()
def evaluate_causal_lm(model: nn.Module, split: TokenSplit, batch_size: int, pad_id: int,
                       device: torch.device) -> dict[str, float]:
    """Next-token loss and accuracy on `split`."""
    return _evaluate_lm(model, split, batch_size, pad_id, device,
                        lambda tokens, mask: (tokens, next_token_targets(tokens, mask)))


def _evaluate_lm(model, split, batch_size, pad_id, device, corrupt) -> dict[str, float]:
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for rows in eval_batches(split.lengths, batch_size):
        tokens, mask, _ = split.batch(rows, pad_id)
        inputs, targets = corrupt(tokens, mask)
        loss, c, k = masked_lm_loss(model(inputs.to(device), mask.to(device)), targets.to(device))
        loss_sum, correct, n = loss_sum + loss.item() * k, correct + c, n + k
    return {"loss": loss_sum / max(n, 1), "accuracy": correct / max(n, 1), "score": correct / max(n, 1)}
