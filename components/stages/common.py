"""Helpers shared by the stages: device choice, seeds, and reading a task's splits."""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from components import paths
from components.atomic import read_json
from components.config import ConfigError, OptimCfg, Params
from components.data.batching import TokenSplit, train_stream
from components.data.contract import MASK, PAD
from components.data.parquet import read_split
from components.grid import Cell
from components.training.loop import BatchesFrom


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


PIXEL_OFFSET = 2  # a pixel of intensity v is token v + 2; ids 0 and 1 are padding and mask


def load_meta(task: str) -> dict:
    """meta.json, with pixel tasks seen as LRA feeds them to Transformers: one token per intensity."""
    meta = read_json(paths.meta_path(task))
    if meta["kind"] == "pixels":
        meta = {**meta, "vocab": [PAD, MASK, *map(str, range(meta["levels"]))], "pad_id": 0, "mask_id": 1}
    elif meta["kind"] != "tokens":
        raise ConfigError(f"data/{task}: {meta['kind']} tasks cannot be trained yet (see config.UNTRAINABLE)")
    return meta


def load_split(task: str, split: str) -> TokenSplit:
    values, offsets, labels = read_split(paths.split_path(task, split))
    if read_json(paths.meta_path(task))["kind"] == "pixels":
        values = values + PIXEL_OFFSET
    return TokenSplit(values, offsets, labels)


def phase_steps(cfg: OptimCfg, arch: str, n_rows: int) -> int:
    """A phase's step budget: `steps_by_arch`, else `steps`, else `epochs` over `n_rows` rows."""
    if arch in cfg.steps_by_arch:
        return cfg.steps_by_arch[arch]
    return cfg.steps if cfg.steps is not None else math.ceil(cfg.epochs * n_rows / cfg.batch_size)


def budgets(params: Params, cell: Cell, n_train: int) -> tuple[int, int]:
    """(pretraining steps, finetuning steps) of a cell. A compute-tied init splits its
    `total_steps`; otherwise each phase has its own budget."""
    init = params.inits[cell.init]
    if init.total_steps is not None:
        pretrain = max(1, round(init.pretrain_share * init.total_steps))
        return pretrain, max(1, init.total_steps - pretrain)
    finetune = phase_steps(params.finetune, cell.arch, max(1, round(n_train * cell.fraction)))
    if init.kind not in ("masked_spt", "causal_spt"):
        return 0, finetune
    return phase_steps(params.pretrain, cell.arch, n_train), finetune


def label_rows(n: int, fraction: float, seed: int) -> np.ndarray:
    """The finetuning rows for a label fraction: a prefix of one fixed permutation, so the subsets
    of growing fractions are nested (as in the SPT paper's data-scale study)."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: max(1, round(fraction * n))])


def batches_from(split: TokenSplit, batch_size: int, seed: int, pad_id: int, device: torch.device) -> BatchesFrom:
    """Training batches from a given step on: the seeded epoch stream, skipped ahead by index only."""

    def start_at(step: int):
        for rows in itertools.islice(train_stream(split.lengths, batch_size, seed), step, None):
            yield tuple(t.to(device) for t in split.batch(rows, pad_id))

    return start_at


def resume_file(phase: str, cell: Cell, key: dict) -> Path:
    """Where a phase keeps its resume checkpoint. The name hashes everything that shapes the run
    (resolved settings, data fingerprint, seed), so a changed config never resumes a stale state;
    checkpoints of other configs of the same cell are removed."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = paths.resume_dir(phase, cell)
    if folder.exists():
        for old in folder.iterdir():
            if old.name != f"{digest}.pt":
                old.unlink()
    return folder / f"{digest}.pt"


def clear_resume(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)


def progress(label: str, log: Callable[[dict[str, float], int], None]) -> Callable[[dict[str, float], int], None]:
    """Wrap a metrics logger so validation results also print one line to the console."""

    def both(metrics: dict[str, float], step: int) -> None:
        log(metrics, step)
        if "val_score" in metrics:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k != "val_score")
            print(f"[{label}] step {step}: {shown}", flush=True)

    return both
