"""AdamW parameter groups from per-parameter hints, and the learning-rate schedule.

Rules, in one place: a parameter carrying an `_optim` hint (set by the layer that owns it, e.g.
S4D's A, dt and C) gets exactly that lr / weight decay; otherwise matrices (ndim >= 2) decay and
vectors (biases, norms, the S4D skip) do not.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        hint = getattr(p, "_optim", None)
        if hint is not None:
            key = (hint.get("lr", lr), hint.get("weight_decay", weight_decay))
        else:
            key = (lr, weight_decay if p.ndim >= 2 else 0.0)
        groups.setdefault(key, []).append(p)
    return [{"params": ps, "lr": g_lr, "weight_decay": g_wd} for (g_lr, g_wd), ps in sorted(groups.items())]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float]) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, lr, weight_decay), lr=lr, betas=betas)


def lr_factor(step: int, warmup: int, total: int, schedule: str = "cosine") -> float:
    """Linear warmup over `warmup` steps, then cosine decay to 0 at `total`, or constant."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
