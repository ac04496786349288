"""Cells that do not train: skipped by the grid's rules, or downstream of a stage that diverged
or was skipped. Each stage still writes its record (DVC expects every output, and the report
says why a cell has no number). Cheap on purpose: no torch import, so the CLI can use it."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from components import paths
from components.atomic import atomic_dir, read_json, write_json
from components.config import Params
from components.grid import Cell, skip_reason

OK = "ok"


def upstream(params: Params, stage: str, cell: Cell) -> Optional[tuple[str, str]]:
    """(status, reason) when `stage` of `cell` must not train, else None."""
    reason = skip_reason(params, cell)
    if reason:
        return "skipped", reason
    if stage == "pretrain" and cell.trial is None and params.tuning.trials > 1:
        sel = paths.selected_path(cell.task, cell.arch, cell.init)
        if sel.exists() and read_json(sel).get("status") == "failed":  # counts as a failure of the arm
            return "failed", f"tuning: {read_json(sel)['reason']}, so the arm has no configuration to run"
    before = {"finetune": paths.init_dir(cell) / "info.json",
              "evaluate": paths.finetune_dir(cell) / "info.json"}.get(stage)
    if before is not None:
        info = read_json(before)
        if info.get("status", OK) != OK:
            return info["status"], info["reason"]
    return None


def write(stage: str, cell: Cell, status: str, reason: str, extra: Optional[dict] = None) -> Path:
    record = {**cell.tags(), "seed": cell.seed, "fraction": cell.fraction, "status": status, "reason": reason,
              **(extra or {})}
    if stage == "evaluate":
        out = paths.metrics_path(cell)
        write_json(record, out)
        return out
    out = paths.init_dir(cell) if stage == "pretrain" else paths.finetune_dir(cell)
    with atomic_dir(out) as tmp:
        write_json(record, tmp / "info.json")
    return out
