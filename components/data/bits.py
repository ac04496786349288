"""FPT's synthetic bit tasks (Lu et al. 2021, `kzl/universal-computation` datasets), seeded.

Bit memory: `n_patterns` random strings in {-1, +1}, then a copy of one of them (the query) with
each bit zeroed with probability `mask_prob`; input (n_patterns + 1, n_bits), target the query
pattern's bits as classes (-1 -> 0, +1 -> 1). Copying the visible bits and guessing the rest
scores about 75% at mask_prob 0.5, so that is the baseline to beat, not 50%.
Bit XOR: two random strings in {0, 1}; input (2, n_bits), target their element-wise XOR.
FPT draws a fresh batch every step; here each split is drawn once (from its own stream of the
seed) so every arm trains and is tested on the same rows. With 5-bit XOR only 1,024 inputs
exist, so splits necessarily share inputs, as FPT's fresh draws do. Models read each row in
tokens of `patch_size` values (meta `patch_size`), the last row's tokens giving the output bits.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from components.config import BitMemoryCfg, BitXORCfg

SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}


def _sizes(cfg) -> dict[str, int]:
    return {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}


def _frame(inputs: np.ndarray, targets: np.ndarray) -> pd.DataFrame:
    """inputs (N, R, n) and targets (N, n) as rows of flattened int8 lists."""
    flat = inputs.reshape(len(inputs), -1).astype(np.int8)
    return pd.DataFrame({"input": list(flat), "target": list(targets.astype(np.int8))})


def memory_rows(cfg: BitMemoryCfg, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (n, P + 1, bits) in {-1, 0, +1}, targets (n, bits) in {0, 1})."""
    patterns = rng.integers(0, 2, (n, cfg.n_patterns, cfg.n_bits), dtype=np.int8) * 2 - 1  # (n, P, bits)
    query = rng.integers(0, cfg.n_patterns, n)  # (n,)
    chosen = patterns[np.arange(n), query]  # (n, bits)
    kept = rng.random((n, cfg.n_bits)) >= cfg.mask_prob  # (n, bits)
    inputs = np.concatenate([patterns, (chosen * kept)[:, None, :]], axis=1)  # (n, P + 1, bits)
    return inputs, (chosen > 0).astype(np.int8)


def xor_rows(cfg: BitXORCfg, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (n, 2, bits) in {0, 1}, targets (n, bits) = a XOR b)."""
    inputs = rng.integers(0, 2, (n, 2, cfg.n_bits), dtype=np.int8)  # (n, 2, bits)
    return inputs, inputs[:, 0] ^ inputs[:, 1]


ROWS = {"bit_memory": memory_rows, "bit_xor": xor_rows}


def generate(cfg: BitMemoryCfg | BitXORCfg) -> dict[str, pd.DataFrame]:
    rows = ROWS[cfg.kind]
    return {split: _frame(*rows(cfg, n, np.random.default_rng([cfg.seed, SPLIT_STREAM[split]])))
            for split, n in _sizes(cfg).items()}


def meta(cfg: BitMemoryCfg | BitXORCfg) -> dict:
    n_rows = cfg.n_patterns + 1 if cfg.kind == "bit_memory" else 2
    return {"kind": "bits", "shape": [n_rows, cfg.n_bits], "target_bits": cfg.n_bits, "patch_size": cfg.patch_size,
            "n_classes": 2, "source": {"generator": cfg.kind, **cfg.model_dump(exclude={"source"})}}
