"""The grid as a Prefect flow: plan the cells, fan the units of work out concurrently, record
every outcome, build the report.

Thin wiring over the same stage functions DVC calls. Each unit (a pretraining start and its
label fractions, flows/cell.py) runs in a thread of this process, or, with `deployment` set, as
a run of that deployment on a work pool (one process worker per GPU). `concurrency` bounds how
many units run at once. A failing unit never stops the others: the report and the flow's final
state name the failed cells and why. A re-run skips cells whose results MLflow already holds
under the same config hash, and runs the failed ones again. With no PREFECT_API_URL set,
Prefect runs in local mode (a temporary in-process server).
"""
from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed, wait
from prefect.states import Failed

from components import paths, tracking
from components.atomic import read_json, write_json
from components.config import Params, load_params
from components.grid import Cell, cells, config_hash
from components.stages import plan as planning
from components.stages import report, skip
from flows.cell import run_unit


@task(name="unit", cache_policy=NO_CACHE)
def unit_here(params: Params, start: Cell, fractions: list[float], parent_run_id: str) -> dict[str, dict]:
    return run_unit(params, start, fractions, parent_run_id)


@task(name="unit-on-pool", cache_policy=NO_CACHE)
def unit_on_pool(deployment: str, params_path: str, start: Cell, fractions: list[float], parent_run_id: str,
                 expected: dict[str, str]) -> dict:
    from prefect.deployments import run_deployment

    run = run_deployment(deployment, parameters={
        "task": start.task, "arch": start.arch, "init": start.init, "seed": start.seed, "fractions": fractions,
        "params_path": params_path, "parent_run_id": parent_run_id, "expected": expected}, as_subflow=True)
    if not run.state.is_completed():
        raise RuntimeError(f"flow run {run.name} ({run.id}) ended {run.state.name}: {run.state.message or 'no message'}")
    return {}  # the worker's metrics files stay there; the records come back through MLflow


def _require_workers(deployment: str) -> None:
    """Fail at once, not after waiting forever, when no worker polls the deployment's pool."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        pool = client.read_deployment_by_name(deployment).work_pool_name
        workers = client.read_workers_for_work_pool(pool)
    if not any(str(getattr(w.status, "value", w.status)).upper() == "ONLINE" for w in workers):
        raise RuntimeError(f"no worker is online for work pool '{pool}' (deployment {deployment}): start one with "
                           f"`prefect worker start --pool {pool} --type process` (README, Prefect)")


def _record_failure(cell: Cell, reason: str) -> None:
    """The cell's metrics file says it failed and why; a finished result that was there (from
    an earlier run, maybe of other settings) is kept beside it as .prev.json, never overwritten."""
    path = paths.metrics_path(cell)
    extra = {}
    if path.exists() and read_json(path).get("status") == "ok":
        kept = path.with_suffix(".prev.json")
        path.replace(kept)
        extra["previous_result"] = str(kept)
    skip.write("evaluate", cell, "failed", reason, extra)


def _one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip().splitlines()
    return (text[-1] if text else type(err).__name__)[:500]


def run_grid(params: Params, params_path: str = "params.yaml", concurrency: int | None = None,
             deployment: str | None = None):
    concurrency = concurrency or params.prefect.concurrency
    deployment = deployment or params.prefect.deployment
    todo = planning.make(params)
    units = todo.starts()
    if deployment is not None and units:
        _require_workers(deployment)
    grid_run = tracking.start_grid(params.tracking.experiment, f"grid-{params.profile}",
                                   {"profile": params.profile, "cells": str(len(cells(params))),
                                    "to_run": str(len(todo.run)), "deployment": deployment or "local"})
    for c, reason in todo.skipped.items():
        skip.write("evaluate", c, "skipped", reason)
    for c, record in todo.done.items():
        write_json(record, paths.metrics_path(c))

    futures, queue = {}, list(units.items())
    while queue or any(not f.state.is_final() for f in futures.values()):
        running = [f for f in futures.values() if not f.state.is_final()]
        while queue and len(running) < concurrency:  # at most `concurrency` units at once
            start, fractions = queue.pop(0)
            if deployment is None:
                futures[start] = unit_here.submit(params, start, fractions, grid_run)
            else:  # the worker checks its own settings give the same config hashes
                hashes = {str(f): config_hash(params, Cell(start.task, start.arch, start.init, start.seed, f))
                          for f in fractions}
                futures[start] = unit_on_pool.submit(deployment, params_path, start, fractions, grid_run, hashes)
            running.append(futures[start])
        next(as_completed(running), None)
    wait(list(futures.values()))

    failed: dict[str, str] = {}
    recorded = tracking.recorded(params.tracking.experiment) if deployment else {}
    for start, future in futures.items():
        state = future.state
        outcome = state.result(raise_on_failure=False)
        for fraction in units[start]:
            c = Cell(start.task, start.arch, start.init, start.seed, fraction)
            if not state.is_completed():
                failed[c.name] = _one_line(outcome) if isinstance(outcome, BaseException) else state.name
                _record_failure(c, failed[c.name])
            elif deployment:  # the record written on the worker, fetched from MLflow
                if (found := recorded.get(config_hash(params, c))) is None:
                    failed[c.name] = (f"the worker finished but {tracking.tracking_uri()} has no result for it: "
                                      "do the workers log to the same MLFLOW_TRACKING_URI?")
                    _record_failure(c, failed[c.name])
                else:
                    write_json(found["record"], paths.metrics_path(c))
    outputs = report.run(params)
    tracking.end_grid(grid_run, bool(failed), {"failed": str(len(failed)), "ran": str(len(todo.run) - len(failed)),
                                               "recorded_before": str(len(todo.done))})
    summary = {"ran": [c.name for c in todo.run if c.name not in failed], "recorded_before": [c.name for c in todo.done],
               "skipped": {c.name: r for c, r in todo.skipped.items()}, "failed": failed,
               "report": [str(p) for p in outputs], "grid_run_id": grid_run}
    if failed:
        return Failed(message=f"{len(failed)} of {len(todo.run)} cells failed: "
                              + "; ".join(f"{name}: {why}" for name, why in failed.items()), data=summary)
    return summary


@flow(name="arena-grid", log_prints=True)
def grid_flow(params_path: str = "params.yaml", concurrency: int | None = None, deployment: str | None = None):
    return run_grid(load_params(params_path), params_path, concurrency, deployment)
