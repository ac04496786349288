"""Checkpoints: a state dict plus plain-data metadata, written atomically, loaded weights-only."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from components.atomic import atomic_path


def save(path: Path, state: dict[str, torch.Tensor], meta: dict) -> str:
    """Write {'state': ..., 'meta': ...} to `path` via a temp file + rename; returns its sha256."""
    return save_object(path, {"state": {k: v.detach().cpu() for k, v in state.items()}, "meta": meta})


def save_object(path: Path, obj: object) -> str:
    """torch.save `obj` (tensors, numbers, strings, lists, dicts) atomically; returns the sha256."""
    buf = io.BytesIO()  # not the temp file directly: torch.save embeds the file name in the archive
    torch.save(obj, buf)
    data = buf.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: checkpoint missing; run the stage that produces it first")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        return blob["state"], blob["meta"]
    except Exception as err:  # noqa: BLE001 (truncated zip, foreign pickle, missing keys)
        from components.data.contract import DataError

        raise DataError(f"{path}: unreadable checkpoint ({type(err).__name__}); run the stage that writes it "
                        "again (DVC: `dvc repro --force` on it)") from None
