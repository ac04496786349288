"""Helpers shared by the stages: device choice, seeds, reading a task's splits, resume files."""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from components import paths, records
from components.atomic import file_sha256
from components.data.batching import TokenSplit, train_stream
from components.data.contract import DataError
from components.data.parquet import read_split
from components.grid import Cell
from components.records import DataMeta
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


def load_meta(task: str) -> DataMeta:
    """The task's meta.json as a token model sees it (pixel tasks: one token per intensity)."""
    return records.load(DataMeta, paths.meta_path(task)).as_tokens()


def load_split(task: str, split: str, max_length: int | None = None) -> TokenSplit:
    """A split as token ids, every row checked: the file is the one meta.json fingerprints, it has
    rows, each row has tokens (at most `max_length`: the model's positions), and every label and
    token id is in range. A DataError names the file, row and column otherwise."""
    path, meta = paths.split_path(task, split), records.load(DataMeta, paths.meta_path(task))
    verify_fingerprint(meta, split)
    values, offsets, labels = read_split(path, meta.kind)
    if len(labels) == 0:
        raise DataError(f"{path}: the {split} split has no rows")
    if (empty := np.flatnonzero(np.diff(offsets) == 0)).size:
        raise DataError(f"{path}: row {int(empty[0])}, column 'input': an empty sequence")
    if max_length is not None and (long := np.flatnonzero(np.diff(offsets) > max_length)).size:
        raise DataError(f"{path}: row {int(long[0])}, column 'input': {int(np.diff(offsets)[long[0]])} tokens, more than "
                        f"the model's {max_length} positions")
    if (bad := np.flatnonzero((labels < 0) | (labels >= meta.n_classes))).size:
        raise DataError(f"{path}: row {int(bad[0])}, column 'label': {int(labels[bad[0]])} is outside the "
                        f"{meta.n_classes} classes of meta.json")
    tokens = meta.as_tokens()
    n_ids = meta.levels if meta.kind == "pixels" else len(tokens.vocab)
    if (bad := np.flatnonzero((values < 0) | (values >= n_ids))).size:
        row = int(np.searchsorted(offsets, bad[0], side="right") - 1)
        raise DataError(f"{path}: row {row}, column 'input': {int(values[bad[0]])} is outside the vocabulary "
                        f"({n_ids} {'levels' if meta.kind == 'pixels' else 'ids'} in meta.json)")
    offset = meta.token_offset
    return TokenSplit(values + offset if offset else values, offsets, labels)


def verify_fingerprint(meta: DataMeta, split: str) -> None:
    """The split's bytes must be the ones meta.json records (an edit in place is not this task)."""
    path = paths.split_path(meta.task, split)
    if path.exists() and file_sha256(path) != meta.sha256.get(split):
        raise DataError(f"{path}: its sha256 differs from data/{meta.task}/meta.json (edited after materializing?); "
                        f"run `arena materialize --task {meta.task}` (or `dvc repro`) to rebuild it")


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
