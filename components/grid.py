"""The experiment grid: one cell per (task, architecture, initialization, seed, label fraction),
and the rules that skip a cell (a grid `exclude`, or an initialization that does not apply to
the architecture). Skipped cells stay in the grid so the report can say why they did not run."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Optional

from components.config import LANGUAGE_PRETRAINED, FROZEN, PATCH_TASKS, PRETRAINING, ArchCfg, InitCfg, Params, TaskCfg


@dataclass(frozen=True, order=True)
class Cell:
    task: str
    arch: str
    init: str
    seed: int
    fraction: float = 1.0  # share of the labelled training rows used for finetuning
    trial: Optional[int] = None  # a tuning trial (seed = tuning.seed, validated only), or a grid cell

    @property
    def name(self) -> str:
        suffix = "" if self.fraction == 1.0 else f"-f{self.fraction}"
        trial = "" if self.trial is None else f"-trial{self.trial}"
        return f"{self.task}-{self.arch}-{self.init}{trial}-s{self.seed}{suffix}"

    def at(self, fraction: float) -> "Cell":
        return replace(self, fraction=fraction)

    def tags(self) -> dict[str, str]:
        tags = {"task": self.task, "arch": self.arch, "init": self.init, "seed": str(self.seed),
                "fraction": str(self.fraction)}
        return tags if self.trial is None else {**tags, "trial": str(self.trial)}


def cells(params: Params) -> list[Cell]:
    g = params.grid
    return [Cell(*c) for c in itertools.product(g.tasks, g.archs, g.inits, g.seeds, g.fractions)]


def arms(params: Params) -> list[tuple[str, str, str]]:
    """(task, arch, init): what gets one tuning budget and one selected configuration."""
    g = params.grid
    return list(itertools.product(g.tasks, g.archs, g.inits))


def trial_cells(params: Params, task: str, arch: str, init: str) -> list[Cell]:
    """The arm's tuning trials (none without tuning), every fraction of each."""
    if params.tuning.trials == 1:
        return []
    return [Cell(task, arch, init, params.tuning.seed, f, t)
            for t in range(params.tuning.trials) for f in params.grid.fractions]


def is_causal(arch: ArchCfg) -> bool:
    """Whether position t sees only positions <= t (such models self-pretrain with next-token prediction)."""
    if arch.kind in ("transformer", "las", "las_chunk"):
        return arch.causal
    if arch.kind == "fpt":
        return arch.backbone == "gpt2"
    return not arch.bidirectional  # s4d, dlr, lstm


def init_skip_reason(arch: ArchCfg, init: InitCfg) -> Optional[str]:
    """Why `init` cannot start `arch`, or None when it can."""
    if (init.kind in LANGUAGE_PRETRAINED or init.kind in FROZEN) and arch.kind != "fpt":
        return f"{init.kind} needs a language-pretrained backbone (an arch of kind fpt), not {arch.kind}"
    if init.kind == "causal_spt" and not is_causal(arch):
        return "causal_spt needs a causal model; this one is bidirectional (use masked_spt)"
    if init.kind == "masked_spt" and is_causal(arch):
        return "masked_spt is for bidirectional models; this one is causal (use causal_spt)"
    return None


def task_skip_reason(task: TaskCfg, init: InitCfg) -> Optional[str]:
    """Why `init` cannot start a model for `task`, or None when it can."""
    if init.kind in PRETRAINING and task.kind in PATCH_TASKS:
        return f"{init.kind} is token self-pretraining; {task.kind} inputs are patch vectors, not tokens"
    return None


def exclude_rule(params: Params, cell: Cell) -> Optional[int]:
    """The index of the first `grid.exclude` rule that leaves `cell` out, or None."""
    return next((i for i, rule in enumerate(params.grid.exclude)
                 if rule.matches(cell.task, cell.arch, cell.init, cell.fraction, cell.seed)), None)


def excluded(params: Params, cell: Cell) -> bool:
    """Whether a `grid.exclude` rule leaves `cell` out (the report lists such cells by count only)."""
    return exclude_rule(params, cell) is not None


def skip_reason(params: Params, cell: Cell) -> Optional[str]:
    if (i := exclude_rule(params, cell)) is not None:
        return f"excluded by grid.exclude.{i}"
    return (init_skip_reason(params.archs[cell.arch], params.inits[cell.init])
            or task_skip_reason(params.tasks[cell.task], params.inits[cell.init]))


def arm_skip_reason(params: Params, task: str, arch: str, init: str) -> Optional[str]:
    """Why the whole arm is left out (every label fraction of it), or None when any cell runs."""
    reasons = [skip_reason(params, Cell(task, arch, init, seed, f))
               for seed in params.grid.seeds for f in params.grid.fractions]
    return None if None in reasons else reasons[0]
