"""ListOps with the LRA grammar (Nangia & Bowman 2018; LRA, Tay et al. 2021), seeded.

Follows `lra_benchmarks/data/listops.py`: an operator node at depth < max_depth with probability
0.25 (else a digit leaf), `randint(2, max_args)` children (inclusive), operators MIN, MAX, MED
(`int(np.median)`, so the floor of the mean of the two middle values) and SM (sum mod 10); a
tree is kept iff `min_length < length < max_length`, length counting tokens without parentheses;
duplicates are dropped. Unlike LRA, the draw and the split are seeded and deterministic.
Tokens are stored without parentheses, as LRA and S4 feed them to models.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from components.config import ListOpsCfg

PAD, MASK = "<pad>", "<mask>"
OPERATORS = ("[MAX", "[MIN", "[MED", "[SM")
CLOSE = "]"
DIGITS = tuple(str(d) for d in range(10))
VOCAB: tuple[str, ...] = (PAD, MASK, *OPERATORS, CLOSE, *DIGITS)
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
N_CLASSES = 10
VALUE_P = 0.25  # probability of an operator node (LRA: leaf iff r > 0.25)

_OP_IDS = [TOKEN_ID[o] for o in OPERATORS]
_DIGIT_IDS = [TOKEN_ID[d] for d in DIGITS]
_CLOSE_ID = TOKEN_ID[CLOSE]


def apply_op(op: str, args: list[int]) -> int:
    if op == "[MAX":
        return max(args)
    if op == "[MIN":
        return min(args)
    if op == "[MED":
        return int(np.median(args))
    if op == "[SM":
        return sum(args) % 10
    raise ValueError(f"unknown operator {op!r}")


class _Uniforms:
    """Uniform draws from a seeded generator, fetched in blocks (one numpy call per 64k draws)."""

    def __init__(self, rng: np.random.Generator, block: int = 1 << 16):
        self.rng, self.block = rng, block
        self.buf, self.i = rng.random(block), 0

    def __call__(self) -> float:
        if self.i == self.block:
            self.buf, self.i = self.rng.random(self.block), 0
        self.i += 1
        return float(self.buf[self.i - 1])


class _TooLong(Exception):
    pass


def _tree(u: _Uniforms, depth: int, cfg: ListOpsCfg, out: list[int]) -> int:
    """Append one subtree's token ids to `out` and return its value."""
    if depth < cfg.max_depth and u() <= VALUE_P:
        n_args = 2 + int(u() * (cfg.max_args - 1))  # uniform on 2..max_args
        op_pos = len(out)
        out.append(-1)  # operator is drawn after its children, as LRA does
        vals = [_tree(u, depth + 1, cfg, out) for _ in range(n_args)]
        op = int(u() * len(OPERATORS))
        out[op_pos] = _OP_IDS[op]
        out.append(_CLOSE_ID)
        if len(out) >= cfg.max_length:  # can only grow: reject early, the draw is independent
            raise _TooLong
        return apply_op(OPERATORS[op], vals)
    digit = int(u() * 10)
    out.append(_DIGIT_IDS[digit])
    return digit


def sample_expressions(cfg: ListOpsCfg, rng: np.random.Generator, n: int) -> list[tuple[tuple[int, ...], int]]:
    """Draw `n` distinct accepted expressions as (token ids, value), in draw order."""
    u, seen, rows = _Uniforms(rng), set(), []
    while len(rows) < n:
        out: list[int] = []
        try:
            value = _tree(u, 1, cfg, out)
        except _TooLong:
            continue
        key = tuple(out)
        if cfg.min_length < len(key) < cfg.max_length and key not in seen:
            seen.add(key)
            rows.append((key, value))
    return rows


def generate(cfg: ListOpsCfg) -> dict[str, pd.DataFrame]:
    """The three splits as DataFrames with columns `input` (token ids) and `label` (0-9)."""
    rng = np.random.default_rng(cfg.seed)
    counts = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}
    rows = sample_expressions(cfg, rng, sum(counts.values()))
    order = rng.permutation(len(rows))
    splits, start = {}, 0
    for split, n in counts.items():
        idx = order[start : start + n]
        start += n
        splits[split] = pd.DataFrame(
            {
                "input": [np.asarray(rows[i][0], dtype=np.int16) for i in idx],
                "label": np.asarray([rows[i][1] for i in idx], dtype=np.int64),
            }
        )
    return splits


def meta(cfg: ListOpsCfg) -> dict:
    return {"kind": "tokens", "vocab": list(VOCAB), "pad_id": TOKEN_ID[PAD], "mask_id": TOKEN_ID[MASK],
            "n_classes": N_CLASSES, "source": {"generator": "listops", **cfg.model_dump(exclude={"source"})}}
