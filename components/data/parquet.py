"""The dataset contract on disk: data/<task>/{train,val,test}.parquet + meta.json.

One schema per kind of task (meta.json `kind`):
- tokens: `input` list<int16> token ids (meta `vocab` in id order), `label` int64
- pixels: `input` list<uint8> intensities, row-major (H, W, C) flattened (meta `shape`), `label` int64
- pairs:  `input` and `input2` list<int16> (two documents), `label` int64
- bits:   `input` list<int8> (meta `shape` per row), `target` list<int8> (one class per output bit)
Files are written with an explicit schema and no timestamps or pandas metadata, so the same
frame gives the same bytes (stable DVC hashes).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

KINDS = ("tokens", "pixels", "pairs", "bits")
SCHEMAS = {
    "tokens": pa.schema([("input", pa.list_(pa.int16())), ("label", pa.int64())]),
    "pixels": pa.schema([("input", pa.list_(pa.uint8())), ("label", pa.int64())]),
    "pairs": pa.schema([("input", pa.list_(pa.int16())), ("input2", pa.list_(pa.int16())), ("label", pa.int64())]),
    "bits": pa.schema([("input", pa.list_(pa.int8())), ("target", pa.list_(pa.int8()))]),
}


def write_split(df: pd.DataFrame, path: Path, kind: str = "tokens") -> None:
    schema = SCHEMAS[kind]
    missing = set(schema.names) - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    table = pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
    table = table.replace_schema_metadata(None)  # no pandas metadata: bytes depend on data only
    pq.write_table(table, path, compression="zstd", write_statistics=False)


def _table(path: Path) -> pa.Table:
    """The split's Parquet table; a missing file says how to make it, an unreadable one is a DataError."""
    from components.data.contract import DataError

    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: dataset split missing; run `arena materialize` or `dvc repro`")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0]})") from None


def read_split(path: Path, kind: str = "tokens", column: str = "input") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (values (T,) int64, offsets (R+1,) int64, labels (R,) int64) for fast batching.
    Every row is checked against the kind's schema: a missing column, another type, or a null
    input or label is a DataError naming the file, row and column."""
    from components.data.contract import DataError

    table = _table(path)
    expected = SCHEMAS[kind]
    for name in (column, "label"):
        if name not in table.column_names:
            raise DataError(f"{path}: column '{name}' is missing (has {', '.join(table.column_names)})")
        if not table.schema.field(name).type.equals(expected.field(name).type):
            raise DataError(f"{path}: column '{name}' is {table.schema.field(name).type}, expected "
                            f"{expected.field(name).type} ({kind} task)")
    col, labels = table.column(column).combine_chunks(), table.column("label").combine_chunks()
    for name, array in ((column, col), ("label", labels)):
        if array.null_count:
            row = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{path}: row {row}, column '{name}': null")
    if col.values.null_count:
        lengths = np.diff(col.offsets.to_numpy())
        at = int(np.flatnonzero(col.values.is_null().to_numpy(zero_copy_only=False))[0])
        row = int(np.searchsorted(np.cumsum(lengths), at, side="right"))
        raise DataError(f"{path}: row {row}, column '{column}': a null element")
    values = col.values.to_numpy().astype(np.int64)
    offsets = col.offsets.to_numpy().astype(np.int64)
    return values, offsets, labels.to_numpy().astype(np.int64)


def read_bits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A bits split as (inputs (R, T) int8, targets (R, n_bits) int8), T the values of one input
    (meta `shape` flattened). Every row must have the first row's lengths; a missing column,
    another type, a null or a ragged row is a DataError naming the file, row and column."""
    from components.data.contract import DataError

    table = _table(path)
    out = []
    for name in ("input", "target"):
        if name not in table.column_names:
            raise DataError(f"{path}: column '{name}' is missing (has {', '.join(table.column_names)})")
        if not table.schema.field(name).type.equals(SCHEMAS["bits"].field(name).type):
            raise DataError(f"{path}: column '{name}' is {table.schema.field(name).type}, expected "
                            f"{SCHEMAS['bits'].field(name).type} (bits task)")
        col = table.column(name).combine_chunks()
        if col.null_count:
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{path}: row {row}, column '{name}': null")
        offsets = col.offsets.to_numpy()
        if col.values.null_count:
            at = int(np.flatnonzero(col.values.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{path}: row {int(np.searchsorted(offsets, at, side='right')) - 1}, column '{name}': "
                            "a null element")
        lengths = np.diff(offsets)  # (R,)
        width = int(lengths[0]) if len(lengths) else 0
        if (ragged := np.flatnonzero(lengths != width)).size:
            raise DataError(f"{path}: row {int(ragged[0])}, column '{name}': {int(lengths[ragged[0]])} values, "
                            f"row 0 has {width}")
        out.append(col.values.to_numpy().astype(np.int8).reshape(len(lengths), width))  # (R, width)
    return out[0], out[1]
