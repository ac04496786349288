"""scikit-learn's handwritten digits (UCI optdigits test set, 1,797 8x8 images with 17 gray levels),
bundled inside the scikit-learn wheel that MLflow installs: real data that loads offline.

Rows are pixels (64,) uint8 in 0..16, row-major; a seeded permutation (np.random.default_rng(seed))
puts the first `n_test` images in test, the next `n_val` in val and the rest (the first `n_train`
of them, if set) in train.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from components.config import DigitsCfg

SIDE, LEVELS, N_CLASSES = 8, 17, 10


def _load() -> tuple[np.ndarray, np.ndarray]:
    """(pixels (1797, 64) uint8, labels (1797,) int64) from the bundled file."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.uint8), bunch.target.astype(np.int64)


def generate(cfg: DigitsCfg) -> dict[str, pd.DataFrame]:
    pixels, labels = _load()
    if len(labels) != cfg.IMAGES:
        raise ValueError(f"scikit-learn's bundled digits have {len(labels)} images, not {cfg.IMAGES}")
    order = np.random.default_rng(cfg.seed).permutation(len(labels))
    parts = {"test": order[: cfg.n_test], "val": order[cfg.n_test: cfg.n_test + cfg.n_val],
             "train": order[cfg.n_test + cfg.n_val:][: cfg.n_train]}
    return {split: pd.DataFrame({"input": list(pixels[np.sort(rows)]), "label": labels[np.sort(rows)]})
            for split, rows in (("train", parts["train"]), ("val", parts["val"]), ("test", parts["test"]))}


def meta(cfg: DigitsCfg) -> dict:
    pixels, labels = _load()
    content = hashlib.sha256(pixels.tobytes() + labels.tobytes()).hexdigest()
    return {"kind": "pixels", "shape": [SIDE, SIDE, 1], "levels": LEVELS, "n_classes": N_CLASSES,
            "source": {"generator": "digits", "bundled_sha256": content, **cfg.model_dump(exclude={"source"})}}
