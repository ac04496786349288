"""A cell's settings, resolved once at the edge: `resolve(params, cell) -> CellSpec`.

Everything below the edge (the stages, the unit runner, the flows' workers) takes a `CellSpec`
and never looks at params.yaml's tables again: the tuned values are applied, each training
phase is flat for this architecture (one learning rate, one step budget), the skip rules are
decided, and the config hash is computed here, once. The DVC stages (through the CLI), the
Prefect flows and `arena grid --dry-run` all resolve through this one function.
"""
from __future__ import annotations

import hashlib
import json
from typing import Optional

from components import selection, tuning
from components.config import PRETRAINING, ArchCfg, Frozen, InitCfg, Params, Phase, TaskCfg
from components.grid import Cell, skip_reason
from components.records import Choice


class CellSpec(Frozen):
    cell: Cell
    task: TaskCfg
    arch: ArchCfg
    init: InitCfg
    pretrain: Phase
    finetune: Phase
    choice: Choice  # how the tuned values were chosen (the defaults for a skipped or blocked cell)
    skip: Optional[str] = None  # why the grid's rules leave this cell out
    blocked: Optional[str] = None  # why its arm has no configuration (every tuning trial failed)
    device: str
    bf16: bool
    compile: bool
    experiment: str  # the MLflow experiment
    code: str  # the code version (components/versioning.py)
    config_hash: str  # 16 hex digits over everything above that a result depends on

    @property
    def name(self) -> str:
        return self.cell.name

    def at(self, fraction: float) -> "CellSpec":
        """The same settings at another label fraction (the hash follows the cell)."""
        cell = self.cell.at(fraction)
        return self.model_copy(update={"cell": cell, "config_hash": _hash(self, cell)})

    @property
    def start(self) -> Cell:
        """The pretraining start this cell finetunes from. Self-pretraining sees the cell's own
        labelled rows (the SPT paper: both phases on the same subset), so each fraction has its
        own start; random or language-pretrained weights, and self-pretraining declared on all
        rows (`pretrain_rows: all`, a semi-supervised setting), are one start for every fraction."""
        own = self.init.kind in PRETRAINING and self.init.pretrain_rows == "labelled"
        return self.cell if own else self.cell.at(1.0)

    @property
    def init_hash(self) -> str:
        """16 hex digits over what the cell's initial weights depend on (not finetuning): a
        finished initialization with the same hash is current."""
        c = self.start
        return _digest(self, {"task": c.task, "arch": c.arch, "init": c.init, "seed": c.seed, "trial": c.trial,
                              "fraction": c.fraction}, HASHED - {"finetune"})

    def budgets(self, n_train: int) -> tuple[int, int]:
        """(pretraining steps, finetuning steps). A compute-tied init splits its `total_steps`;
        otherwise each phase has its own budget over the rows it sees (finetuning: the cell's
        labelled rows; self-pretraining: its start's)."""
        if self.init.total_steps is not None:
            pretrain = max(1, round(self.init.pretrain_share * self.init.total_steps))
            return pretrain, max(1, self.init.total_steps - pretrain)
        finetune = self.finetune.budget(max(1, round(n_train * self.cell.fraction)))
        if self.init.kind not in PRETRAINING:
            return 0, finetune
        return self.pretrain.budget(max(1, round(n_train * self.start.fraction))), finetune


HASHED = {"task", "arch", "init", "pretrain", "finetune", "bf16", "compile"}  # the settings a result depends on


def _digest(spec: CellSpec, cell: dict, settings: set[str]) -> str:
    """16 hex digits over a cell's identity, the code version and `settings` of `spec`."""
    blob = {"cell": cell, "code": spec.code, **spec.model_dump(mode="json", include=settings)}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _hash(spec: CellSpec, cell: Cell) -> str:
    return _digest(spec, {"task": cell.task, "arch": cell.arch, "init": cell.init, "seed": cell.seed,
                          "fraction": cell.fraction, "trial": cell.trial}, HASHED)


def resolve(params: Params, cell: Cell, choice: Optional[Choice] = None) -> CellSpec:
    """`cell`'s settings. `choice` (a controller's, sent to a worker) is used as given; else it is
    the trial's candidate, the arm's selection (selected.json, refused when stale) or the defaults.
    An arm whose tuning failed resolves with `blocked` set, on the defaults."""
    from components.versioning import code_version

    skip, blocked = skip_reason(params, cell), None
    if choice is None:
        try:
            choice = selection.defaults() if skip else selection.choice(params, cell)
        except selection.ArmFailed as err:
            choice, blocked = selection.defaults(), str(err)
    p = tuning.apply(params, cell.arch, choice.values)
    fields = dict(cell=cell, task=p.tasks[cell.task], arch=p.archs[cell.arch], init=_init(p, cell),
                  pretrain=_phase(p.pretrain, p, cell), finetune=_phase(p.finetune, p, cell), choice=choice,
                  skip=skip, blocked=blocked, device=p.device, bf16=p.bf16, compile=p.compile,
                  experiment=p.tracking.experiment, code=code_version())
    spec = CellSpec.model_construct(**fields, config_hash="")
    return CellSpec(**fields, config_hash=_hash(spec, cell))


def _init(params: Params, cell: Cell) -> InitCfg:
    """The cell's init; a tuning trial of a compute-tied one gets its share of `total_steps` too."""
    init, share = params.inits[cell.init], params.tuning.budget_share
    if cell.trial is None or init.total_steps is None or share == 1.0:
        return init
    return init.model_copy(update={"total_steps": max(2, round(init.total_steps * share))})


def _phase(cfg, params: Params, cell: Cell):
    """The phase as `cell` runs it: its arch's rate, its task's or arch's budget, a trial's share of it."""
    phase = cfg.for_arch(cell.arch, cell.task)
    return phase if cell.trial is None else phase.shortened(params.tuning.budget_share)


def config_hash(params: Params, cell: Cell) -> str:
    """The config hash `cell` runs under (see `resolve`)."""
    return resolve(params, cell).config_hash
