"""What a grid launch will do: for every cell, run it, take its result from the shared record
(an MLflow run under the same config hash and data), or skip it by the grid's rules. Used by
`arena grid --dry-run` and by the grid flow before it fans cells out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from components import paths, tracking
from components.atomic import read_json
from components.config import Params
from components.stages.tune import ArmFailed
from components.grid import Cell, arms, cells, config_hash, skip_reason, trial_cells


@dataclass
class Plan:
    run: list[Cell] = field(default_factory=list)
    done: dict[Cell, dict] = field(default_factory=dict)  # cell -> its recorded metrics
    skipped: dict[Cell, str] = field(default_factory=dict)  # cell -> why
    blocked: dict[Cell, str] = field(default_factory=dict)  # cell -> why its arm has no configuration to run

    def starts(self) -> dict[Cell, list[float]]:
        """The cells to run as units of work: one per pretraining start, with its label fractions."""
        units: dict[Cell, list[float]] = {}
        for c in self.run:
            units.setdefault(c.start, []).append(c.fraction)
        return units


def _local_data_sha(task: str) -> str | None:
    path = paths.meta_path(task)
    return read_json(path)["sha256"]["train"] if path.exists() else None


def all_trials(params: Params) -> list[Cell]:
    return [c for arm in arms(params) for c in trial_cells(params, *arm)]


def make(params: Params, todo: list[Cell] | None = None, settings: Callable[[Cell], Params] | None = None,
         recorded: dict | None = None) -> Plan:
    """Plan `todo` (default: the grid's cells), each under `settings(cell)` (default: `params`)."""
    plan = Plan()
    recorded = tracking.recorded(params.tracking.experiment) if recorded is None else recorded
    for c in cells(params) if todo is None else todo:
        if reason := skip_reason(params, c):
            plan.skipped[c] = reason
            continue
        try:
            resolved = settings(c) if settings else params
        except ArmFailed as err:
            plan.blocked[c] = str(err)
            continue
        found = recorded.get(config_hash(resolved, c))
        local = _local_data_sha(c.task)  # where this machine has the data, the record must match it
        if found and (local is None or found["data_sha256"] in ("", local)):
            plan.done[c] = found["record"]
        else:
            plan.run.append(c)
    return plan


def describe(params: Params) -> str:
    """What `arena grid` would do now: each trial and each cell, run / done / skip / fail."""
    from components import tuning
    from components.stages import tune

    recorded = tracking.recorded(params.tracking.experiment)
    trial_list = all_trials(params)
    trials = make(params, trial_list, lambda c: tune.resolve(params, c), recorded)
    lines = _lines(trials, trial_list, lambda c: tune.resolve(params, c))
    pending = {(c.task, c.arch, c.init) for c in trials.run}
    chosen: dict[tuple, dict | None] = {}  # arms whose trials are all recorded: their selection, computed here
    for arm in arms(params):
        if params.tuning.trials > 1 and arm not in pending:
            t = tuning.select(tuning.by_trial({c: r for c, r in trials.done.items() if (c.task, c.arch, c.init) == arm}))
            chosen[arm] = tuning.candidates(params.tuning)[t] if t is not None else None

    def settings(c: Cell) -> Params:
        if params.tuning.trials == 1:
            return params
        if chosen[(c.task, c.arch, c.init)] is None:
            raise ArmFailed("no tuning trial finished")
        return tuning.apply(params, c.arch, chosen[(c.task, c.arch, c.init)])

    ready = [c for c in cells(params) if params.tuning.trials == 1 or (c.task, c.arch, c.init) in chosen
             or skip_reason(params, c)]
    later = [c for c in cells(params) if c not in ready]
    grid = make(params, ready, settings, recorded)
    lines += _lines(grid, ready, settings)
    lines += [f"run   {c.name}  (after its arm's tuning)" for c in later]
    if params.tuning.trials > 1:
        lines.append(f"tuning: {params.tuning.trials} trials per arm; {len(trials.run)} of {len(trials.run) + len(trials.done)} "
                     "trial runs to do")
    lines.append(f"{len(grid.run) + len(later)} to run, {len(grid.done)} already recorded, {len(grid.skipped)} skipped"
                 + (f", {len(grid.blocked)} without a configuration" if grid.blocked else "")
                 + f" (MLflow store: {tracking.tracking_uri()}, experiment '{params.tracking.experiment}')")
    return "\n".join(lines)


def _lines(plan: Plan, todo: list[Cell], settings) -> list[str]:
    lines = []
    for c in todo:
        if c in plan.skipped:
            lines.append(f"skip  {c.name}  ({plan.skipped[c]})")
        elif c in plan.blocked:
            lines.append(f"fail  {c.name}  (tuning: {plan.blocked[c]})")
        elif c in plan.done:
            rec = plan.done[c]
            result = (f"test accuracy {100 * rec['test_accuracy']:.2f}%" if rec.get("test_accuracy") is not None
                      else f"val accuracy {100 * rec['val_accuracy']:.2f}%" if rec.get("val_accuracy") is not None
                      else rec.get("status", "recorded"))
            lines.append(f"done  {c.name}  ({result}; run {rec.get('run_id', '?')})")
        else:
            lines.append(f"run   {c.name}  (config {config_hash(settings(c), c)})")
    return lines
