"""The experiment grid: one cell per (task, architecture, initialization, seed)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from components.config import Params


@dataclass(frozen=True, order=True)
class Cell:
    task: str
    arch: str
    init: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.task}-{self.arch}-{self.init}-s{self.seed}"

    def tags(self) -> dict[str, str]:
        return {"task": self.task, "arch": self.arch, "init": self.init, "seed": str(self.seed)}


def cells(params: Params) -> list[Cell]:
    g = params.grid
    return [Cell(*c) for c in itertools.product(g.tasks, g.archs, g.inits, g.seeds)]
