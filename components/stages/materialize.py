"""Materialize a task: run its seeded generator and write data/<task>/{train,val,test}.parquet
plus meta.json (vocab, classes, generator params and seed, row counts, length statistics,
file checksums). The folder is built under a temp name and renamed into place at the end."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from components import paths
from components.config import ConfigError, Params
from components.data import listops
from components.atomic import atomic_dir, file_sha256, write_json
from components.data.parquet import write_split

GENERATORS = {"listops": (listops.generate, listops.meta)}


def run(params: Params, task: str) -> Path:
    if task not in params.tasks:
        raise ConfigError(f"tasks.{task}: not defined in params")
    cfg = params.tasks[task]
    generate, describe = GENERATORS[cfg.kind]
    splits = generate(cfg)
    out = paths.data_dir(task)
    with atomic_dir(out) as tmp:
        meta = describe(cfg)
        meta["rows"], meta["length"], meta["sha256"] = {}, {}, {}
        for split, df in splits.items():
            write_split(df, tmp / f"{split}.parquet")
            lengths = df["input"].map(len).to_numpy()
            meta["rows"][split] = len(df)
            meta["length"][split] = {"mean": round(float(lengths.mean()), 2), "min": int(lengths.min()),
                                     "max": int(lengths.max()),
                                     **{f"p{q}": float(np.percentile(lengths, q)) for q in (5, 50, 95)}}
            meta["sha256"][split] = file_sha256(tmp / f"{split}.parquet")
        write_json(meta, tmp / "meta.json")
    return out
