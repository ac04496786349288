"""The declared tuning budget: the candidates every arm tries, how a candidate changes the
settings, and the selection rule. Pure: no files, no MLflow (the tune stage does the I/O).

Candidates are the first `trials` points of a scrambled Sobol sequence seeded by `tuning.seed`,
over the space's keys in sorted order, so every (task, arch, init) arm sees the very same
points whatever its architecture (with `defaults_first`, trial 0 is the settings as written, {},
and the points follow). An arm that does not pretrain ignores the pretrain.* values.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from components.config import Params, TuningCfg

if TYPE_CHECKING:
    from components.grid import Cell
    from components.records import CellRecord

NO_TUNING = "defaults"


def candidates(cfg: TuningCfg) -> list[dict[str, float]]:
    """`cfg.trials` points {key: value}; one trial (no tuning) is the defaults: {}, and so is
    trial 0 with `defaults_first`."""
    if cfg.trials == 1:
        return [{}]
    import torch  # here only: resolving a skipped cell's settings stays free of torch

    keys = sorted(cfg.space)
    engine = torch.quasirandom.SobolEngine(len(keys), scramble=True, seed=cfg.seed)
    u = engine.draw(cfg.trials - cfg.defaults_first, dtype=torch.float64)  # (points, dims) in [0, 1)
    out = [{}] if cfg.defaults_first else []
    for row in u.tolist():
        point = {}
        for key, x in zip(keys, row):
            r = cfg.space[key]
            v = math.exp(math.log(r.low) + x * (math.log(r.high) - math.log(r.low))) if r.log else r.low + x * (r.high - r.low)
            point[key] = int(round(v)) if r.integer else float(f"{v:.4g}")  # 4 significant digits: readable, exact in JSON
        out.append(point)
    return out


def apply(params: Params, arch: str, values: dict[str, float]) -> Params:
    """`params` with a candidate's values: `<phase>.lr` sets that phase's lr for `arch`, any other
    `<phase>.<name>` the phase's field. Each phase is validated again, so a value that came through
    JSON (24.0 for 24) gets the field's type, and with it the same config hash everywhere."""
    phases: dict[str, dict] = {}
    for key, value in values.items():
        phase, _, name = key.partition(".")
        d = phases.setdefault(phase, getattr(params, phase).model_dump())
        if name == "lr":
            d["lr"] = {**d["lr"], arch: float(value)}
        else:
            d[name] = value
    if not phases:
        return params
    return params.model_copy(update={p: type(getattr(params, p)).model_validate(d) for p, d in phases.items()})


def score(records: list[CellRecord]) -> float:
    """A trial's score: its mean validation accuracy over the arm's label fractions; a trial with a
    fraction that diverged or failed scores -inf (it ranks last, and stays in the record)."""
    values = [r.val_accuracy for r in records]
    if not values or any(r.status != "ok" or v is None or v != v for r, v in zip(records, values)):
        return -math.inf
    return sum(values) / len(values)


RULE = "highest mean validation accuracy over the arm's label fractions; ties go to the lower trial number"


def by_trial(records: dict[Cell, CellRecord]) -> dict[int, list[CellRecord]]:
    """{trial: its records} from {trial cell: record} (cells carry `.trial`)."""
    out: dict[int, list[dict]] = {}
    for cell, record in records.items():
        out.setdefault(cell.trial, []).append(record)
    return out


def select(by_trial: dict[int, list[CellRecord]]) -> int | None:
    """The selected trial: best `score`, lowest trial number among equals; None if none finished."""
    ranked = sorted(by_trial, key=lambda t: (-score(by_trial[t]), t))
    return ranked[0] if ranked and score(by_trial[ranked[0]]) > -math.inf else None
