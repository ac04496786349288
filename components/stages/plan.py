"""What a grid launch will do: for every cell, run it, take its result from the shared record
(an MLflow run under the same config hash and data), or skip it by the grid's rules. Used by
`arena grid --dry-run` and by the grid flow before it fans cells out."""
from __future__ import annotations

from dataclasses import dataclass, field

from components import paths, tracking
from components.atomic import read_json
from components.config import Params
from components.grid import Cell, cells, config_hash, skip_reason


@dataclass
class Plan:
    run: list[Cell] = field(default_factory=list)
    done: dict[Cell, dict] = field(default_factory=dict)  # cell -> its recorded metrics
    skipped: dict[Cell, str] = field(default_factory=dict)  # cell -> why

    def starts(self) -> dict[Cell, list[float]]:
        """The cells to run as units of work: one per pretraining start, with its label fractions."""
        units: dict[Cell, list[float]] = {}
        for c in self.run:
            units.setdefault(Cell(c.task, c.arch, c.init, c.seed), []).append(c.fraction)
        return units


def _local_data_sha(task: str) -> str | None:
    path = paths.meta_path(task)
    return read_json(path)["sha256"]["train"] if path.exists() else None


def make(params: Params) -> Plan:
    plan, recorded = Plan(), tracking.recorded(params.tracking.experiment)
    for c in cells(params):
        if reason := skip_reason(params, c):
            plan.skipped[c] = reason
            continue
        found = recorded.get(config_hash(params, c))
        local = _local_data_sha(c.task)  # where this machine has the data, the record must match it
        if found and (local is None or found["data_sha256"] in ("", local)):
            plan.done[c] = found["record"]
        else:
            plan.run.append(c)
    return plan


def describe(params: Params, plan: Plan) -> str:
    lines = []
    for c in cells(params):
        if c in plan.skipped:
            lines.append(f"skip  {c.name}  ({plan.skipped[c]})")
        elif c in plan.done:
            rec = plan.done[c]
            result = (f"test accuracy {100 * rec['test_accuracy']:.2f}%" if rec.get("test_accuracy") is not None
                      else rec.get("status", "recorded"))
            lines.append(f"done  {c.name}  ({result}; run {rec.get('run_id', '?')})")
        else:
            lines.append(f"run   {c.name}  (config {config_hash(params, c)})")
    lines.append(f"{len(plan.run)} to run, {len(plan.done)} already recorded, {len(plan.skipped)} skipped "
                 f"(MLflow store: {tracking.tracking_uri()}, experiment '{params.tracking.experiment}')")
    return "\n".join(lines)
