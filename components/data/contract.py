"""What every generator and reader returns: three splits in the kind's Parquet schema
(components/data/parquet.py) and the task's meta.json fields.

Meta fields by kind (materialize adds task, rows, length statistics and file checksums):
- every kind: `kind`, `n_classes`, `source` (generator settings, or the files read with their sha256)
- tokens, pairs: `vocab` (token strings in id order), `pad_id`, `mask_id`
- pixels: `shape` [H, W, C], `levels` (gray levels: 256, the digits 17)
- bits: `shape` [rows, n_bits] of one input, `target_bits` (bits of the last row), `patch_size` (values per
  model token; divides n_bits)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.atomic import file_sha256
from components.data.parquet import KINDS

SPLITS = ("train", "val", "test")
PAD, MASK = "<pad>", "<mask>"


class SourceError(ValueError):
    """Official files that are missing or malformed; the message is one line naming the file (and row)."""


class DataError(SourceError):
    """A materialized split or a checkpoint that cannot be used (edited, truncated or corrupt); one
    line naming the file, and the row and column where there is one."""


@dataclass
class Dataset:
    splits: dict[str, pd.DataFrame]  # train, val, test
    meta: dict

    def __post_init__(self) -> None:
        if tuple(self.splits) != SPLITS:
            raise ValueError(f"splits must be {SPLITS}, got {tuple(self.splits)}")
        if self.meta.get("kind") not in KINDS:
            raise ValueError(f"meta kind must be one of {KINDS}, got {self.meta.get('kind')!r}")


def require(path: Path, what: str) -> Path:
    """`path` if it exists, else a SourceError that says what to get and where to put it."""
    if not Path(path).exists():
        raise SourceError(f"{path}: not found; {what}")
    return Path(path)


def files_record(root: Path, files: list[Path]) -> dict:
    """meta `source` for a reader: the root it read and each file's sha256, keyed by relative path."""
    root = Path(root)
    return {"root": str(root.resolve()), "files": {str(Path(f).relative_to(root)): file_sha256(f) for f in sorted(files)}}
