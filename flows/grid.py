"""The grid as a Prefect flow: tune every arm (its trials, then its selection), plan the cells,
fan the units of work out concurrently, record every outcome, build the report.

Thin wiring over the same stage functions DVC calls. Each unit (a pretraining start and its
label fractions, flows/cell.py) runs in a thread of this process, or, with `deployment` set, as
a run of that deployment on a work pool (one process worker per GPU). `concurrency` bounds how
many units run at once. A failing unit never stops the others: the report and the flow's final
state name the failed cells and why. A re-run skips cells whose results MLflow already holds
under the same config hash, and runs the failed ones again. With no PREFECT_API_URL set,
Prefect runs in local mode (a temporary in-process server).
"""
from __future__ import annotations

import functools

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed, wait
from prefect.states import Failed

from components import paths, tracking
from components.atomic import read_json, write_json
from components.config import ConfigError, Params, load_params
from components.grid import Cell, arms, cells, config_hash, trial_cells
from components.stages import plan as planning
from components.stages import report, skip, tune
from flows.cell import run_unit


@task(name="unit", cache_policy=NO_CACHE)
def unit_here(params: Params, start: Cell, fractions: list[float], parent_run_id: str, choice: dict) -> dict[str, dict]:
    return run_unit(params, start, fractions, parent_run_id, choice=choice)


@task(name="unit-on-pool", cache_policy=NO_CACHE)
def unit_on_pool(deployment: str, params_path: str, start: Cell, fractions: list[float], parent_run_id: str,
                 expected: dict[str, str], choice: dict) -> dict:
    from prefect.deployments import run_deployment

    run = run_deployment(deployment, parameters={
        "task": start.task, "arch": start.arch, "init": start.init, "seed": start.seed, "fractions": fractions,
        "params_path": params_path, "parent_run_id": parent_run_id, "expected": expected, "trial": start.trial,
        "choice": choice}, as_subflow=True)
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


def _has_work(params: Params, trials: planning.Plan, resolve) -> bool:
    """Whether the launch will run anything (a fully recorded grid needs no worker online)."""
    if trials.run:
        return True
    try:
        return bool(planning.make(params, None, resolve).run)
    except ConfigError:  # a selection not written yet (its trials are recorded): it will be, then cells run
        return True


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


def _fan_out(params: Params, params_path: str, units: dict[Cell, list[float]], parents: dict[Cell, str],
             concurrency: int, deployment: str | None) -> dict[str, str]:
    """Run `units` ({start: fractions}) with at most `concurrency` at once; record every outcome
    in the cells' metrics files. {cell name: why} for the cells that failed."""
    futures, queue = {}, list(units.items())
    while queue or any(not f.state.is_final() for f in futures.values()):
        running = [f for f in futures.values() if not f.state.is_final()]
        while queue and len(running) < concurrency:  # at most `concurrency` units at once
            start, fractions = queue.pop(0)
            choice = tune.choice(params, start)
            if deployment is None:
                futures[start] = unit_here.submit(params, start, fractions, parents[start], choice)
            else:  # the worker checks its own settings give the same config hashes
                p = tune.resolve(params, start)
                hashes = {str(f): config_hash(p, start.at(f)) for f in fractions}
                futures[start] = unit_on_pool.submit(deployment, params_path, start, fractions, parents[start],
                                                     hashes, choice)
            running.append(futures[start])
        next(as_completed(running), None)
    wait(list(futures.values()))

    failed: dict[str, str] = {}
    recorded = tracking.recorded(params.tracking.experiment) if deployment else {}
    for start, future in futures.items():
        state = future.state
        outcome = state.result(raise_on_failure=False)
        p = tune.resolve(params, start)
        for fraction in units[start]:
            c = start.at(fraction)
            if not state.is_completed():
                failed[c.name] = _one_line(outcome) if isinstance(outcome, BaseException) else state.name
                _record_failure(c, failed[c.name])
            elif deployment:  # the record written on the worker, fetched from MLflow
                if (found := recorded.get(config_hash(p, c))) is None:
                    failed[c.name] = (f"the worker finished but {tracking.tracking_uri()} has no result for it: "
                                      "do the workers log to the same MLFLOW_TRACKING_URI?")
                    _record_failure(c, failed[c.name])
                else:
                    write_json(found["record"], paths.metrics_path(c))
    return failed


def run_grid(params: Params, params_path: str = "params.yaml", concurrency: int | None = None,
             deployment: str | None = None):
    concurrency = concurrency or params.prefect.concurrency
    deployment = deployment or params.prefect.deployment
    resolve = functools.partial(tune.resolve, params)
    trials = planning.make(params, planning.all_trials(params), resolve)
    if deployment is not None and _has_work(params, trials, resolve):
        _require_workers(deployment)
    grid_run = tracking.start_grid(params.tracking.experiment, f"grid-{params.profile}",
                                   {"profile": params.profile, "cells": str(len(cells(params))),
                                    "trials": str(params.tuning.trials), "deployment": deployment or "local"})
    # 1. tuning: every arm's trials (validation only), then each arm's selection
    for c, record in trials.done.items():
        write_json(record, paths.metrics_path(c))
    tune_runs = {arm: tracking.start_grid(params.tracking.experiment, "tune-" + "-".join(arm),
                                          {"task": arm[0], "arch": arm[1], "init": arm[2],
                                           "trials": str(params.tuning.trials)}, grid_run, stage="tune")
                 for arm in dict.fromkeys((c.task, c.arch, c.init) for c in trials.run)}
    units = trials.starts()
    failed = _fan_out(params, params_path, units, {s: tune_runs[(s.task, s.arch, s.init)] for s in units},
                      concurrency, deployment)
    for arm in arms(params):
        if params.tuning.trials > 1:
            done = [c for c in trial_cells(params, *arm) if paths.metrics_path(c).exists()]
            tune.write_selection(params, *arm, {c: read_json(paths.metrics_path(c)) for c in done}, tune_runs.get(arm))
    # 2. the grid: every arm's selected settings on every seed; test data read once per cell
    todo = planning.make(params, None, resolve)
    for c, reason in todo.skipped.items():
        skip.write("evaluate", c, "skipped", reason)
    for c, reason in todo.blocked.items():  # an arm whose every trial diverged or failed: its result, not an error
        skip.write("evaluate", c, "failed", f"tuning: {reason}")
    for c, record in todo.done.items():
        write_json(record, paths.metrics_path(c))
    units = todo.starts()
    failed.update(_fan_out(params, params_path, units, {s: grid_run for s in units}, concurrency, deployment))

    outputs = report.run(params)
    ran = len(todo.run) + len(trials.run) - len(failed)
    tracking.end_grid(grid_run, bool(failed), {"failed": str(len(failed)), "ran": str(ran),
                                               "recorded_before": str(len(todo.done) + len(trials.done))})
    summary = {"ran": [c.name for c in trials.run + todo.run if c.name not in failed],
               "recorded_before": [c.name for c in [*trials.done, *todo.done]],
               "skipped": {c.name: r for c, r in todo.skipped.items()}, "failed": failed,
               "report": [str(p) for p in outputs], "grid_run_id": grid_run}
    if failed:
        return Failed(message=f"{len(failed)} of {len(todo.run) + len(trials.run)} runs failed: "
                              + "; ".join(f"{name}: {why}" for name, why in failed.items()), data=summary)
    return summary


@flow(name="arena-grid", log_prints=True)
def grid_flow(params_path: str = "params.yaml", concurrency: int | None = None, deployment: str | None = None):
    return run_grid(load_params(params_path), params_path, concurrency, deployment)
