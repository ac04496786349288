"""One unit of grid work as a Prefect flow (the deployment's entry, prefect.yaml): on whichever
machine runs it (a GPU worker, or this one), a pretraining start (task, arch, init, seed), then
finetuning and evaluation for each of its label fractions, by the one unit runner
(components/stages/unit.py).

A process worker runs it in the project checkout; the data comes from `dvc pull` when the worker
has pulled it, else it is materialized here. Results go to the MLflow store
(`MLFLOW_TRACKING_URI`) as children of the grid's run (a tuning trial's: of its arm's `tune`
run), and come back as the return value.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from components.config import load_params
from components.grid import Cell
from components.records import Choice
from components.spec import resolve
from components.stages.unit import check_expected, run_unit


@flow(name="arena-cell", log_prints=True)
def cell_flow(task: str, arch: str, init: str, seed: int, fractions: list[float] = [1.0],  # noqa: B006
              params_path: str = "params.yaml", parent_run_id: str | None = None,
              expected: dict[str, str] | None = None, trial: int | None = None,
              choice: dict[str, Any] | None = None) -> dict[str, dict]:
    """`choice` is how the controller chose the tuned settings (None: this checkout's selection);
    `expected` ({fraction: config hash}, from the controller) must match what this machine resolves."""
    params = load_params(Path(params_path))
    chosen = Choice.model_validate(choice) if choice is not None else None
    start = Cell(task, arch, init, seed, 1.0, trial)
    specs = [resolve(params, start.at(float(f)), chosen) for f in fractions]
    check_expected(specs, expected or {})
    return {name: r.model_dump(mode="json") for name, r in run_unit(specs, parent_run_id, params).items()}
