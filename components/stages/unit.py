"""One unit of work: a pretraining start (task, arch, init, seed, trial) initialized once, then
finetuned and evaluated at each of its label fractions. The one runner behind `arena run`, the
tune stage (each trial is a unit), the Prefect cell flow (a deployment on a GPU worker) and the
grid flow's local units.

The unit's data is materialized here when this machine does not have it from the task's present
settings (a worker that did not `dvc pull`); a lock keeps two units on one machine from building
it at once.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from typing import Iterator

from components import paths, records
from components.config import ConfigError, Params
from components.grid import Cell
from components.records import CellRecord
from components.spec import CellSpec


def ensure_data(params: Params, task: str) -> None:
    """Materialize `task` unless this machine already has it from its present settings."""
    from components.stages import materialize

    lock = paths.data_dir(task).parent / f".{task}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        if not materialize.current(params, task):
            materialize.run(params, task)


class CellBusy(ConfigError):
    """Another process is running the same pretraining start."""


@contextmanager
def hold(cell: Cell) -> Iterator[None]:
    """Run `cell`'s pretraining start alone: a second process (or thread) that asks for the same
    start is refused at once, so one cell never gets two MLflow runs or two writers."""
    lock = paths.lock_path(cell.start)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise CellBusy(f"{cell.start.name}: already running ({holder} holds {lock}); wait for it to finish") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()


def check_same_start(specs: list[CellSpec]) -> None:
    starts = {s.cell.start for s in specs}
    if len(starts) != 1:
        raise ValueError(f"a unit is one pretraining start; got {sorted(c.name for c in starts)}")


def run_unit(specs: list[CellSpec], parent_run_id: str | None = None,
             params: Params | None = None) -> dict[str, CellRecord]:
    """Pretrain the start of `specs` once, then finetune and evaluate each: {cell name: record}.
    With `params`, the task's data is materialized first where this machine lacks it."""
    from components.stages import pretrain

    check_same_start(specs)
    if params is not None:
        ensure_data(params, specs[0].cell.task)
    with hold(specs[0].cell):
        if not pretrain.current(specs[0]):  # a finished initialization is kept (and its finetuning's resume state)
            pretrain.run(specs[0], parent_run_id)
        return {s.name: records.load(CellRecord, finetune_then_evaluate(s, parent_run_id)) for s in specs}


def finetune_then_evaluate(spec: CellSpec, parent_run_id: str | None = None):
    from components.stages import evaluate, finetune

    finetune.run(spec, parent_run_id)
    return evaluate.run(spec)


def check_expected(specs: list[CellSpec], expected: dict[str, str]) -> None:
    """A worker's resolved config hashes must be the controller's ({fraction: hash}), for exactly
    the fractions it runs."""
    if expected and set(expected) != {str(s.cell.fraction) for s in specs}:
        raise ConfigError(f"{specs[0].cell.start.name}: the controller expects fractions {sorted(expected)}, this unit "
                          f"runs {sorted(str(s.cell.fraction) for s in specs)}")
    for spec in specs:
        wanted = expected.get(str(spec.cell.fraction))
        if wanted is not None and spec.config_hash != wanted:
            raise ConfigError(f"{spec.name}: this worker's params give config {spec.config_hash}, the controller's "
                              f"{wanted}; run workers on the same commit and params.yaml (and profile) as the controller")
