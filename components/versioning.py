"""The code version a result depends on: a hash of the source files that train and evaluate a
cell (every DVC stage that records a config hash — tune, pretrain, finetune, evaluate — depends
on all of them; tests/test_dvc.py checks it). Part of every cell's config hash, so changed
training code re-runs cells, while a change to the report or the docs does not; also stamped on
derived metrics (parameter counts, state size, FLOPs) so a number can be traced to the code
that computed it."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent  # the components package
CODE = ("config", "grid.py", "spec.py", "records.py", "models", "training", "objectives.py", "evaluation.py", "data",
        "report/derived.py", "stages/pretrain.py", "stages/finetune.py", "stages/evaluate.py", "stages/common.py",
        "stages/skip.py")


@functools.lru_cache(maxsize=None)
def code_version() -> str:
    """12 hex digits over the path and bytes of every .py file under CODE."""
    h = hashlib.sha256()
    for entry in CODE:
        path = ROOT / entry
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]
