"""Every artifact path in one place. dvc.yaml spells the same patterns with ${item.*}
(tests/test_dvc.py checks that the two agree). Paths are relative to the project root,
which is the working directory of every stage (DVC runs stages there; so do the flows)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from components.grid import Cell

SPLITS = ("train", "val", "test")


def data_dir(task: str) -> Path:
    return Path("data") / task


def split_path(task: str, split: str) -> Path:
    return data_dir(task) / f"{split}.parquet"


def meta_path(task: str) -> Path:
    return data_dir(task) / "meta.json"


def card_paths(task: str) -> tuple[Path, Path]:
    """A task's data card and its figure."""
    return Path("reports") / "data" / f"{task}.md", Path("reports") / "data" / f"{task}.png"


def tuning_dir(task: str, arch: str, init: str) -> Path:
    """An arm's tuning: trial<t>/{init,frac<f>,frac<f>.json}, selection.json and selected.json (one DVC output)."""
    return Path("artifacts") / "tuning" / task / arch / init


def selection_path(task: str, arch: str, init: str) -> Path:
    """The arm's whole selection record: rule, every trial's score, the MLflow run, and a hash of the
    settings and code the trials ran under (stages/tune.py `settings`)."""
    return tuning_dir(task, arch, init) / "selection.json"


def selected_path(task: str, arch: str, init: str) -> Path:
    """What the arm's grid cells run: the selected values (no scores, run ids or settings hash, so
    re-tuning to the same choice leaves it, and the cells' DVC stages, unchanged)."""
    return tuning_dir(task, arch, init) / "selected.json"


def _trial(cell: Cell) -> Path:
    return tuning_dir(cell.task, cell.arch, cell.init) / f"trial{cell.trial}"


def init_dir(cell: Cell) -> Path:
    """Starting weights of a pretraining start (`CellSpec.start`): random, language-pretrained, or
    the best self-pretraining checkpoint. A start that self-pretrained on a label fraction's rows
    carries the fraction in its name."""
    suffix = "" if cell.fraction == 1.0 else f"-frac{cell.fraction}"
    if cell.trial is not None:
        return _trial(cell) / f"init{suffix}"
    return Path("artifacts") / "init" / cell.task / cell.arch / cell.init / f"seed{cell.seed}{suffix}"


def finetune_dir(cell: Cell) -> Path:
    if cell.trial is not None:
        return _trial(cell) / f"frac{cell.fraction}"
    return Path("artifacts") / "finetune" / cell.task / cell.arch / cell.init / f"seed{cell.seed}" / f"frac{cell.fraction}"


def metrics_path(cell: Cell) -> Path:
    """A cell's record; a trial's (validation only) lives with its arm's tuning."""
    if cell.trial is not None:
        return _trial(cell) / f"frac{cell.fraction}.json"
    return Path("metrics") / cell.task / cell.arch / cell.init / f"seed{cell.seed}" / f"frac{cell.fraction}.json"


def resume_dir(phase: str, cell: Cell) -> Path:
    """Periodic training state of an unfinished phase (outside DVC outputs, which DVC deletes
    before it runs a stage); removed when the phase completes."""
    trial = "" if cell.trial is None else f"trial{cell.trial}-"
    return (Path("artifacts") / "resume" / phase / cell.task / cell.arch / cell.init / f"{trial}seed{cell.seed}"
            / f"frac{cell.fraction}")


def lock_dir() -> Path:
    return Path("artifacts") / "locks"


def lock_path(cell: Cell) -> Path:
    """The lock a process holds while it runs this pretraining start (outside DVC outputs)."""
    trial = "" if cell.trial is None else f"trial{cell.trial}-"
    suffix = "" if cell.fraction == 1.0 else f"-frac{cell.fraction}"
    return lock_dir() / cell.task / cell.arch / cell.init / f"{trial}seed{cell.seed}{suffix}.lock"


def report_dir() -> Path:
    return Path("reports")
