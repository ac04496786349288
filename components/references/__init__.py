"""The three papers' published numbers (SPT, LaS, FPT), with provenance and confidence.

`papers.csv` (next to this file) holds one row per published number; README.md here explains the
columns, how the papers' model names map onto our arch/init names, and which numbers are unverified.

    load()                       -> every row, validated (ValueError naming the row and column)
    lookup(task, arch, init)     -> the rows for one cell of our grid (None matches anything;
                                    metric= narrows to one metric)
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pandas as pd

PATH = Path(__file__).with_name("papers.csv")
COLUMNS = ["paper", "table", "task", "arch", "model", "init", "metric", "value", "setting", "confidence",
           "source_note"]
PAPERS = ("spt", "las", "fpt")
CONFIDENCE = ("verified", "likely", "unverified")
# metric -> allowed closed range of `value`
METRICS = {
    "accuracy_pct": (0.0, 100.0),        # test accuracy in percent, as printed
    "train_accuracy_pct": (0.0, 100.0),  # training accuracy in percent (SPT Appendix D prose)
    "gain_points": (-100.0, 100.0),      # accuracy gain over the same model from scratch, in points
    "steps_to_converge": (0.0, math.inf),  # FPT Table 6
}
NAME = re.compile(r"[a-z0-9_]+")  # task, arch, init: lowercase identifiers
KEY = ["paper", "table", "task", "arch", "model", "init", "metric", "setting"]  # unique per row


def _fail(path: Path, row: int, column: str, message: str) -> ValueError:
    # row counts data rows from 1 (the header is line 1, so row N is line N + 1)
    return ValueError(f"{path.name} row {row} (line {row + 1}), column {column!r}: {message}")


def _check_row(path: Path, row: int, rec: dict[str, str]) -> float:
    for col in COLUMNS:
        if not rec[col].strip():
            raise _fail(path, row, col, "is empty")
        if rec[col] != rec[col].strip():
            raise _fail(path, row, col, f"{rec[col]!r} has leading or trailing spaces")
    if rec["paper"] not in PAPERS:
        raise _fail(path, row, "paper", f"{rec['paper']!r} is not one of {', '.join(PAPERS)}")
    if rec["confidence"] not in CONFIDENCE:
        raise _fail(path, row, "confidence", f"{rec['confidence']!r} is not one of {', '.join(CONFIDENCE)}")
    for col in ("task", "arch", "init"):
        if not NAME.fullmatch(rec[col]):
            raise _fail(path, row, col, f"{rec[col]!r} is not a lowercase name ([a-z0-9_]+)")
    if rec["metric"] not in METRICS:
        raise _fail(path, row, "metric", f"{rec['metric']!r} is not one of {', '.join(METRICS)}")
    try:
        value = float(rec["value"])
    except ValueError:
        raise _fail(path, row, "value", f"{rec['value']!r} is not a number") from None
    lo, hi = METRICS[rec["metric"]]
    if not (lo <= value <= hi):  # also rejects nan
        raise _fail(path, row, "value", f"{rec['value']} is outside [{lo:g}, {hi:g}] for {rec['metric']}")
    return value


def load(path: str | Path | None = None) -> pd.DataFrame:
    """Every published number as a DataFrame (text columns as str, `value` as float64).

    Raises ValueError with one line naming the file, row and column on a malformed file."""
    path = Path(path) if path is not None else PATH
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != COLUMNS:
            missing = [c for c in COLUMNS if c not in (header or [])]
            extra = [c for c in (header or []) if c not in COLUMNS]
            what = "; ".join(filter(None, [missing and f"missing {missing}", extra and f"unknown {extra}"])) \
                or f"columns out of order (want {COLUMNS})"
            raise ValueError(f"{path.name} header: {what}")
        records, values, seen = [], [], {}
        for row, fields in enumerate(reader, start=1):
            if not fields:
                raise ValueError(f"{path.name} row {row} (line {row + 1}): empty line")
            if len(fields) != len(COLUMNS):
                raise ValueError(f"{path.name} row {row} (line {row + 1}): {len(fields)} fields, "
                                 f"expected {len(COLUMNS)}")
            rec = dict(zip(COLUMNS, fields))
            values.append(_check_row(path, row, rec))
            key = tuple(rec[c] for c in KEY)
            if key in seen:
                raise _fail(path, row, "setting", f"duplicates row {seen[key]} (same {', '.join(KEY)})")
            seen[key] = row
            records.append(rec)
    frame = pd.DataFrame(records, columns=COLUMNS).astype({c: str for c in COLUMNS})
    frame["value"] = pd.Series(values, dtype="float64", index=frame.index)
    return frame


def lookup(task: str | None, arch: str | None, init: str | None, *, metric: str | None = None,
           path: str | Path | None = None) -> pd.DataFrame:
    """The published numbers for one (task, arch, init) cell; None matches any value. Every metric
    is returned unless `metric` is given (e.g. "accuracy_pct"). Rows differ by paper, table and
    `setting` (model size, backbone, which groups are trained): read `setting` before comparing.
    Index is reset; an empty frame (same columns) when nothing matches."""
    frame = load(path)
    keep = pd.Series(True, index=frame.index)
    for col, want in (("task", task), ("arch", arch), ("init", init), ("metric", metric)):
        if want is not None:
            keep &= frame[col] == want
    return frame[keep].reset_index(drop=True)
