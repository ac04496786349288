"""Every artifact path in one place. dvc.yaml spells the same patterns with ${item.*}
(tests/test_dvc.py checks that the two agree). Paths are relative to the project root,
which is the working directory of every stage (DVC runs stages there; so do the flows)."""
from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "val", "test")


def data_dir(task: str) -> Path:
    return Path("data") / task


def split_path(task: str, split: str) -> Path:
    return data_dir(task) / f"{split}.parquet"


def meta_path(task: str) -> Path:
    return data_dir(task) / "meta.json"


def init_dir(task: str, arch: str, init: str, seed: int) -> Path:
    """Starting weights of a cell: random (scratch) or the best self-pretraining checkpoint."""
    return Path("artifacts") / "init" / task / arch / init / f"seed{seed}"


def finetune_dir(task: str, arch: str, init: str, seed: int) -> Path:
    return Path("artifacts") / "finetune" / task / arch / init / f"seed{seed}"


def metrics_path(task: str, arch: str, init: str, seed: int) -> Path:
    return Path("metrics") / task / arch / init / f"seed{seed}.json"


def report_dir() -> Path:
    return Path("reports")
