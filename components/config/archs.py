"""`archs:` one entry per named architecture; `kind` picks the model family
(components/models/ builds it from this config)."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, model_validator

from components.config.base import Frozen


class _AttentionCfg(Frozen):
    d_model: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(4, ge=1)
    ff_mult: int = Field(2, ge=0)  # feed-forward width multiple; 0 removes the FF sub-block
    positions: Literal["sinusoidal", "rotary", "none"] = "sinusoidal"
    causal: bool = False

    @model_validator(mode="after")
    def _heads(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.positions == "rotary" and (self.d_model // self.n_heads) % 2:
            raise ValueError("rotary positions need an even head width (d_model / n_heads)")
        return self


class TransformerCfg(_AttentionCfg):
    """Pre-LN Transformer on SDPA; `block_size` switches to block-local attention (each block of
    that many positions attends to itself and its neighbour blocks) for very long inputs."""

    kind: Literal["transformer"] = "transformer"
    block_size: Optional[int] = Field(None, ge=1)


class LaSCfg(_AttentionCfg):
    """LaS attention: exponential locality decay (rates up to `decay_max`, head 0 global) and
    row smoothing by average pooling of width `pool`. Ablations: pool 1 = decay only;
    decay_max 0 = smoothing only."""

    kind: Literal["las"] = "las"
    # LaS is the Transformer with two changes, so it keeps the Transformer's positions: with
    # none, only the decay's weak multiplicative signal tells order, and on ListOps (order-only
    # structure) LaS stalled near 20% where the Transformer reaches 35%
    positions: Literal["sinusoidal", "rotary", "none"] = "sinusoidal"
    decay_max: float = Field(0.1, ge=0, le=1)
    pool: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _odd_pool(self):
        if self.pool % 2 == 0:
            raise ValueError(f"pool={self.pool} must be odd (the pooled matrix keeps its L x L shape)")
        return self


class LaSChunkCfg(LaSCfg):
    """LaS inside non-overlapping chunks of `chunk` positions (linear cost)."""

    kind: Literal["las_chunk"] = "las_chunk"
    chunk: int = Field(64, ge=1)


class _SSMCfg(Frozen):
    d_model: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1)
    d_state: int = Field(64, ge=2)  # N real state size = N/2 complex conjugate modes
    dt_min: float = Field(1e-3, gt=0)
    dt_max: float = Field(1e-1, gt=0)
    ssm_lr: float = Field(1e-3, gt=0)  # S4 convention: SSM parameters get their own lr, no weight decay
    bidirectional: bool = True
    rand_init: bool = False  # SPT paper's "random init": every parameter ~ N(0, 0.1)
    ff_mult: int = Field(0, ge=0)
    positions: Literal["sinusoidal", "none"] = "none"

    @model_validator(mode="after")
    def _state(self):
        if self.d_state % 2:
            raise ValueError(f"d_state={self.d_state} must be even (conjugate pairs)")
        if self.dt_min >= self.dt_max:
            raise ValueError("dt_min must be below dt_max")
        return self


class S4DCfg(_SSMCfg):
    """S4D (diagonal SSM, ZOH, B = 1) with S4D-Lin or S4D-Inv initialisation, GLU output."""

    kind: Literal["s4d"] = "s4d"
    init: Literal["lin", "inv"] = "lin"


class DLRCfg(_SSMCfg):
    """Diagonal linear RNN: the transition Lambda learned directly (structured init from S4D-Lin)."""

    kind: Literal["dlr"] = "dlr"


class LSTMCfg(Frozen):
    kind: Literal["lstm"] = "lstm"
    d_model: int = Field(64, ge=2)
    n_layers: int = Field(2, ge=1)
    bidirectional: bool = False  # splits d_model between the two directions
    ff_mult: int = Field(0, ge=0)
    positions: Literal["sinusoidal", "none"] = "none"

    @model_validator(mode="after")
    def _even(self):
        if self.bidirectional and self.d_model % 2:
            raise ValueError(f"a bidirectional LSTM needs an even d_model (got {self.d_model})")
        return self


class FPTCfg(Frozen):
    """Frozen pretrained transformer: a language model fed through input embeddings. `train`
    names the LM parameter groups that train besides the input embedding and output head."""

    kind: Literal["fpt"] = "fpt"
    backbone: Literal["minilm", "gpt2"] = "minilm"
    path: Optional[str] = None  # local Hugging Face directory (required for gpt2)
    n_layers: Optional[int] = Field(None, ge=1)  # keep only the first n blocks (None: all of them)
    train: list[Literal["norms", "positions", "attention", "feedforward"]] = ["norms", "positions"]
    dropout: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _path(self):
        if self.backbone == "gpt2" and not self.path:
            raise ValueError("backbone gpt2 needs `path`: a local Hugging Face GPT-2 directory")
        return self


ArchCfg = Annotated[Union[TransformerCfg, LaSCfg, LaSChunkCfg, S4DCfg, DLRCfg, LSTMCfg, FPTCfg],
                    Field(discriminator="kind")]

