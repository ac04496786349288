"""Evaluation: accuracy and loss of a classifier, masked-token accuracy of a denoiser."""
from __future__ import annotations

import torch
from torch import nn

from components.data.batching import TokenSplit, eval_batches
from components.objectives import classification_loss, mask_tokens, masked_lm_loss


@torch.no_grad()
def evaluate_classifier(model: nn.Module, split: TokenSplit, batch_size: int, pad_id: int,
                        device: torch.device) -> dict[str, float]:
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
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    loss_sum, correct, n = 0.0, 0, 0
    for rows in eval_batches(split.lengths, batch_size):
        tokens, mask, _ = split.batch(rows, pad_id)
        inputs, targets = mask_tokens(tokens, mask, ratio, mask_id, gen)
        loss, c, k = masked_lm_loss(model(inputs.to(device), mask.to(device)), targets.to(device))
        loss_sum, correct, n = loss_sum + loss.item() * k, correct + c, n + k
    return {"loss": loss_sum / max(n, 1), "accuracy": correct / max(n, 1), "score": correct / max(n, 1)}
