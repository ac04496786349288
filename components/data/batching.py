"""Splits in memory and length-bucketed, padded batches.

A token split is held as one flat array of token ids plus row offsets. Training batches group
sequences of similar length (sort inside chunks of `chunk` batches, then shuffle the batch
order), so each batch is padded only to its own maximum. All randomness comes from a
generator built from (seed, epoch), so the same seed gives the same batch order.
A bit split (FPT's bit tasks) holds fixed-length rows of patch vectors and per-bit targets; it
batches through the same streams (every row has the same length, so nothing is padded).

Legend: B batch, L length (tokens), P patch (values per token), R rows of a split.
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

    def majority(self) -> float:
        """The most common label's share of the rows (the accuracy of always guessing it)."""
        return float(np.bincount(self.labels).max() / len(self.labels))


@dataclass(frozen=True)
class BitSplit:
    """Rows of a bit task cut into tokens: each input row of n_bits values becomes n_bits / P
    tokens of P values, rows after rows, so the last n_bits / P tokens are the query row."""

    inputs: np.ndarray  # (R, L, P) int8 in {-1, 0, +1} (bit XOR: {0, 1})
    targets: np.ndarray  # (R, n_bits) int8 in {0, 1}, one class per output bit

    @classmethod
    def from_rows(cls, inputs: np.ndarray, targets: np.ndarray, patch: int) -> "BitSplit":
        """inputs (R, T) with T = rows x n_bits values (row-major), targets (R, n_bits)."""
        return cls(inputs.reshape(len(inputs), -1, patch), targets)  # (R, L, P): P divides n_bits

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def lengths(self) -> np.ndarray:
        return np.full(len(self), self.inputs.shape[1])  # (R,)

    def subset(self, rows: np.ndarray) -> "BitSplit":
        rows = np.asarray(rows)
        return BitSplit(self.inputs[rows], self.targets[rows])

    def batch(self, rows: np.ndarray, pad_id: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """inputs (B, L, P) float32, mask (B, L) bool (all True: nothing is padded), targets (B, n_bits)
        int64; `pad_id` is unused (the signature is TokenSplit's, so both feed the same streams)."""
        x = torch.from_numpy(self.inputs[rows].astype(np.float32))  # (B, L, P)
        mask = torch.ones(x.shape[:2], dtype=torch.bool)  # (B, L)
        return x, mask, torch.from_numpy(self.targets[rows].astype(np.int64))  # ..., (B, n_bits)

    def majority(self) -> float:
        """The most common bit value's share of every target bit (about 0.5: chance per bit)."""
        return float(np.bincount(self.targets.ravel(), minlength=2).max() / self.targets.size)


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
