"""Tiny fixture trees in the exact formats of the official dataset files, for reader tests.

Each `write_*` writes under `folder` and returns the path a user would pass as `source`; the
module constants and `*_arrays` functions give the content written, so tests can derive expectations.
Formats as the LRA generator and loaders (LRA, S4) read and write them, and as the aclImdb,
CIFAR-10, MNIST and TAPE downloads hold them.
"""
from __future__ import annotations

import csv
import gzip
import json
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

# ListOps: (Source, Target) as the LRA generator writes them (every tuple node in parentheses).
LISTOPS = {
    "train": [("( ( ( [MAX 2 ) 9 ) ] )", 9), ("( ( ( ( [MIN 3 ) 1 ) 7 ) ] )", 1), ("( ( ( [SM 4 ) 8 ) ] )", 2)],
    "val": [("( ( ( [MED 3 ) 6 ) ] )", 4)],
    "test": [("( ( ( [MAX ( ( ( [MIN 5 ) 2 ) ] ) ) 3 ) ] )", 3)],
}
LISTOPS_FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}


def write_listops(folder: Path, rows: dict = LISTOPS) -> Path:
    """folder/listops-1000/basic_{train,val,test}.tsv: header Source<TAB>Target, csv.writer (CRLF), as LRA."""
    out = Path(folder) / "listops-1000"
    out.mkdir(parents=True, exist_ok=True)
    for split, name in LISTOPS_FILES.items():
        with open(out / name, "w", newline="") as f:
            writer = csv.writer(f, delimiter="\t")
            writer.writerow(["Source", "Target"])
            writer.writerows(rows[split])
    return Path(folder)


# AAN: label, id1, id2, text1, text2; texts are Python bytes literals, as the release's appear to be.
def _doc(s: str) -> str:
    return repr(s.encode())


AAN = {
    "train": [("1", "P00-1001", "W99-0613", _doc("Statistical parsing.\nCaf\u00e9 results."),
               _doc("Parsing with trees.")),
              ("0.0", "P00-1002", "J93-2004", _doc("Word alignment"), _doc("A treebank of English"))],
    "val": [("1.0", "P01-1001", "P00-1001", _doc("Dependency parsing"), _doc("Statistical parsing."))],
    "test": [("0", "P02-1001", "J93-2004", _doc("Machine translation"), _doc("Morphology"))],
}
AAN_FILES = {"train": "new_aan_pairs.train.tsv", "val": "new_aan_pairs.eval.tsv", "test": "new_aan_pairs.test.tsv"}


def write_aan(folder: Path, rows: dict = AAN) -> Path:
    """folder/tsv_data/new_aan_pairs.{train,eval,test}.tsv: no header, five tab-separated fields."""
    out = Path(folder) / "tsv_data"
    out.mkdir(parents=True, exist_ok=True)
    for split, name in AAN_FILES.items():
        (out / name).write_text("".join("\t".join(row) + "\n" for row in rows[split]))
    return Path(folder)


# Pathfinder: pathfinder{R}/{difficulty}/imgs/<batch>/sample_<i>.png + metadata/<batch>.npy (text).
PATHFINDER_BATCHES = (0, 2, 10)  # 10 sorts before 2 as text: readers must sort by integer


def pathfinder_image(copy: int, batch: int, i: int, size: int = 32) -> np.ndarray:
    """(size, size) uint8; pixel [0, 0] = copy, [0, 1] = batch, [0, 2] = i, so tests can tell images apart."""
    img = np.random.default_rng([copy, batch, i]).integers(0, 256, (size, size), dtype=np.uint8)
    img[0, :3] = copy, batch, i
    return img


def write_pathfinder(folder: Path, size: int = 32, difficulty: str = "curv_contour_length_14", copy: int = 0,
                     per_batch: int = 4) -> list[tuple[str, np.ndarray, int]]:
    """folder/pathfinder{size}/{difficulty}/...; returns (image path under folder, pixels, label) in
    metadata order (batch files by integer, lines in order)."""
    level = Path(folder) / f"pathfinder{size}" / difficulty
    (level / "metadata").mkdir(parents=True, exist_ok=True)
    written = []
    for batch in PATHFINDER_BATCHES:
        (level / "imgs" / str(batch)).mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(per_batch):
            img, label = pathfinder_image(copy, batch, i, size), (batch + i) % 2
            path = level / "imgs" / str(batch) / f"sample_{i}.png"
            Image.fromarray(img).save(path)
            # fields: subfolder, file, index, label, continuity, contour length, distractor length,
            # paddle length, paddle thickness, paddle margin, contrast levels
            lines.append(f"imgs/{batch} sample_{i}.png {i} {label} 1.0 14 4 2 0.5 1 1\n")
            written.append((str(path.relative_to(folder)), img, label))
        (level / "metadata" / f"{batch}.npy").write_text("".join(lines))
    return written


# IMDB: aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt, plus files and folders readers ignore.
IMDB = {
    ("train", "pos"): {"0_9.txt": "A great film.<br /><br />Loved it.", "10_8.txt": "Superb \u00e9lan.",
                       "2_7.txt": "Good."},
    ("train", "neg"): {"0_3.txt": "Dull.", "1_1.txt": "The worst film I have seen in years.", "3_2.txt": "Meh."},
    ("test", "pos"): {"0_10.txt": "Wonderful."},
    ("test", "neg"): {"0_4.txt": "Not good."},
}


def write_imdb(folder: Path, reviews: dict = IMDB) -> Path:
    """folder/aclImdb as unpacked from aclImdb_v1.tar.gz; returns the aclImdb folder."""
    root = Path(folder) / "aclImdb"
    for (part, label), files in reviews.items():
        (root / part / label).mkdir(parents=True, exist_ok=True)
        for name, review in files.items():
            (root / part / label / name).write_text(review, encoding="utf-8")
    (root / "train" / "unsup").mkdir(parents=True, exist_ok=True)
    (root / "train" / "unsup" / "0_0.txt").write_text("Unlabelled review.")
    (root / "imdb.vocab").write_text("the\nand\n")
    return root


# CIFAR-10: cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta (Python pickles, bytes keys).
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def cifar_batch(name: str, n: int = 4) -> dict:
    """The dict one batch file holds: b"data" (n, 3072) uint8 channel-planar R, G, B; b"labels" ints."""
    rng = np.random.default_rng(CIFAR_BATCHES.index(name))
    return {b"batch_label": name.encode(), b"labels": [int(y) for y in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"image_{i}.png".encode() for i in range(n)]}


def write_cifar(folder: Path) -> Path:
    """folder/cifar-10-batches-py as unpacked from cifar-10-python.tar.gz; returns that folder."""
    root = Path(folder) / "cifar-10-batches-py"
    root.mkdir(parents=True, exist_ok=True)
    for name in CIFAR_BATCHES:
        raw = pickle.dumps(cifar_batch(name), protocol=2)
        # the real files were pickled by Python 2 with numpy 1, which names numpy.core, not numpy._core
        (root / name).write_bytes(raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"airplane", b"automobile"], b"num_vis": 3072}, f, protocol=2)
    return root


# MNIST: IDX files, big-endian int32 header (magic 2051 images / 2049 labels, count, rows, cols).
MNIST_COUNTS = {"train": 12, "t10k": 4}


def mnist_arrays(part: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 28, 28) uint8, labels (n,) uint8) of `train` or `t10k`."""
    rng = np.random.default_rng(len(part))
    n = MNIST_COUNTS[part]
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def write_mnist(folder: Path, gz: bool = False) -> Path:
    """folder/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; returns folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for part in MNIST_COUNTS:
        images, labels = mnist_arrays(part)
        files = {f"{part}-images-idx3-ubyte": struct.pack(">4i", 2051, len(images), 28, 28) + images.tobytes(),
                 f"{part}-labels-idx1-ubyte": struct.pack(">2i", 2049, len(labels)) + labels.tobytes()}
        for name, raw in files.items():
            (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return folder


# TAPE remote homology: remote_homology_{train,valid,test_*_holdout}.json, each a list of records.
HOMOLOGY = {
    "train": [{"primary": "MKTAYIAKQR", "fold_label": 3}, {"primary": "GSHMJLLK", "fold_label": 0}],
    "valid": [{"primary": "ACDEFGHIKLMNPQRSTVWY", "fold_label": 1194}],
    "test_fold_holdout": [{"primary": "MVLSPADKTN", "fold_label": 7}],
    "test_superfamily_holdout": [{"primary": "XBZUO", "fold_label": 2}],
    "test_family_holdout": [{"primary": "mkta", "fold_label": 5}],
}


def write_homology(folder: Path, records: dict = HOMOLOGY) -> Path:
    """folder/remote_homology_<split>.json with TAPE's record fields; returns folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in records.items():
        full = [{"id": f"d{i}", "protein_length": len(r["primary"]), "class_label": 0, "superfamily_label": 0,
                 "family_label": 0, **r} for i, r in enumerate(rows)]
        (folder / f"remote_homology_{split}.json").write_text(json.dumps(full))
    return folder
