"""`tuning:` the declared budget every (task, arch, init) arm gets."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config.base import Frozen

TUNABLE = ("lr", "weight_decay", "warmup_steps", "grad_clip")  # per phase: pretrain.<name>, finetune.<name>


class Range(Frozen):
    """One dimension of the search space: uniform in [low, high], or log-uniform (`log`);
    `integer` rounds the drawn value."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _order(self):
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got {self.low})")
        return self


class TuningCfg(Frozen):
    """The tuning budget, the same for every (task, arch, init) arm: `trials` quasi-random points
    of `space` (scrambled Sobol, seeded by `seed`), identical for every arm; each trial trains on the
    seed `seed` and is scored on validation data; the best (`metric`, ties to the lower trial) then
    runs on each of the arm's grid seeds. `trials: 1` is no tuning: the shared defaults of pretrain/finetune.
    `defaults_first` makes trial 0 those defaults (each arch's calibrated learning rates) and the
    other trials the first `trials - 1` quasi-random points, so the defaults are always a candidate
    (a Sobol point still wins if it scores higher on validation at the trials' shorter budget).
    `budget_share` trains each trial on that share of both phases' step budgets (cheaper tuning, the
    same for every arm; the report states it)."""

    trials: int = Field(1, ge=1)
    budget_share: float = Field(1.0, gt=0, le=1)
    defaults_first: bool = False
    seed: int = 1000
    metric: Literal["val_accuracy"] = "val_accuracy"
    space: dict[str, Range] = {}

    @model_validator(mode="after")
    def _space(self):
        for key, r in self.space.items():
            phase, _, name = key.partition(".")
            if phase not in ("pretrain", "finetune") or name not in TUNABLE:
                raise ValueError(f"space.{key}: not tunable; use pretrain.<name> or finetune.<name> with name in "
                                 f"{list(TUNABLE)}")
            if name in ("lr", "grad_clip") and r.low <= 0 or name == "weight_decay" and r.low < 0:
                raise ValueError(f"space.{key}: low must be {'>= 0' if name == 'weight_decay' else '> 0'} (got {r.low})")
            if name == "warmup_steps" and (not r.integer or r.low < 0):
                raise ValueError(f"space.{key}: warmup steps need `integer: true` and low >= 0")
        if self.trials > 1 and not self.space:
            raise ValueError(f"trials: {self.trials} needs a search space (space is empty)")
        return self

