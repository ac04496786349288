"""Token sequences in memory and length-bucketed, padded batches.

A split is held as one flat array of token ids plus row offsets. Training batches group
sequences of similar length (sort inside chunks of `chunk` batches, then shuffle the batch
order), so each batch is padded only to its own maximum. All randomness comes from a
generator built from (seed, epoch), so the same seed gives the same batch order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch


@dataclass(frozen=True)
class TokenSplit:
    values: np.ndarray  # (T,) int64, all rows' token ids concatenated
    offsets: np.ndarray  # (R+1,) int64
    labels: np.ndarray  # (R,) int64

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)  # (R,)

    def subset(self, rows: np.ndarray) -> "TokenSplit":
        rows = np.asarray(rows)
        lengths = self.lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        values = np.concatenate([self.values[self.offsets[r] : self.offsets[r + 1]] for r in rows])
        return TokenSplit(values, offsets, self.labels[rows])

    def batch(self, rows: np.ndarray, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows padded at the end: tokens (B, L) int64, mask (B, L) bool (True = real), labels (B,)."""
        lengths = self.lengths[rows]
        L = int(lengths.max())
        tokens = np.full((len(rows), L), pad_id, dtype=np.int64)  # (B, L)
        for b, r in enumerate(rows):
            tokens[b, : lengths[b]] = self.values[self.offsets[r] : self.offsets[r + 1]]
        mask = np.arange(L)[None, :] < lengths[:, None]  # (B, L)
        return torch.from_numpy(tokens), torch.from_numpy(mask), torch.from_numpy(self.labels[rows])


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int, chunk: int = 50) -> list[np.ndarray]:
    """One epoch of row-index batches, length-bucketed and shuffled (deterministic in seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    batches = []
    span = batch_size * chunk
    for start in range(0, len(perm), span):
        part = perm[start : start + span]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def train_stream(lengths: np.ndarray, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    """An endless sequence of training batches, epoch after epoch (an empty split has none: it
    would loop forever, so it is an error)."""
    if len(lengths) == 0:
        raise ValueError("no training rows: an empty split gives no batches")
    epoch = 0
    while True:
        yield from epoch_batches(lengths, batch_size, seed, epoch)
        epoch += 1


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Deterministic batches for evaluation, sorted by length to minimise padding."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
