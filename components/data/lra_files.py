"""Readers for the official LRA release (lra_release.gz): ListOps, AAN retrieval and Pathfinder.

The release nests copies (lra_release/listops-1000 beside lra_release/lra_release/listops-1000, and
two pathfinder128), so folders are found by name at any depth. The deepest copy is read, as S4's
preparation script does, and meta `source` records it (`copy`) with every `candidates` found.
Rows are reported by their 1-based line number in the file.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import random_split

from components.config import AanCfg, ListOpsCfg, PathfinderCfg
from components.data import listops, text
from components.data.contract import Dataset, SourceError, files_record, require

RELEASE = ("download lra_release.gz (linked from the google-research/long-range-arena README), "
           "unpack it and pass the folder it unpacks into")
DATA_DIRS = re.compile(r"listops-1000|tsv_data|aan|pathfinder\d+")  # hold data, never another copy: not searched
LISTOPS_FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}
LISTOPS_HEADER = b"Source\tTarget"
LISTOPS_IDS = {t: listops.TOKEN_ID[t] for t in (*listops.OPERATORS, listops.CLOSE, *listops.DIGITS)}
AAN_FILES = {"train": "new_aan_pairs.train.tsv", "val": "new_aan_pairs.eval.tsv", "test": "new_aan_pairs.test.tsv"}
AAN_DOC_BYTES = 10_000  # LRA cuts each document to its first 10,000 bytes before encoding
DIFFICULTY_DIR = {"easy": "curv_baseline", "intermediate": "curv_contour_length_9", "hard": "curv_contour_length_14"}
S4_SEED = 42  # S4 splits Pathfinder with random_split(generator=torch.Generator().manual_seed(42))


# ----------------------------------------------------------------------------------------------
# finding the release's folders


def find_dirs(root: Path, name: str) -> list[Path]:
    """Every folder called `name` at any depth under `root` (root itself included), deepest first,
    ties by path. Release data folders are not searched inside: they hold 200k images, never a copy."""
    root = Path(root)
    if root.name == name:
        return [root]
    found = []
    for folder, subdirs, _ in os.walk(root):
        found += [Path(folder) / d for d in subdirs if d == name]
        subdirs[:] = sorted(d for d in subdirs if not DATA_DIRS.fullmatch(d))
    return sorted(found, key=lambda p: (-len(p.parts), str(p)))


def find_dir(root: Path, name: str) -> Path:
    """The deepest folder called `name` under `root` (S4 reads the inner lra_release/lra_release copy)."""
    return _locate(Path(root), name)[0]


def _locate(root: Path, name: str) -> tuple[Path, dict]:
    """(the folder to read, meta `source` entries naming it and every candidate relative to root)."""
    found = find_dirs(require(root, RELEASE), name)
    if not found:
        raise SourceError(f"{root}: no folder {name} at any depth; {RELEASE}")
    names = [str(p.relative_to(root)) for p in found]
    return found[0], {"copy": names[0], "candidates": names}


def _rows(path: Path, n_fields: int, header: bytes | None = None) -> Iterator[tuple[int, list[bytes]]]:
    """(line number, tab-separated raw fields) of each data row; another field count is an error."""
    lines = [line.removesuffix(b"\r") for line in path.read_bytes().split(b"\n")]
    if lines[-1] == b"":
        lines.pop()
    first = 1
    if header is not None:
        if lines[:1] != [header]:
            raise SourceError(f"{path}: line 1: expected the header {header.decode()!r}")
        first = 2
    if len(lines) < first:
        raise SourceError(f"{path}: no data rows" + (" after the header" if header is not None else ""))
    for number, line in enumerate(lines[first - 1:], first):
        fields = line.split(b"\t")
        if len(fields) != n_fields:
            raise SourceError(f"{path}: line {number}: {len(fields)} tab-separated fields, expected {n_fields}")
        yield number, fields


# ----------------------------------------------------------------------------------------------
# ListOps


def read_listops(cfg: ListOpsCfg, source: Path) -> Dataset:
    """listops-1000/basic_{train,val,test}.tsv as given (96k / 2k / 2k rows), parentheses stripped as
    LRA and S4 do, tokens as listops.VOCAB ids. The generator settings in `cfg` do not apply."""
    source = Path(source)
    folder, copy = _locate(source, "listops-1000")
    paths = {split: require(folder / name, f"listops-1000/ holds {', '.join(LISTOPS_FILES.values())}; {RELEASE}")
             for split, name in LISTOPS_FILES.items()}
    meta = {"kind": "tokens", "vocab": list(listops.VOCAB), "pad_id": listops.TOKEN_ID[listops.PAD],
            "mask_id": listops.TOKEN_ID[listops.MASK], "n_classes": listops.N_CLASSES,
            "source": {**files_record(source, list(paths.values())), **copy}}
    return Dataset({split: _listops_split(path) for split, path in paths.items()}, meta)


def _listops_split(path: Path) -> pd.DataFrame:
    inputs, labels = [], []
    for number, (expression, target) in _rows(path, 2, LISTOPS_HEADER):
        tokens = expression.translate(None, b"()").decode("utf-8", "replace").split()
        unknown = [t for t in tokens if t not in LISTOPS_IDS]
        if unknown:
            raise SourceError(f"{path}: line {number}: unknown token {unknown[0]!r}")
        label = int(target) if target.isdigit() else -1
        if not 0 <= label < listops.N_CLASSES:
            raise SourceError(f"{path}: line {number}: label {target.decode('utf-8', 'replace')!r} is not 0-9")
        inputs.append(np.array([LISTOPS_IDS[t] for t in tokens], dtype=np.int16))
        labels.append(label)
    return pd.DataFrame({"input": inputs, "label": np.array(labels, dtype=np.int64)})


# ----------------------------------------------------------------------------------------------
# AAN retrieval


def read_aan(cfg: AanCfg, source: Path) -> Dataset:
    """tsv_data/new_aan_pairs.{train,eval,test}.tsv (eval is the validation split): label, id1, id2,
    text1, text2 per line, no header. Each text field is tokenized raw, as LRA does (the fields are
    Python bytes literals like b'...'; they are not decoded), cut to its first 10,000 bytes, then to
    `cfg.max_length` byte tokens."""
    source = Path(source)
    folder, copy = _locate(source, "tsv_data")
    paths = {split: require(folder / name, f"tsv_data/ holds {', '.join(AAN_FILES.values())}; {RELEASE}")
             for split, name in AAN_FILES.items()}
    meta = {"kind": "pairs", **text.meta(), "n_classes": 2,
            "source": {**files_record(source, list(paths.values())), **copy}}
    return Dataset({split: _aan_split(path, cfg.max_length) for split, path in paths.items()}, meta)


def _aan_split(path: Path, max_length: int) -> pd.DataFrame:
    docs1, docs2, labels = [], [], []
    for number, (label, _id1, _id2, doc1, doc2) in _rows(path, 5):
        try:
            value = float(label)  # LRA parses the label as float32, S4 casts it to int
        except ValueError:
            value = -1.0
        if value not in (0.0, 1.0):
            raise SourceError(f"{path}: line {number}: label {label.decode('utf-8', 'replace')!r} is not 0 or 1")
        docs1.append(text.encode_bytes(doc1[:AAN_DOC_BYTES], max_length))
        docs2.append(text.encode_bytes(doc2[:AAN_DOC_BYTES], max_length))
        labels.append(int(value))
    return pd.DataFrame({"input": docs1, "input2": docs2, "label": np.array(labels, dtype=np.int64)})


# ----------------------------------------------------------------------------------------------
# Pathfinder


def read_pathfinder(cfg: PathfinderCfg, source: Path) -> Dataset:
    """pathfinder{R}/{curv_baseline | curv_contour_length_9 | curv_contour_length_14}: the images
    listed by metadata/<int>.npy (text despite the name; files in integer order, lines in order), gray
    uint8 row-major (R * R,). An empty or undecodable PNG is skipped and listed in meta source `skipped`
    (the release's pathfinder32/curv_baseline/imgs/0/sample_172.png is empty). Split as S4 does,
    see `s4_split`; the row counts in `cfg` apply to generation only."""
    source = Path(source)
    folder, copy = _locate(source, f"pathfinder{cfg.resolution}")
    level = folder / DIFFICULTY_DIR[cfg.difficulty]
    metadata = _metadata_files(require(level / "metadata", f"each pathfinder folder holds "
                                       f"{', '.join(DIFFICULTY_DIR.values())}, each with imgs/ and metadata/"))
    pixels, labels, skipped, images = _pathfinder_rows(metadata, level, source, cfg.resolution)
    splits = {split: pd.DataFrame({"input": [pixels[i] for i in idx], "label": labels[idx]})
              for split, idx in s4_split(len(labels)).items()}
    record = {**files_record(source, metadata), "images": images, **copy}
    if skipped:
        record["skipped"] = {"count": len(skipped), "files": skipped}
    meta = {"kind": "pixels", "shape": [cfg.resolution, cfg.resolution, 1], "levels": 256, "n_classes": 2,
            "source": record}
    return Dataset(splits, meta)


def s4_split(n: int) -> dict[str, np.ndarray]:
    """Row indices of S4's Pathfinder split: torch random_split of the n readable images into
    [n - 2 int(0.1 n), int(0.1 n), int(0.1 n)] with Generator().manual_seed(42), in its order."""
    n_val = n_test = int(0.1 * n)  # S4: int(val_split * len(dataset)) with val_split = test_split = 0.1
    parts = random_split(range(n), [n - n_val - n_test, n_val, n_test],
                         generator=torch.Generator().manual_seed(S4_SEED))
    return {split: np.array(part.indices, dtype=np.int64) for split, part in zip(("train", "val", "test"), parts)}


def _metadata_files(folder: Path) -> list[Path]:
    files = list(folder.glob("*.npy"))
    if not files:
        raise SourceError(f"{folder}: no metadata/<batch>.npy files; {RELEASE}")
    for path in files:
        if not path.stem.isdigit():
            raise SourceError(f"{path}: metadata files are named by batch number (0.npy, 1.npy, ...)")
    return sorted(files, key=lambda p: int(p.stem))


def _pathfinder_rows(metadata: list[Path], level: Path, source: Path,
                     size: int) -> tuple[list[np.ndarray], np.ndarray, list[str], dict]:
    """(n pixel rows (size * size,) uint8, labels (n,) int64, skipped file names, {count, sha256} of
    the images listed). One digest covers the images, in reading order, instead of one entry per file."""
    pixels, labels, skipped, digest, listed = [], [], [], hashlib.sha256(), 0
    for meta_file in metadata:
        for number, line in enumerate(meta_file.read_text(errors="replace").splitlines(), 1):
            fields = line.split()  # subfolder, file name, index, label, then generator settings
            if len(fields) < 4 or fields[3] not in ("0", "1"):
                raise SourceError(f"{meta_file}: line {number}: expected 'imgs/<batch> sample_<i>.png <i> <label 0|1> "
                                  f"...', got {line[:80]!r}")
            image = level / fields[0] / fields[1]
            data = require(image, f"listed in {meta_file} line {number}; {RELEASE}").read_bytes()
            name = str(image.relative_to(source))
            digest.update(name.encode() + b"\n" + hashlib.sha256(data).digest())
            listed += 1
            gray = _decode(data)
            if gray is None:
                skipped.append(name)
                continue
            if gray.size != (size, size):
                raise SourceError(f"{image}: {gray.size[0]}x{gray.size[1]} pixels, expected {size}x{size}")
            pixels.append(np.asarray(gray, dtype=np.uint8).reshape(-1))
            labels.append(int(fields[3]))
    if not pixels:
        raise SourceError(f"{level}: none of the {listed} images listed could be read")
    return pixels, np.array(labels, dtype=np.int64), skipped, {"count": listed, "sha256": digest.hexdigest()}


def _decode(data: bytes) -> Image.Image | None:
    """The image as 8-bit gray (PIL convert("L"), as S4), or None if it is empty or cannot be decoded."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("L")
    except (OSError, SyntaxError, ValueError):  # what PIL raises for empty, truncated or broken files
        return None
