"""One unit of grid work, on whichever machine runs it (a GPU worker, or this one): a pretraining
start (task, arch, init, seed), then finetuning and evaluation for each of its label fractions.

As a deployment (prefect.yaml), a process worker runs it in the project checkout; the data comes
from `dvc pull` when the worker has pulled it, else it is materialized here. Results go to the
MLflow store (`MLFLOW_TRACKING_URI`) as children of the grid's run (a tuning trial's: of its arm's
`tune` run), and come back as the return value.
"""
from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Any

from prefect import flow

from components import paths
from components.atomic import read_json
from components.config import ConfigError, Params, load_params
from components.grid import Cell, config_hash


def ensure_data(params: Params, task: str) -> None:
    """Materialize `task` unless this machine already has it from its present settings; a lock
    keeps two units on one machine from building it at once."""
    from components.stages import materialize

    lock = paths.data_dir(task).parent / f".{task}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        if not materialize.current(params, task):
            materialize.run(params, task)


def run_unit(params: Params, start: Cell, fractions: list[float], parent_run_id: str | None = None,
             expected: dict[str, str] | None = None, choice: dict[str, Any] | None = None) -> dict[str, dict]:
    """Pretrain `start` once, then finetune and evaluate it at each fraction: {cell name: metrics record}.
    `choice` is how the controller chose its tuned settings (stages/tune.py `choice`: a trial's
    candidate or the arm's selection; None: look it up here, from this checkout's selection);
    `expected` ({fraction: config hash}, from the controller) must match this machine's."""
    from components import tuning
    from components.stages import evaluate, finetune, pretrain, tune

    choice = tune.choice(params, start) if choice is None else choice
    params = tuning.apply(params, start.arch, choice["values"] or {})
    for fraction, wanted in (expected or {}).items():
        cell = start.at(float(fraction))
        if (here := config_hash(params, cell)) != wanted:
            raise ConfigError(f"{cell.name}: this worker's params give config {here}, the controller's {wanted}; "
                              "run workers on the same commit and params.yaml (and profile) as the controller")
    ensure_data(params, start.task)
    pretrain.run(params, start, parent_run_id)
    results = {}
    for fraction in fractions:
        cell = start.at(fraction)
        finetune.run(params, cell, parent_run_id)
        results[cell.name] = read_json(evaluate.run(params, cell, choice))
    return results


@flow(name="arena-cell", log_prints=True)
def cell_flow(task: str, arch: str, init: str, seed: int, fractions: list[float] = [1.0],  # noqa: B006
              params_path: str = "params.yaml", parent_run_id: str | None = None,
              expected: dict[str, str] | None = None, trial: int | None = None,
              choice: dict[str, Any] | None = None) -> dict[str, dict]:
    params = load_params(Path(params_path))
    return run_unit(params, Cell(task, arch, init, seed, 1.0, trial), fractions, parent_run_id, expected, choice)
