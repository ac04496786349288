"""Tune one arm (task, arch, init) within the declared budget: run its `tuning.trials` candidates
(components/tuning.py) on the tuning seed, each as one unit (components/stages/unit.py), score
each on validation data, select one by the recorded rule, and write
artifacts/tuning/<task>/<arch>/<init>/selection.json (scores, rule, run, settings hash) and
selected.json (what the cells run). No test row is read here: a trial's evaluation is its
validation record. The read side (which settings a cell runs) is components/selection.py.

With `tuning.trials: 1` nothing trains: the selection is the shared defaults. Each trial's runs
are MLflow children of the arm's `tune` run, tagged `trial`; the selection (rule, scores, values)
is logged on that run.
"""
from __future__ import annotations

from pathlib import Path

from components import paths, records, selection, tuning
from components.config import Params
from components.grid import Cell, arm_skip_reason, skip_reason, trial_cells
from components.records import CellRecord, Selection
from components.spec import CellSpec, resolve


def arm_units(params: Params, task: str, arch: str, init: str) -> list[list[CellSpec]]:
    """The arm's trials as units: each trial's cells, one per fraction (none without tuning or
    for a skipped arm)."""
    starts: dict[Cell, list[CellSpec]] = {}
    for c in trial_cells(params, task, arch, init):
        if skip_reason(params, c) is None:
            spec = resolve(params, c)
            starts.setdefault(spec.start, []).append(spec)
    return list(starts.values())


def write_selection(params: Params, task: str, arch: str, init: str, found: dict[Cell, CellRecord],
                    tune_run_id: str | None = None) -> Selection:
    """Select from the trials' records, write selection.json and selected.json, and log the
    selection on the arm's tune run when that run is new (`tune_run_id` given)."""
    starts_ran = tune_run_id is not None
    cfg, cands = params.tuning, tuning.candidates(params.tuning)
    settings = selection.settings_hash(params, task, arch, init)
    reason = arm_skip_reason(params, task, arch, init)
    by_trial = tuning.by_trial(found)
    if tune_run_id is None and (earlier := selection.load_selection(params, task, arch, init)) is not None:
        tune_run_id = earlier.tune_run_id  # a re-run that trained no trial: keep the link to the scores' run
    chosen = tuning.select(by_trial) if cfg.trials > 1 and reason is None else None
    finished = cfg.trials == 1 or chosen is not None
    sel = Selection(task=task, arch=arch, init=init, trials=cfg.trials, seed=cfg.seed, metric=cfg.metric,
                    rule=tuning.RULE if cfg.trials > 1 else tuning.NO_TUNING, candidates=cands,
                    scores={str(t): (s if (s := tuning.score(rs)) > float("-inf") else None)  # None: diverged/failed
                            for t, rs in sorted(by_trial.items())},
                    selected=chosen, values=cands[chosen] if chosen is not None else ({} if cfg.trials == 1 else None),
                    status="skipped" if reason else ("ok" if finished else "failed"),
                    reason=reason or ("" if finished else "no tuning trial finished"),
                    settings=settings, tune_run_id=tune_run_id)
    records.save(sel, paths.selection_path(task, arch, init))
    records.save(sel.selected_part(), paths.selected_path(task, arch, init))
    if tune_run_id and sel.status != "skipped" and starts_ran:
        from components import tracking

        t = tracking.resume_run(tune_run_id)
        t.log_params({"rule": sel.rule, "trials": cfg.trials, "space": {k: v.model_dump() for k, v in cfg.space.items()}})
        t.log_metrics({f"trial{t_}_score": s for t_, s in sel.scores.items() if s is not None})
        t.set_tags({"selected_trial": str(chosen), "selection": str(sel.values)})
        tracking.end_grid(tune_run_id, sel.status == "failed", {})
    return sel


def run(params: Params, task: str, arch: str, init: str, parent_run_id: str | None = None) -> Path:
    """Run every trial of the arm here, one unit after another, and select (`arena tune`, DVC)."""
    from components.stages.unit import run_unit

    units = arm_units(params, task, arch, init)
    found: dict[Cell, CellRecord] = {}
    tune_run = None
    if units:
        from components import tracking

        tracking.close_stale(params.tracking.experiment)  # an earlier tuning that was killed
        tune_run = tracking.start_grid(params.tracking.experiment, f"tune-{task}-{arch}-{init}",
                                       {"task": task, "arch": arch, "init": init, "trials": str(params.tuning.trials)},
                                       parent_run_id, stage="tune")
        try:
            for specs in units:
                for spec, record in zip(specs, run_unit(specs, tune_run).values()):
                    found[spec.cell] = record
        except BaseException as err:  # the arm's run ends KILLED (SIGTERM, Ctrl-C) or FAILED, never RUNNING
            tracking.abort(tune_run, err)
            raise
    write_selection(params, task, arch, init, found, tune_run)
    return paths.selection_path(task, arch, init)
