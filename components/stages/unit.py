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
import queue
import threading
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

    lock = paths.lock_dir() / f"data-{task}.lock"  # not in data/, which DVC hashes
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        if not materialize.current(params, task):
            materialize.run(params, task)


class CellBusy(ConfigError):
    """Another process is running the same pretraining start."""


@contextmanager
def hold(start: Cell) -> Iterator[None]:
    """Run `cell`'s pretraining start alone: a second process (or thread) that asks for the same
    start is refused at once, so one cell never gets two MLflow runs or two writers."""
    lock = paths.lock_path(start)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise CellBusy(f"{start.name}: already running ({holder} holds {lock}); wait for it to finish") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()


_GPUS: "queue.Queue[int] | None" = None  # free CUDA device indices of this process, made on first use
_GPUS_MADE = threading.Lock()


@contextmanager
def device_slot(setting: str) -> Iterator[str]:
    """The device one unit runs on. With several CUDA devices visible, each unit takes a free one
    and gives it back when done, so the local runner's concurrent units spread over the GPUs
    (with more units than GPUs, a unit waits for one); otherwise the setting as it is."""
    global _GPUS
    import torch

    count = torch.cuda.device_count() if setting in ("auto", "cuda") else 0
    if count < 2:
        yield setting
        return
    with _GPUS_MADE:
        if _GPUS is None:
            _GPUS = queue.Queue()
            for i in range(count):
                _GPUS.put(i)
    index = _GPUS.get()
    try:
        yield f"cuda:{index}"
    finally:
        _GPUS.put(index)


def check_same_start(specs: list[CellSpec]) -> None:
    starts = {s.start for s in specs}
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
    with hold(specs[0].start), device_slot(specs[0].device) as device:
        specs = [s.model_copy(update={"device": device}) for s in specs]  # the device is not hashed
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
        raise ConfigError(f"{specs[0].start.name}: the controller expects fractions {sorted(expected)}, this unit "
                          f"runs {sorted(str(s.cell.fraction) for s in specs)}")
    for spec in specs:
        wanted = expected.get(str(spec.cell.fraction))
        if wanted is not None and spec.config_hash != wanted:
            raise ConfigError(f"{spec.name}: this worker's params give config {spec.config_hash}, the controller's "
                              f"{wanted}; run workers on the same commit and params.yaml (and profile) as the controller")
