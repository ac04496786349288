"""The dataset contract on disk: data/<task>/{train,val,test}.parquet + meta.json.

Columns: `input` (list<int16> token ids) and `label` (int64). Files are written with an explicit
schema and no timestamps, so the same frame gives the same bytes (stable DVC hashes).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([("input", pa.list_(pa.int16())), ("label", pa.int64())])


def write_split(df: pd.DataFrame, path: Path) -> None:
    missing = {"input", "label"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    table = pa.Table.from_pandas(df[["input", "label"]], schema=SCHEMA, preserve_index=False)
    table = table.replace_schema_metadata(None)  # no pandas metadata: bytes depend on data only
    pq.write_table(table, path, compression="zstd", write_statistics=False)


def read_split(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (values (T,) int64, offsets (R+1,) int64, labels (R,) int64) for fast batching."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: dataset split missing; run `arena materialize` or `dvc repro`")
    table = pq.read_table(path)
    col = table.column("input").combine_chunks()
    values = col.values.to_numpy().astype(np.int64)
    offsets = col.offsets.to_numpy().astype(np.int64)
    labels = table.column("label").to_numpy().astype(np.int64)
    return values, offsets, labels
