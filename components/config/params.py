"""The root of params.yaml (`Params`), its cross-section checks, and loading it with one-line
errors that name the key."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import Field, ValidationError, model_validator

from components.config.archs import ArchCfg
from components.config.base import ConfigError, Frozen, plain_name
from components.config.grid import GridCfg
from components.config.tasks import UNTRAINABLE, TaskCfg
from components.config.training import INIT_KINDS, InitCfg, OptimCfg
from components.config.tuning import TuningCfg


class TrackingCfg(Frozen):
    experiment: str = Field("arena", min_length=1, pattern=r"\S")  # the MLflow experiment


class PrefectCfg(Frozen):
    """How the Prefect grid flow runs its units of work (a pretraining start and its fractions)."""

    concurrency: int = Field(1, ge=1)  # units at once: threads here, or runs on the work pool
    deployment: Optional[str] = None  # "arena-cell/<name>" (prefect.yaml) sends units to a work pool
    threads: Optional[int] = Field(None, ge=1)  # torch CPU threads while units run here; None: cores / concurrency


class Params(Frozen):
    tasks: dict[str, TaskCfg]
    archs: dict[str, ArchCfg]
    inits: dict[str, InitCfg] = {kind: InitCfg(kind=kind) for kind in INIT_KINDS}
    pretrain: OptimCfg
    finetune: OptimCfg
    grid: GridCfg
    tracking: TrackingCfg = TrackingCfg()
    prefect: PrefectCfg = PrefectCfg()
    tuning: TuningCfg = TuningCfg()
    profile: str = "custom"  # the profile last applied (`arena profile NAME`)
    profiles: dict[str, dict[str, Any]] = {}  # NAME: {dotted.key: value}; every profile sets the same keys
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = True  # bf16 autocast for training on CUDA (CPU always runs fp32)
    compile: bool = False  # torch.compile the model for training

    @model_validator(mode="after")
    def _references(self) -> "Params":
        for section in ("tasks", "archs", "inits"):
            for name in getattr(self, section):
                plain_name(name, section)
        for key, names, known in (
            ("grid.tasks", self.grid.tasks, self.tasks),
            ("grid.archs", self.grid.archs, self.archs),
            ("grid.inits", self.grid.inits, self.inits),
        ):
            for name in names:
                if name not in known:
                    raise ValueError(f"{key}: '{name}' is not defined (known: {sorted(known)})")
        for name in self.grid.tasks:
            if (kind := self.tasks[name].kind) in UNTRAINABLE:
                raise ValueError(f"grid.tasks: '{name}' ({kind}) cannot be trained yet: it needs {UNTRAINABLE[kind]}; "
                                 "it is still materialized from `tasks`")
        for phase in ("pretrain", "finetune"):
            cfg = getattr(self, phase)
            for arch in self.grid.archs:
                if arch not in cfg.lr:
                    raise ValueError(f"{phase}.lr: no learning rate for arch '{arch}'")
            for task in cfg.steps_by_task:
                if task not in self.tasks:
                    raise ValueError(f"{phase}.steps_by_task: '{task}' is not defined (known: {sorted(self.tasks)})")
            for arch in cfg.steps_by_arch:
                if arch not in self.archs:
                    raise ValueError(f"{phase}.steps_by_arch: '{arch}' is not defined (known: {sorted(self.archs)})")
            for task, by_arch in cfg.steps_by_task_arch.items():
                if task not in self.tasks:
                    raise ValueError(f"{phase}.steps_by_task_arch: '{task}' is not defined (known: {sorted(self.tasks)})")
                for arch in by_arch:
                    if arch not in self.archs:
                        raise ValueError(f"{phase}.steps_by_task_arch.{task}: '{arch}' is not defined "
                                         f"(known: {sorted(self.archs)})")
        if self.tuning.trials > 1 and self.tuning.seed in self.grid.seeds:
            raise ValueError(f"tuning.seed: {self.tuning.seed} is also in grid.seeds; trials train on their own "
                             "seed so that the reported seeds are fresh runs of the selected configuration")
        _check_profiles(self)
        for i, rule in enumerate(self.grid.exclude):
            for key, names, known in (("task", rule.task, self.tasks), ("arch", rule.arch, self.archs),
                                      ("init", rule.init, self.inits)):
                for name in names:
                    if name not in known:
                        raise ValueError(f"grid.exclude.{i}.{key}: '{name}' is not defined (known: {sorted(known)})")
            for f in rule.fraction:
                if f not in self.grid.fractions:
                    raise ValueError(f"grid.exclude.{i}.fraction: {f} is not one of grid.fractions {self.grid.fractions}")
            for seed in rule.seed:
                if seed not in self.grid.seeds:
                    raise ValueError(f"grid.exclude.{i}.seed: {seed} is not one of grid.seeds {self.grid.seeds}")
        return self


def lookup(tree: dict, dotted: str):
    """The value at `dotted` (a.b.c) in nested dicts; KeyError naming the first missing part."""
    node = tree
    for i, part in enumerate(dotted.split(".")):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(".".join(dotted.split(".")[: i + 1]))
        node = node[part]
    return node


def _check_profiles(params: "Params") -> None:
    if not params.profiles:
        return
    names = sorted(params.profiles)
    if params.profile not in params.profiles and params.profile != "custom":
        raise ValueError(f"profile: '{params.profile}' is not one of profiles ({', '.join(names)})")
    first = set(params.profiles[names[0]])
    dumped = params.model_dump()
    for name in names:
        keys = set(params.profiles[name])
        if keys != first:
            diff = sorted(keys ^ first)[0]
            raise ValueError(f"profiles.{name}: sets {'' if diff in keys else 'no '}'{diff}' unlike profiles.{names[0]}; "
                             "every profile sets the same keys, so switching back restores them")
        for key in sorted(keys):
            if key.split(".")[0] in ("profile", "profiles"):
                raise ValueError(f"profiles.{name}: '{key}' cannot be set by a profile")
            try:
                lookup(dumped, key)
            except KeyError as err:
                raise ValueError(f"profiles.{name}: '{key}' names no setting ('{err.args[0]}' is not defined)") from None


def _first_error(err: ValidationError, source: str) -> str:
    e = err.errors()[0]
    parts = [str(p) for p in e["loc"] if not str(p).startswith(("function-after", "tagged-union"))]
    if len(parts) > 2 and parts[0] in ("tasks", "archs"):
        del parts[2]  # pydantic puts the union's `kind` tag after the entry's name: drop it
    loc = ".".join(parts)
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {loc or '<root>'}: {msg}{more}"


def parse_params(raw: object, source: str = "params") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_first_error(err, source)) from None


class _StrictLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (plain YAML keeps the last, silently)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key '{key}' given twice (first on line "
                                  f"{seen[key] + 1}); YAML would keep the last silently")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> object:
    """The YAML in `path`; a syntax error or a duplicate key is one line with its line number."""
    try:
        return yaml.load(path.read_text(), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{path}: not valid YAML: {where}{err.problem or err.context}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    return parse_params(read_yaml(path), str(path))
