"""Cells that do not train: skipped by the grid's rules, blocked by a failed tuning, or
downstream of a stage that diverged or was skipped. Each stage still writes its record (DVC
expects every output, and the report says why a cell has no number). Cheap on purpose: no torch
import, so the CLI can use it."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from components import paths, records
from components.grid import Cell
from components.records import OK, CellRecord, InitInfo

if TYPE_CHECKING:
    from components.spec import CellSpec


def upstream(spec: "CellSpec", stage: str) -> Optional[tuple[str, str]]:
    """(status, reason) when `stage` of the cell must not train, else None."""
    if spec.skip:
        return "skipped", spec.skip
    if spec.blocked:  # counts as a failure of the arm
        return "failed", f"tuning: {spec.blocked}, so the arm has no configuration to run"
    cell = spec.cell
    before = {"finetune": (InitInfo, paths.init_dir(spec.start) / "info.json"),
              "evaluate": (CellRecord, paths.finetune_dir(cell) / "info.json")}.get(stage)
    if before is not None:
        info = records.load(*before)
        if info.status != OK:
            return info.status, info.reason
    return None


def write(stage: str, cell: Cell, status: str, reason: str, extra: Optional[dict] = None) -> Path:
    """The record of a cell that did not train at `stage`; `extra` keeps what it still knew."""
    identity = {**cell.tags(), "seed": cell.seed, "fraction": cell.fraction, "status": status, "reason": reason,
                **(extra or {})}
    if stage == "evaluate":
        return records.save(CellRecord(**identity), paths.metrics_path(cell))
    if stage == "pretrain":
        return records.save_in(InitInfo(**identity), paths.init_dir(cell))
    return records.save_in(CellRecord(**identity), paths.finetune_dir(cell))
