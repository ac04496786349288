"""The grid as a Prefect flow: tune every arm (its trials, then its selection), plan the cells,
fan the units of work out, record every outcome, build the report.

Thin wiring over the same stage functions DVC calls. Each unit (a pretraining start and its
label fractions; components/stages/unit.py) is a Prefect task: run here, or, with `deployment`
set, as a run of that deployment on a work pool (one process worker per GPU). Prefect's thread
pool task runner, sized to `concurrency`, bounds how many units run at once. A failing unit never
stops the others: the report and the flow's final state name the failed cells and why. A re-run
skips cells whose results MLflow already holds under the same config hash, and runs the failed
ones again. With no PREFECT_API_URL set, Prefect runs in local mode (a temporary in-process server).
"""
from __future__ import annotations

from typing import Callable

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from components import paths, records, tracking
from components.config import ConfigError, Params, load_params
from components.grid import Cell, arms, cells, skip_reason, trial_cells
from components.records import CellRecord
from components.spec import CellSpec
from components.stages import plan as planning
from components.stages import report, skip, tune
from components.stages.unit import run_unit


@task(name="unit", cache_policy=NO_CACHE)
def unit_here(specs: list[CellSpec], parent_run_id: str, params: Params) -> dict[str, CellRecord]:
    return run_unit(specs, parent_run_id, params)


@task(name="unit-on-pool", cache_policy=NO_CACHE)
def unit_on_pool(deployment: str, params_path: str, specs: list[CellSpec], parent_run_id: str) -> dict:
    """The unit as a run of `deployment`; the worker checks its own settings give the same config
    hashes. The idempotency key names the unit and its settings, not this launch: a controller
    restarted while the unit still runs waits for that run instead of submitting it again, and an
    earlier attempt that ended in failure is tried again under a fresh key."""
    from datetime import datetime, timezone

    from prefect.deployments import run_deployment

    start = specs[0].cell
    key = f"{start.name}:{','.join(s.config_hash for s in specs)}"
    parameters = {
        "task": start.task, "arch": start.arch, "init": start.init, "seed": start.seed,
        "fractions": [s.cell.fraction for s in specs], "params_path": params_path, "parent_run_id": parent_run_id,
        "expected": {str(s.cell.fraction): s.config_hash for s in specs}, "trial": start.trial,
        "choice": specs[0].choice.model_dump(mode="json")}
    asked = datetime.now(timezone.utc)
    run = run_deployment(deployment, parameters=parameters, as_subflow=True, idempotency_key=key)
    if not run.state.is_completed() and run.created is not None and run.created < asked:
        run = run_deployment(deployment, parameters=parameters, as_subflow=True,
                             idempotency_key=f"{key}:{asked.isoformat()}")
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
                           f"`prefect worker start --pool {pool} --type process` (docs/scale-out.md)")


def _record_failure(cell: Cell, reason: str) -> None:
    """The cell's metrics file says it failed and why; a finished result that was there (from
    an earlier run, maybe of other settings) is kept beside it as .prev.json, never overwritten."""
    path, extra = paths.metrics_path(cell), {}
    if path.exists() and _finished(path):
        kept = path.with_suffix(".prev.json")
        path.replace(kept)
        extra["previous_result"] = str(kept)
    skip.write("evaluate", cell, "failed", reason, extra)


def _finished(path) -> bool:
    """Whether `path` holds a finished result (or something this code did not write: kept too)."""
    try:
        return records.load(CellRecord, path).status == "ok"
    except ValueError:
        return True


def _one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip().splitlines()
    return (text[-1] if text else type(err).__name__)[:500]


def _fan_out(params: Params, params_path: str, units: list[list[CellSpec]], parent: Callable[[Cell], str],
             deployment: str | None) -> dict[str, str]:
    """Submit every unit (the flow's task runner bounds how many run at once); record every
    outcome in the cells' metrics files. {cell name: why} for the cells that failed."""
    futures = []
    for specs in units:
        if deployment is None:
            future = unit_here.submit(quote(specs), parent(specs[0].cell), quote(params))
        else:
            future = unit_on_pool.submit(deployment, params_path, quote(specs), parent(specs[0].cell))
        futures.append((specs, future))
    wait([f for _, f in futures])

    failed: dict[str, str] = {}
    recorded = tracking.recorded(params.tracking.experiment) if deployment else {}
    for specs, future in futures:
        state = future.state
        outcome = state.result(raise_on_failure=False)
        for spec in specs:
            if not state.is_completed():
                failed[spec.name] = _one_line(outcome) if isinstance(outcome, BaseException) else state.name
                _record_failure(spec.cell, failed[spec.name])
            elif deployment:  # the record written on the worker, fetched from MLflow
                if (found := recorded.get(spec.config_hash)) is None:
                    failed[spec.name] = (f"the worker finished but {tracking.tracking_uri()} has no result for it: "
                                         "do the workers log to the same MLFLOW_TRACKING_URI?")
                    _record_failure(spec.cell, failed[spec.name])
                else:
                    records.save(found["record"], paths.metrics_path(spec.cell))
    return failed


def _has_work(params: Params, trials: planning.Plan) -> bool:
    """Whether the launch will run anything (a fully recorded grid needs no worker online)."""
    if trials.run:
        return True
    try:
        return bool(planning.make(params).run)
    except ConfigError:  # a selection not written yet (its trials are recorded): it will be, then cells run
        return True


def run_grid(params: Params, params_path: str = "params.yaml", deployment: str | None = None, build_report: bool = True):
    deployment = deployment or params.prefect.deployment
    tracking.close_stale(params.tracking.experiment)  # parents of an earlier launch that was killed
    trials = planning.make(params, planning.all_trials(params))
    if deployment is not None and _has_work(params, trials):
        _require_workers(deployment)
    grid_run = tracking.start_grid(params.tracking.experiment, f"grid-{params.profile}",
                                   {"profile": params.profile, "cells": str(len(cells(params))),
                                    "trials": str(params.tuning.trials), "deployment": deployment or "local"})
    try:
        return _run(params, params_path, deployment, trials, grid_run, build_report)
    except BaseException as err:  # the grid's run ends KILLED (SIGTERM, Ctrl-C) or FAILED, never RUNNING
        tracking.abort(grid_run, err)
        raise


def _run(params: Params, params_path: str, deployment: str | None, trials: planning.Plan, grid_run: str,
         build_report: bool):
    # 1. tuning: every arm's trials (validation only), then each arm's selection
    for c, record in trials.done.items():
        records.save(record, paths.metrics_path(c))
    tune_runs = {arm: tracking.start_grid(params.tracking.experiment, "tune-" + "-".join(arm),
                                          {"task": arm[0], "arch": arm[1], "init": arm[2],
                                           "trials": str(params.tuning.trials)}, grid_run, stage="tune")
                 for arm in dict.fromkeys((s.cell.task, s.cell.arch, s.cell.init) for s in trials.run)}
    failed = _fan_out(params, params_path, trials.units(), lambda c: tune_runs[(c.task, c.arch, c.init)], deployment)
    for arm in arms(params):  # every arm's record, also without tuning (it says so): DVC's grid output
        done = {c: records.load(CellRecord, paths.metrics_path(c)) for c in trial_cells(params, *arm)
                if skip_reason(params, c) is None and paths.metrics_path(c).exists()}  # not a left-out fraction's
        tune.write_selection(params, *arm, done, tune_runs.get(arm))
    # 2. the grid: every arm's selected settings on every seed; test data read once per cell
    todo = planning.make(params)
    for c, reason in todo.skipped.items():
        skip.write("evaluate", c, "skipped", reason)
    for c, reason in todo.blocked.items():  # an arm whose every trial diverged or failed: its result, not an error
        skip.write("evaluate", c, "failed", f"tuning: {reason}")
    for c, record in todo.done.items():
        records.save(record, paths.metrics_path(c))
    failed.update(_fan_out(params, params_path, todo.units(), lambda c: grid_run, deployment))

    outputs = report.run(params) if build_report else []  # DVC builds it in its own stage
    ran = [s.cell.name for s in trials.run + todo.run if s.cell.name not in failed]
    tracking.end_grid(grid_run, bool(failed), {"failed": str(len(failed)), "ran": str(len(ran)),
                                               "recorded_before": str(len(todo.done) + len(trials.done))})
    summary = {"ran": ran, "recorded_before": [c.name for c in [*trials.done, *todo.done]],
               "skipped": {c.name: r for c, r in todo.skipped.items()}, "failed": failed,
               "report": [str(p) for p in outputs], "grid_run_id": grid_run}
    if failed:
        return Failed(message=f"{len(failed)} of {len(todo.run) + len(trials.run)} runs failed: "
                              + "; ".join(f"{name}: {why}" for name, why in failed.items()), data=summary)
    return summary


@flow(name="arena-grid", log_prints=True)
def _grid_flow(params_path: str = "params.yaml", concurrency: int = 1, deployment: str | None = None,
               build_report: bool = True):
    return run_grid(load_params(params_path), params_path, deployment, build_report)


def grid_flow(params_path: str = "params.yaml", concurrency: int | None = None, deployment: str | None = None,
              return_state: bool = False, build_report: bool = True):
    """Run the grid flow with a task runner of `concurrency` threads (default: prefect.concurrency):
    at most that many units at once, here or on the pool."""
    params = load_params(params_path)
    n = concurrency or params.prefect.concurrency
    cpu_threads(params.prefect.threads, n)
    bounded = _grid_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=n))
    return bounded(params_path, n, deployment, build_report, return_state=return_state)


def cpu_threads(threads: int | None, concurrency: int) -> int:
    """Share the CPU between the units that run here at once: torch's intra-op threads (one pool
    for the process) set to `threads`, by default the cores over `concurrency`. Small models use
    two threads poorly, so two units of one thread each finish more cells per hour than one unit
    of two (benchmarks/concurrency.py, reports/benchmarks/concurrency.md)."""
    import os

    import torch

    n = threads or max(1, len(os.sched_getaffinity(0)) // concurrency)  # the cores this process may use
    torch.set_num_threads(n)
    return n
