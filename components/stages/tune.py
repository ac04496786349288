"""Tune one arm (task, arch, init) within the declared budget: run its `tuning.trials` candidates
(components/tuning.py) on the tuning seed, score each on validation data, select one by the
recorded rule, and write artifacts/tuning/<task>/<arch>/<init>/selection.json (scores, rule, run)
and selected.json (what the cells run). The arm's grid cells then run the selected settings on
every grid seed (`resolve`). No test row is read here:
a trial's evaluation is its validation record (stages/evaluate.py).

With `tuning.trials: 1` nothing trains: the selection is the shared defaults. Each trial's runs
are MLflow children of the arm's `tune` run, tagged `trial`; the selection (rule, scores, values)
is logged on that run.
"""
from __future__ import annotations

from pathlib import Path

from components import paths, tuning
from components.atomic import read_json, write_json
from components.config import ConfigError, Params
from components.grid import Cell, config_hash, skip_reason, trial_cells


class ArmFailed(ConfigError):
    """No tuning trial of the arm finished: it has no configuration to run on the grid seeds."""


# what the grid cells run (selected.json); scores, run ids and the settings hash stay in selection.json,
# so re-tuning to the same choice, under whatever settings, leaves selected.json and the cells as they are
SELECTED = ("task", "arch", "init", "trials", "seed", "metric", "rule", "candidates", "selected", "values",
            "status", "reason")


def settings(params: Params, task: str, arch: str, init: str) -> str | None:
    """The config hashes of the arm's first trial, one per fraction: they change with every setting
    the trials ran under (task, arch, init, pretrain, finetune, fractions, code version), so a
    selection made under others is recognized as stale. None without trials."""
    first = [c for c in trial_cells(params, task, arch, init) if c.trial == 0]
    if not first:
        return None
    p = tuning.apply(params, arch, tuning.candidates(params.tuning)[0])
    return " ".join(config_hash(p, c) for c in first)


def choice(params: Params, cell: Cell) -> dict:
    """How `cell`'s settings were chosen: {trial, values, rule, ...}; a trial's own candidate, the
    arm's selection, or the defaults without tuning. Raises ArmFailed for an arm with no selection."""
    if params.tuning.trials == 1:
        return {"trial": None, "values": {}, "rule": tuning.NO_TUNING}
    if cell.trial is not None:
        return {"trial": cell.trial, "values": tuning.candidates(params.tuning)[cell.trial], "rule": "tuning trial"}
    sel = selection(params, cell.task, cell.arch, cell.init)
    if sel["status"] != "ok":
        raise ArmFailed(f"{cell.task}/{cell.arch}/{cell.init}: {sel['reason']}")
    return {"trial": sel["selected"], "values": sel["values"], "rule": sel["rule"], "metric": sel["metric"],
            "trials": sel["trials"]}


def values(params: Params, cell: Cell) -> dict[str, float]:
    """The tuned values `cell` runs with ({}: the defaults)."""
    return choice(params, cell)["values"]


def resolve(params: Params, cell: Cell) -> Params:
    """The settings `cell` runs with (see `values`)."""
    return tuning.apply(params, cell.arch, values(params, cell))


def selection(params: Params, task: str, arch: str, init: str) -> dict:
    """What the arm selected (selected.json); an error when it is missing or was made under other
    tuning settings."""
    path = paths.selected_path(task, arch, init)
    if not path.exists():
        raise ConfigError(f"{path}: no tuning selection for this arm; run `arena tune --task {task} --arch {arch} "
                          f"--init {init}` (or `dvc repro`, or `arena grid`) first")
    sel = read_json(path)
    if sel.get("candidates") != tuning.candidates(params.tuning) or sel.get("trials") != params.tuning.trials \
            or sel.get("rule") != tuning.RULE:
        raise ConfigError(f"{path}: selected under other tuning settings than params.yaml `tuning`; tune again")
    full = paths.selection_path(task, arch, init)
    if not full.exists() or read_json(full).get("settings") != settings(params, task, arch, init):
        raise ConfigError(f"{path}: selected under other training settings or code than now; tune again")
    return sel


def arm_cells(params: Params, task: str, arch: str, init: str) -> dict[Cell, list[float]]:
    """The arm's trial starts with their fractions (empty without tuning or for a skipped arm)."""
    starts: dict[Cell, list[float]] = {}
    for c in trial_cells(params, task, arch, init):
        if skip_reason(params, c) is None:
            starts.setdefault(c.start, []).append(c.fraction)
    return starts


def write_selection(params: Params, task: str, arch: str, init: str, records: dict[Cell, dict],
                    tune_run_id: str | None = None) -> dict:
    """Select from the trials' records, write selection.json, and log it on the arm's tune run
    when that run is new (`tune_run_id` given)."""
    starts_ran = tune_run_id is not None
    cfg, cands = params.tuning, tuning.candidates(params.tuning)
    reason = skip_reason(params, Cell(task, arch, init, cfg.seed))
    by_trial = tuning.by_trial(records)
    path = paths.selection_path(task, arch, init)
    if tune_run_id is None and path.exists():  # a re-run that trained no trial: keep the link to the scores' run
        earlier = read_json(path)
        if earlier.get("candidates") == cands and earlier.get("trials") == cfg.trials \
                and earlier.get("settings") == settings(params, task, arch, init):
            tune_run_id = earlier.get("tune_run_id")
    chosen = tuning.select(by_trial) if cfg.trials > 1 and reason is None else None
    sel = {"task": task, "arch": arch, "init": init, "trials": cfg.trials, "seed": cfg.seed, "metric": cfg.metric,
           "rule": tuning.RULE if cfg.trials > 1 else tuning.NO_TUNING, "candidates": cands,
           "scores": {str(t): (s if (s := tuning.score(rs)) > float("-inf") else None)  # None: diverged or failed
                      for t, rs in sorted(by_trial.items())},
           "selected": chosen, "values": cands[chosen] if chosen is not None else ({} if cfg.trials == 1 else None),
           "status": "skipped" if reason else ("ok" if cfg.trials == 1 or chosen is not None else "failed"),
           "reason": reason or ("" if cfg.trials == 1 or chosen is not None else "no tuning trial finished"),
           "settings": settings(params, task, arch, init), "tune_run_id": tune_run_id}
    write_json(sel, path)
    write_json({k: sel[k] for k in SELECTED}, paths.selected_path(task, arch, init))
    if tune_run_id and sel["status"] != "skipped" and starts_ran:
        from components import tracking

        t = tracking.resume_run(tune_run_id)
        t.log_params({"rule": sel["rule"], "trials": cfg.trials, "space": {k: v.model_dump() for k, v in cfg.space.items()}})
        t.log_metrics({f"trial{t_}_score": s for t_, s in sel["scores"].items() if s is not None})
        t.set_tags({"selected_trial": str(chosen), "selection": str(sel["values"])})
        tracking.end_grid(tune_run_id, sel["status"] == "failed", {})
    return sel


def run(params: Params, task: str, arch: str, init: str, parent_run_id: str | None = None) -> Path:
    """Run every trial of the arm here, one after another, and select (what `arena tune` and DVC run)."""
    starts = arm_cells(params, task, arch, init)
    records: dict[Cell, dict] = {}
    tune_run = None
    if starts:
        from components import tracking
        from components.stages import evaluate, finetune, pretrain

        tune_run = tracking.start_grid(params.tracking.experiment, f"tune-{task}-{arch}-{init}",
                                       {"task": task, "arch": arch, "init": init, "trials": str(params.tuning.trials)},
                                       parent_run_id, stage="tune")
        for start, fractions in starts.items():
            p = resolve(params, start)
            pretrain.run(p, start, tune_run)
            for f in fractions:
                finetune.run(p, start.at(f), tune_run)
                records[start.at(f)] = read_json(evaluate.run(p, start.at(f)))
    write_selection(params, task, arch, init, records, tune_run)
    return paths.selection_path(task, arch, init)
