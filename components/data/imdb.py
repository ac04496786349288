"""LRA Text: IMDB reviews (Maas et al. 2011) from aclImdb_v1.tar.gz, byte-level as LRA's ByteTextEncoder.

LRA validates on the test set; here `cfg.n_val` training reviews, drawn by
np.random.default_rng(cfg.seed), are held out instead, so model selection never sees test data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from components.config import ImdbCfg
from components.data import text
from components.data.contract import Dataset, SourceError, files_record, require

WHAT = ("download the IMDB reviews (aclImdb_v1.tar.gz, ai.stanford.edu/~amaas/data/sentiment) "
        "and pass the folder that holds train/ and test/")
LABELS = {"neg": 0, "pos": 1}


def read_imdb(cfg: ImdbCfg, source: Path) -> Dataset:
    """{train,test}/{neg,pos}/*.txt (train/unsup is not read): rows in folder order neg, pos, files
    sorted by name; label pos = 1, neg = 0; UTF-8 bytes as tokens, cut to `cfg.max_length`.
    val = `cfg.n_val` train rows held out; train keeps the rest, both in file order."""
    root = require(Path(source), WHAT)
    files = {part: {label: sorted(require(root / part / label, WHAT).glob("*.txt")) for label in LABELS}
             for part in ("train", "test")}
    train, test = (_reviews(files[part], cfg.max_length) for part in ("train", "test"))
    if cfg.n_val >= len(train):
        raise SourceError(f"{root / 'train'}: {len(train)} reviews, too few to hold out n_val={cfg.n_val}")
    held = np.zeros(len(train), dtype=bool)
    held[np.random.default_rng(cfg.seed).permutation(len(train))[: cfg.n_val]] = True
    splits = {"train": train[~held].reset_index(drop=True), "val": train[held].reset_index(drop=True), "test": test}
    read = [f for part in files.values() for label_files in part.values() for f in label_files]
    meta = {"kind": "tokens", **text.meta(), "n_classes": len(LABELS), "source": files_record(root, read)}
    return Dataset(splits, meta)


def _reviews(files: dict[str, list[Path]], max_length: int) -> pd.DataFrame:
    inputs = [text.encode_bytes(f.read_bytes(), max_length) for label_files in files.values() for f in label_files]
    labels = [LABELS[label] for label, label_files in files.items() for _ in label_files]
    return pd.DataFrame({"input": inputs, "label": np.array(labels, dtype=np.int64)})
