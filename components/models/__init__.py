"""Model construction: the one lookup table from an architecture `kind` to its mixer."""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from components.config import ArchCfg
from components.models.attention import SelfAttention
from components.models.backbone import Backbone, Classifier, MaskedLM
from components.models.s4d import S4D

MIXERS = {"transformer": SelfAttention, "s4d": S4D}


def build_backbone(cfg: ArchCfg, vocab_size: int, pad_id: int, seed: int) -> Backbone:
    """The backbone with its initial weights drawn from `seed` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Backbone(vocab_size, cfg.d_model, cfg.n_layers, partial(MIXERS[cfg.kind], cfg),
                        cfg.ff_mult, cfg.positions, pad_id)


def new_head(module_cls: type, backbone: Backbone, out_dim: int, seed: int) -> nn.Module:
    """Wrap `backbone` with a freshly initialised head drawn from `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return module_cls(backbone, out_dim)


def count_parameters(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params_total": total, "params_trainable": trainable}


__all__ = ["MIXERS", "build_backbone", "new_head", "count_parameters", "Classifier", "MaskedLM"]
