"""Helpers shared by the stages: device choice, seeds, reading a task's splits and the model inputs
and head they call for, resume files."""
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
from components.data.batching import BitSplit, TokenSplit, train_stream
from components.data.contract import DataError
from components.data.parquet import read_bits, read_split
from components.grid import Cell
from components.models import BitClassifier, Classifier
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
    """The task's meta.json as a model sees it: token ids (pixel tasks: one token per intensity),
    or for bit tasks patch vectors of `patch_size` values."""
    meta = records.load(DataMeta, paths.meta_path(task))
    if meta.kind != "bits":
        return meta.as_tokens()
    if meta.patch_size is None:  # materialized before bit tasks were trainable
        raise DataError(f"{paths.meta_path(task)}: no patch_size; run `arena materialize --task {task}` "
                        "(or `dvc repro`) to rebuild it")
    return meta


def backbone_inputs(meta: DataMeta) -> dict:
    """build_backbone's input keywords for the task: its token vocabulary and padding id, or for
    bit tasks the width of a patch (a linear input projection instead of a token table)."""
    if meta.kind == "bits":
        return {"vocab_size": None, "pad_id": None, "input_dim": meta.patch_size}
    return {"vocab_size": len(meta.vocab), "pad_id": meta.pad_id}


def head_for(meta: DataMeta) -> tuple[type, int]:
    """The finetuning head and its output size: two logits per target bit read from the query
    row's tokens (bit tasks), else pooled logits over the task's classes."""
    return (BitClassifier, meta.target_bits) if meta.kind == "bits" else (Classifier, meta.n_classes)


def load_split(task: str, split: str, max_length: int | None = None) -> TokenSplit | BitSplit:
    """A split as token ids (bit tasks: patch vectors), every row checked: the file is the one
    meta.json fingerprints, it has rows, each row has tokens (at most `max_length`: the model's
    positions), and every label and token id is in range. A DataError names the file, row and
    column otherwise."""
    path, meta = paths.split_path(task, split), records.load(DataMeta, paths.meta_path(task))
    verify_fingerprint(meta, split)
    if meta.kind == "bits":
        return _bit_split(path, load_meta(task), split, max_length)
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


def _bit_split(path: Path, meta: DataMeta, split: str, max_length: int | None) -> BitSplit:
    """A bits split as patch tokens: each input has meta `shape`'s values in {-1, 0, +1} and
    `target_bits` targets in {0, 1}, and its tokens fit the model's positions."""
    inputs, targets = read_bits(path)  # (R, T), (R, n_bits)
    if len(targets) == 0:
        raise DataError(f"{path}: the {split} split has no rows")
    for name, got, want, allowed in (("input", inputs, int(np.prod(meta.shape)), (-1, 0, 1)),
                                     ("target", targets, meta.target_bits, (0, 1))):
        if got.shape[1] != want:
            raise DataError(f"{path}: row 0, column '{name}': {got.shape[1]} values, meta.json gives {want}")
        if (bad := np.argwhere(~np.isin(got, allowed))).size:
            row, col = map(int, bad[0])
            raise DataError(f"{path}: row {row}, column '{name}': {int(got[row, col])} is not one of {list(allowed)}")
    tokens = inputs.shape[1] // meta.patch_size
    if max_length is not None and tokens > max_length:
        raise DataError(f"{path}: row 0, column 'input': {tokens} tokens of {meta.patch_size} bits, more than the "
                        f"model's {max_length} positions")
    return BitSplit.from_rows(inputs, targets, meta.patch_size)


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
