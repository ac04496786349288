"""`pretrain:` and `finetune:` (one training phase each), and `inits:` (how a cell's backbone
starts). A phase holds a learning rate per architecture; the code below the edge sees one
architecture's flat view of it (`OptimCfg.for_arch` -> `Phase`)."""
from __future__ import annotations

import math
from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from components.config.base import ConfigError, Frozen

INIT_KINDS = ("scratch", "masked_spt", "causal_spt", "fpt_frozen", "fpt_random", "pretrained_full")
PRETRAINING = ("masked_spt", "causal_spt")  # inits that train on the task's inputs before finetuning
FROZEN = ("fpt_frozen", "fpt_random")  # inits that freeze attention and feed-forward while finetuning
LANGUAGE_PRETRAINED = ("fpt_frozen", "pretrained_full")  # inits that load language-pretrained weights
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=False)]
Beta = Annotated[float, Field(ge=0, lt=1)]  # AdamW's decay rates



class OptimCfg(Frozen):
    """One training phase (pretraining or finetuning): AdamW, linear warmup, then cosine decay to 0
    or a constant rate. The budget is `steps`, or `epochs` over the training rows. Overrides, the
    most specific first: `steps_by_task_arch` for one architecture on one task ({task: {arch:
    steps}}: S4D needs 2,000 steps on ListOps but flattens by 1,000 on the digits), then
    `steps_by_arch` for an architecture on every task, then `steps_by_task` for every architecture
    on a task (the report shows every cell's steps)."""

    steps: Optional[int] = Field(None, ge=1)
    epochs: Optional[float] = Field(None, gt=0)
    steps_by_task: dict[str, Annotated[int, Field(ge=1)]] = {}
    steps_by_arch: dict[str, Annotated[int, Field(ge=1)]] = {}
    steps_by_task_arch: dict[str, dict[str, Annotated[int, Field(ge=1)]]] = {}
    batch_size: int = Field(32, ge=1)
    lr: dict[str, PositiveFloat]  # per architecture name: the archs' good learning rates differ (calibration)
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[Beta, Beta] = (0.9, 0.98)
    warmup_steps: int = Field(100, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    grad_clip: float = Field(1.0, gt=0)
    eval_every: int = Field(250, ge=1)
    eval_batch_size: int = Field(128, ge=1)
    patience: Optional[int] = Field(None, ge=1)  # early stopping: evaluations without improvement
    checkpoint_every: int = Field(250, ge=1)  # steps between resume checkpoints
    log_every: int = Field(25, ge=1)

    @model_validator(mode="after")
    def _budget(self):
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("set exactly one of steps and epochs")
        return self

    def for_arch(self, arch: str, task: str | None = None) -> "Phase":
        """This phase as one architecture runs it (on `task`): its learning rate and step budget, flat."""
        if arch not in self.lr:
            raise ConfigError(f"no learning rate for arch '{arch}' in this phase's `lr`")
        d = self.model_dump(exclude={"lr", "steps_by_arch", "steps_by_task", "steps_by_task_arch"})
        if arch in self.steps_by_task_arch.get(task, {}):
            d.update(steps=self.steps_by_task_arch[task][arch], epochs=None)
        elif arch in self.steps_by_arch:
            d.update(steps=self.steps_by_arch[arch], epochs=None)
        elif task in self.steps_by_task:
            d.update(steps=self.steps_by_task[task], epochs=None)
        return Phase(**d, lr=self.lr[arch])


class Phase(Frozen):
    """One training phase for one architecture (what the training loop and the config hash see):
    `OptimCfg` with the per-architecture tables resolved to plain values."""

    steps: Optional[int] = Field(None, ge=1)
    epochs: Optional[float] = Field(None, gt=0)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    betas: tuple[Beta, Beta]
    warmup_steps: int = Field(ge=0)
    schedule: Literal["cosine", "constant"]
    grad_clip: float = Field(gt=0)
    eval_every: int = Field(ge=1)
    eval_batch_size: int = Field(ge=1)
    patience: Optional[int] = Field(None, ge=1)
    checkpoint_every: int = Field(ge=1)
    log_every: int = Field(ge=1)

    def budget(self, n_rows: int) -> int:
        """Steps: `steps`, else `epochs` over `n_rows` training rows."""
        return self.steps if self.steps is not None else math.ceil(self.epochs * n_rows / self.batch_size)

    def shortened(self, share: float) -> "Phase":
        """The same phase on `share` of its budget (a tuning trial's), warmup and intervals with it."""
        if share == 1.0:
            return self
        cut = lambda n: max(1, round(n * share))  # noqa: E731
        return self.model_copy(update={
            "steps": None if self.steps is None else cut(self.steps),
            "epochs": None if self.epochs is None else self.epochs * share,
            "warmup_steps": round(self.warmup_steps * share), "eval_every": cut(self.eval_every)})


class InitCfg(Frozen):
    """How a cell's backbone starts. `scratch`: seeded random weights. `masked_spt` / `causal_spt`:
    self-pretraining on the task's own training inputs (masked denoising for bidirectional models,
    next-token prediction for causal ones). `fpt_frozen`: the language-pretrained backbone with
    attention and feed-forward frozen; `fpt_random`: the same frozen network with random weights;
    `pretrained_full`: the language-pretrained backbone with every weight trained.
    `pretrain_share` with `total_steps` makes the cell compute-tied: pretraining takes that share of
    `total_steps` and finetuning the rest (the SPT paper's Appendix D); set `total_steps` to what the
    `scratch` arm gets to compare at equal compute. Self-pretraining sees the cell's labelled rows
    (`pretrain_rows: labelled`, the SPT paper's protocol); `all` pretrains on every training input
    whatever the label fraction, a semi-supervised setting the report names as such."""

    kind: Literal[INIT_KINDS]
    mask_ratio: Optional[float] = Field(None, gt=0, lt=1)  # masked_spt; None: the task's mask_ratio
    pretrain_rows: Literal["labelled", "all"] = "labelled"
    pretrain_share: Optional[float] = Field(None, gt=0, lt=1)
    total_steps: Optional[int] = Field(None, ge=2)

    @model_validator(mode="after")
    def _fields(self):
        if (self.pretrain_share is None) != (self.total_steps is None):
            raise ValueError("pretrain_share and total_steps go together (a compute-tied budget)")
        if self.mask_ratio is not None and self.kind != "masked_spt":
            raise ValueError(f"mask_ratio applies to masked_spt only (kind is {self.kind})")
        if self.pretrain_rows != "labelled" and self.kind not in PRETRAINING:
            raise ValueError(f"pretrain_rows applies to masked_spt and causal_spt only (kind is {self.kind})")
        if self.pretrain_share is not None and self.kind not in PRETRAINING:
            raise ValueError(f"pretrain_share applies to masked_spt and causal_spt only (kind is {self.kind})")
        return self

