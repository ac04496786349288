"""Helpers shared by the stages: device choice, seeds, and reading a task's splits."""
from __future__ import annotations

import hashlib
import os
from typing import Callable

import torch

from components import paths
from components.data.batching import TokenSplit
from components.atomic import read_json
from components.data.parquet import read_split


def resolve_device(setting: str) -> torch.device:
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: 'cuda' requested but torch.cuda.is_available() is False")
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(setting)
    if device.type == "cuda":
        # same seed, same metrics on GPU too: deterministic kernels where PyTorch has them
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return device


def derive_seed(seed: int, purpose: str) -> int:
    """A stable 63-bit seed for one purpose (init, head, data order, masking) of one cell seed."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def load_meta(task: str) -> dict:
    return read_json(paths.meta_path(task))


def load_split(task: str, split: str) -> TokenSplit:
    return TokenSplit(*read_split(paths.split_path(task, split)))


def progress(label: str, log: Callable[[dict[str, float], int], None]) -> Callable[[dict[str, float], int], None]:
    """Wrap a metrics logger so validation results also print one line to the console."""

    def both(metrics: dict[str, float], step: int) -> None:
        log(metrics, step)
        if "val_score" in metrics:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k != "val_score")
            print(f"[{label}] step {step}: {shown}", flush=True)

    return both
