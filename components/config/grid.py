"""`grid:` the product tasks x archs x inits x seeds x label fractions, minus `exclude`."""
from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from components.config.base import Frozen


class ExcludeRule(Frozen):
    """Cells to leave out of the grid product: every given field must match (like a CI matrix's exclude)."""

    task: list[str] = []
    arch: list[str] = []
    init: list[str] = []
    fraction: list[float] = []  # e.g. {task: listops, fraction: 0.1}: that task at full labels only
    seed: list[int] = []  # e.g. {arch: transformer, seed: [3, 4]}: more seeds only where the effect is small

    @model_validator(mode="before")
    @classmethod
    def _listify(cls, raw):
        if isinstance(raw, dict):
            return {k: [v] if isinstance(v, (str, float, int)) and not isinstance(v, bool) else v
                    for k, v in raw.items()}
        return raw

    def matches(self, task: str, arch: str, init: str, fraction: float, seed: int) -> bool:
        return all(not values or value in values for values, value in
                   ((self.task, task), (self.arch, arch), (self.init, init), (self.fraction, fraction),
                    (self.seed, seed)))


class GridCfg(Frozen):
    """The product tasks x archs x inits x seeds x fractions, minus `exclude`. `fractions` trains
    on nested subsets of the labelled training rows (self-pretraining on the same subset)."""

    tasks: list[str] = Field(min_length=1)
    archs: list[str] = Field(min_length=1)
    inits: list[str] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    fractions: list[float] = [1.0]
    exclude: list[ExcludeRule] = []

    @model_validator(mode="after")
    def _unique(self):
        for key in ("tasks", "archs", "inits", "seeds", "fractions"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise ValueError(f"{key} lists an entry twice: {values}")
        return self

    @field_validator("fractions", mode="before")
    @classmethod
    def _decimals(cls, raw):
        # paths carry the fraction as written; DVC renders 1 as "1" but Python as "1.0"
        for f in raw if isinstance(raw, list) else []:
            if not isinstance(f, float) or not 0 < f <= 1:
                raise ValueError(f"{f!r} must be a decimal in (0, 1], written with a point (1.0, not 1)")
        return raw

