"""Model construction: the one lookup table from an architecture `kind` to what builds it."""
from __future__ import annotations

import threading
from functools import partial

import torch
from torch import nn

from components.config import ArchCfg
from components.models.attention import SelfAttention
from components.models.backbone import Backbone, BitClassifier, Classifier, Embed, MaskedLM, input_layer
from components.models.las import LaSAttention, LaSChunkAttention
from components.models.local_attention import BlockLocalAttention
from components.models.lstm import LSTMMixer
from components.models.s4d import S4D


def _attention(cfg) -> nn.Module:
    return BlockLocalAttention(cfg) if cfg.block_size else SelfAttention(cfg)


MIXERS = {"transformer": _attention, "las": LaSAttention, "las_chunk": LaSChunkAttention,
          "s4d": S4D, "dlr": S4D, "lstm": LSTMMixer}


def _stacked(cfg: ArchCfg, embed: Embed, pretrained: bool) -> Backbone:
    return Backbone(embed, cfg.d_model, cfg.n_layers, partial(MIXERS[cfg.kind], cfg), cfg.ff_mult, cfg.positions)


def _language_model(cfg: ArchCfg, embed: Embed, pretrained: bool) -> nn.Module:
    from components.models.fpt import LMBackbone  # lazy: needs Hugging Face transformers

    return LMBackbone(cfg, embed, pretrained)


BUILDERS = {**{kind: _stacked for kind in MIXERS}, "fpt": _language_model}


# torch's initializers draw from the process-wide RNG: cells built at once in threads (the
# Prefect flow's concurrent units) take turns, so each model's weights depend on its seed alone.
_GLOBAL_RNG = threading.Lock()


def build_backbone(cfg: ArchCfg, vocab_size: int | None, pad_id: int | None, seed: int, pretrained: bool = False,
                   input_dim: int | None = None) -> nn.Module:
    """The backbone (tokens, mask) -> (B, L, D) with its initial weights drawn from `seed`
    (inside a forked RNG, so the caller's global RNG state is left as it was). Inputs are token
    ids of a `vocab_size` vocabulary, or with `input_dim` (and no vocabulary) continuous patches
    (B, L, input_dim) through a linear projection. `pretrained` loads a language model's
    weights (kind fpt only; the others have none)."""
    if pretrained and cfg.kind != "fpt":
        raise ValueError(f"arch kind {cfg.kind} has no language-pretrained weights")
    if (vocab_size is None) == (input_dim is None):
        raise ValueError("build_backbone takes either a vocab_size (token inputs) or an input_dim (patch inputs)")
    embed = partial(input_layer, vocab_size=vocab_size, pad_id=pad_id, input_dim=input_dim)
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = BUILDERS[cfg.kind](cfg, embed, pretrained)
        if getattr(cfg, "rand_init", False):  # Amos et al.: reset every parameter to N(0, 0.1)
            with torch.no_grad():
                for p in backbone.parameters():
                    p.normal_(0.0, 0.1)
    return backbone


def new_head(module_cls: type, backbone: nn.Module, out_dim: int, seed: int) -> nn.Module:
    """Wrap `backbone` with a freshly initialised head drawn from `seed`."""
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return module_cls(backbone, out_dim)


def count_parameters(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params_total": total, "params_trainable": trainable}


def ssm_kernels(backbone: nn.Module, L: int) -> list[torch.Tensor]:
    """Each SSM layer's convolution kernels (C, D, L), in layer order (empty for other kinds)."""
    return [m.kernels(L).detach() for m in backbone.modules() if isinstance(m, S4D)]


__all__ = ["MIXERS", "BUILDERS", "build_backbone", "new_head", "count_parameters", "ssm_kernels",
           "BitClassifier", "Classifier", "MaskedLM"]
