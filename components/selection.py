"""The read side of tuning: which settings a cell runs with, from its arm's selection
(artifacts/tuning/<task>/<arch>/<init>/selected.json), refused when that selection was made
under other tuning settings, training settings or code than now. The tune stage writes the
selection (components/stages/tune.py); everything else only reads it, through `choice`."""
from __future__ import annotations

from components import paths, records, tuning
from components.config import ConfigError, Params
from components.grid import Cell, trial_cells
from components.records import Choice, Selected, Selection


class ArmFailed(ConfigError):
    """No tuning trial of the arm finished: it has no configuration to run on the grid seeds."""


def settings_hash(params: Params, task: str, arch: str, init: str) -> str | None:
    """The config hashes of the arm's first trial, one per fraction: they change with every setting
    the trials ran under (task, arch, init, pretrain, finetune, fractions, code version), so a
    selection made under others is recognized as stale. None without trials."""
    from components.spec import resolve  # spec imports this module

    first = [c for c in trial_cells(params, task, arch, init) if c.trial == 0]
    return " ".join(resolve(params, c).config_hash for c in first) if first else None


def current(params: Params, sel: Selected) -> bool:
    """Whether `sel` was made under the present `tuning` settings (candidates, count, rule)."""
    rule = tuning.RULE if params.tuning.trials > 1 else tuning.NO_TUNING
    return sel.candidates == tuning.candidates(params.tuning) and sel.trials == params.tuning.trials \
        and sel.rule == rule


def load_selection(params: Params, task: str, arch: str, init: str) -> Selection | None:
    """The arm's full selection record when it is current (tuning and training settings, code),
    else None: a leftover from another budget or setting is not this grid's."""
    path = paths.selection_path(task, arch, init)
    if not path.exists():
        return None
    sel = records.load(Selection, path)
    if not current(params, sel) or sel.settings != settings_hash(params, task, arch, init):
        return None
    return sel


def selected(params: Params, task: str, arch: str, init: str) -> Selected:
    """What the arm selected; an error when it is missing or stale."""
    path = paths.selected_path(task, arch, init)
    if not path.exists():
        raise ConfigError(f"{path}: no tuning selection for this arm; run `arena tune --task {task} --arch {arch} "
                          f"--init {init}` (or `dvc repro`, or `arena grid`) first")
    sel = records.load(Selected, path)
    if not current(params, sel):
        raise ConfigError(f"{path}: selected under other tuning settings than params.yaml `tuning`; tune again")
    if load_selection(params, task, arch, init) is None:
        raise ConfigError(f"{path}: selected under other training settings or code than now; tune again")
    return sel


def defaults() -> Choice:
    return Choice(rule=tuning.NO_TUNING)


def of_trial(params: Params, trial: int) -> Choice:
    return Choice(trial=trial, values=tuning.candidates(params.tuning)[trial], rule="tuning trial")


def of_selection(sel: Selected) -> Choice:
    """A grid cell's choice from its arm's selection; ArmFailed when the arm has none."""
    if sel.status != "ok":
        raise ArmFailed(f"{sel.task}/{sel.arch}/{sel.init}: {sel.reason}")
    return Choice(trial=sel.selected, values=sel.values or {}, rule=sel.rule, metric=sel.metric, trials=sel.trials)


def choice(params: Params, cell: Cell) -> Choice:
    """How `cell`'s settings are chosen: a trial's own candidate, the arm's selection, or the
    defaults without tuning. Raises ArmFailed for an arm with no selection."""
    if params.tuning.trials == 1:
        return defaults()
    if cell.trial is not None:
        return of_trial(params, cell.trial)
    return of_selection(selected(params, cell.task, cell.arch, cell.init))
