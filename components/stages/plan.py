"""What a grid launch will do: for every cell, run it, take its result from the shared record
(an MLflow run under the same config hash and data), or skip it by the grid's rules. Each cell
is resolved once here (components/spec.py); the flows fan the planned specs out as units. Used by
`arena grid --dry-run` and by the grid flow."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from components import paths, records, selection, tracking, tuning
from components.config import Params
from components.grid import Cell, arms, cells, trial_cells
from components.records import CellRecord, Choice, DataMeta
from components.spec import CellSpec, resolve


@dataclass
class Plan:
    run: list[CellSpec] = field(default_factory=list)
    done: dict[Cell, CellRecord] = field(default_factory=dict)  # cell -> its recorded result
    skipped: dict[Cell, str] = field(default_factory=dict)  # cell -> why
    blocked: dict[Cell, str] = field(default_factory=dict)  # cell -> why its arm has no configuration to run

    def units(self) -> list[list[CellSpec]]:
        """The cells to run as units of work: one per pretraining start, with its label fractions."""
        units: dict[Cell, list[CellSpec]] = {}
        for s in self.run:
            units.setdefault(s.start, []).append(s)
        return list(units.values())


def _local_data_sha(task: str) -> str | None:
    """The fingerprint of this machine's training data (None: it has none), checked against the
    files' bytes: a split edited in place stops the plan with one line, never passes as recorded."""
    from components.stages.common import verify_fingerprint

    path = paths.meta_path(task)
    if not path.exists():
        return None
    meta = records.load(DataMeta, path)
    for split in paths.SPLITS:
        verify_fingerprint(meta, split)
    return meta.sha256["train"]


def _matches(found: dict | None, local_sha: str | None) -> bool:
    """A recorded result counts where this machine has no data, or the same data."""
    return found is not None and (local_sha is None or found["data_sha256"] in ("", local_sha))


def all_trials(params: Params) -> list[Cell]:
    return [c for arm in arms(params) for c in trial_cells(params, *arm)]


def make(params: Params, todo: list[Cell] | None = None, recorded: dict | None = None,
         choice: Callable[[Cell], Optional[Choice]] = lambda c: None) -> Plan:
    """Plan `todo` (default: the grid's cells); `choice(cell)` may supply a cell's choice (None:
    resolve reads it)."""
    plan = Plan()
    recorded = tracking.recorded(params.tracking.experiment) if recorded is None else recorded
    for c in cells(params) if todo is None else todo:
        spec = resolve(params, c, choice(c))
        if spec.skip:
            plan.skipped[c] = spec.skip
        elif spec.blocked:
            plan.blocked[c] = spec.blocked
        elif _matches(recorded.get(spec.config_hash), _local_data_sha(c.task)):
            plan.done[c] = recorded[spec.config_hash]["record"]
        else:
            plan.run.append(spec)
    return plan


def describe(params: Params) -> str:
    """What `arena grid` would do now: each trial and each cell, run / done / skip / fail."""
    recorded = tracking.recorded(params.tracking.experiment)
    trial_list = all_trials(params)
    trials = make(params, trial_list, recorded)
    lines = _lines(trials, trial_list)
    pending = {(s.cell.task, s.cell.arch, s.cell.init) for s in trials.run}
    chosen: dict[tuple, Choice | None] = {}  # arms whose trials are all recorded: their choice, computed here
    for arm in arms(params):
        if params.tuning.trials > 1 and arm not in pending:
            t = tuning.select(tuning.by_trial({c: r for c, r in trials.done.items() if (c.task, c.arch, c.init) == arm}))
            chosen[arm] = selection.of_trial(params, t).model_copy(update={"rule": tuning.RULE}) if t is not None else None

    def arm_choice(c: Cell) -> Choice | None:
        return chosen[(c.task, c.arch, c.init)] if params.tuning.trials > 1 else None

    def skipped(c: Cell) -> str | None:
        return resolve(params, c, selection.defaults()).skip

    ready = [c for c in cells(params) if params.tuning.trials == 1 or (c.task, c.arch, c.init) in chosen]
    later = [c for c in cells(params) if c not in ready]
    failed = [c for c in ready if params.tuning.trials > 1 and chosen[(c.task, c.arch, c.init)] is None
              and not skipped(c)]
    grid = make(params, [c for c in ready if c not in failed], recorded,
                lambda c: arm_choice(c) or (selection.defaults() if params.tuning.trials > 1 else None))
    grid.blocked.update({c: "no tuning trial finished" for c in failed})
    lines += _lines(grid, ready)
    later_skipped = {c: reason for c in later if (reason := skipped(c))}
    lines += [f"skip  {c.name}  ({later_skipped[c]})" if c in later_skipped else f"run   {c.name}  (after its arm's tuning)"
              for c in later]
    if params.tuning.trials > 1:
        lines.append(f"tuning: {params.tuning.trials} trials per arm; {len(trials.run)} of {len(trials.run) + len(trials.done)} "
                     "trial runs to do")
    lines.append(f"{len(grid.run) + len(later) - len(later_skipped)} to run, {len(grid.done)} already recorded, "
                 f"{len(grid.skipped) + len(later_skipped)} skipped"
                 + (f", {len(grid.blocked)} without a configuration" if grid.blocked else "")
                 + f" (MLflow store: {tracking.tracking_uri()}, experiment '{params.tracking.experiment}')")
    return "\n".join(lines)


def _lines(plan: Plan, todo: list[Cell]) -> list[str]:
    to_run = {s.cell: s for s in plan.run}
    lines = []
    for c in todo:
        if c in plan.skipped:
            lines.append(f"skip  {c.name}  ({plan.skipped[c]})")
        elif c in plan.blocked:
            lines.append(f"fail  {c.name}  (tuning: {plan.blocked[c]})")
        elif c in plan.done:
            rec = plan.done[c]
            result = (f"test accuracy {100 * rec.test_accuracy:.2f}%" if rec.test_accuracy is not None
                      else f"val accuracy {100 * rec.val_accuracy:.2f}%" if rec.val_accuracy is not None
                      else rec.status)
            lines.append(f"done  {c.name}  ({result}; run {rec.run_id or '?'})")
        elif c in to_run:
            lines.append(f"run   {c.name}  (config {to_run[c].config_hash})")
    return lines
