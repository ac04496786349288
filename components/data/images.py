"""CIFAR-10 (python pickles) and MNIST (IDX files) as uint8 pixel rows, row-major (H, W, C) flattened.

CIFAR-10 `channels: 1` is LRA Image: gray by PIL's convert("L"), as S4's torchvision Grayscale;
`channels: 3` keeps RGB. Its validation rows follow S4: torch random_split of the 50k training
images, seed 42. MNIST holds out `n_val` training images with np.random.default_rng(cfg.seed).
"""
from __future__ import annotations

import codecs
import gzip
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import random_split

from components.config import Cifar10Cfg, MnistCfg
from components.data.contract import Dataset, SourceError, files_record, require

N_CLASSES = 10

# ----------------------------------------------------------------------------------------------
# CIFAR-10

CIFAR = ("download CIFAR-10's python version (cifar-10-python.tar.gz, www.cs.toronto.edu/~kriz/cifar.html) "
         "and pass the folder cifar-10-batches-py/ it unpacks into")
CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CIFAR_SIDE = 32
S4_SEED = 42  # S4 splits CIFAR's train set with random_split(generator=torch.Generator().manual_seed(42))
_RECONSTRUCT = np.ndarray(0).__reduce__()[0]  # numpy's array rebuilder (numpy.core in 1.x, numpy._core in 2.x)
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes at pickle protocol 2
}


class _ArrayUnpickler(pickle.Unpickler):
    """Loads plain containers and numpy arrays only: a pickle naming any other global could run code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a plain array pickle")
        return SAFE_GLOBALS[(module, name)]


def luma(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> (...) uint8 gray as PIL's convert("L"): ITU-R 601-2 luma
    L = R 299/1000 + G 587/1000 + B 114/1000 in Pillow's 16-bit fixed point, rounded half up."""
    r, g, b = (rgb[..., c].astype(np.uint32) for c in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def read_cifar10(cfg: Cifar10Cfg, source: Path) -> Dataset:
    """data_batch_1..5 and test_batch: pixels (32 * 32 * C,) uint8 HWC, C = `cfg.channels`. val = the
    last `cfg.n_val` of random_split(range(50000), [50000 - n_val, n_val], seed 42) (S4: 45k / 5k);
    train and val rows are in that split's order, test in file order."""
    root = require(Path(source), CIFAR)
    paths = {part: [require(root / name, CIFAR) for name in names] for part, names in CIFAR_BATCHES.items()}
    (train_x, train_y), test = (_cifar_part(paths[part], cfg.channels) for part in ("train", "test"))
    n = len(train_y)
    if cfg.n_val >= n:
        raise SourceError(f"{root}: {n} training images, too few to hold out n_val={cfg.n_val}")
    parts = random_split(range(n), [n - cfg.n_val, cfg.n_val], generator=torch.Generator().manual_seed(S4_SEED))
    train, val = (np.array(part.indices, dtype=np.int64) for part in parts)
    splits = {"train": _frame(train_x[train], train_y[train]), "val": _frame(train_x[val], train_y[val]),
              "test": _frame(*test)}
    meta = {"kind": "pixels", "shape": [CIFAR_SIDE, CIFAR_SIDE, cfg.channels], "levels": 256,
            "n_classes": N_CLASSES, "source": files_record(root, [p for ps in paths.values() for p in ps])}
    return Dataset(splits, meta)


def _cifar_part(paths: list[Path], channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixels (n, 32 * 32 * channels) uint8, labels (n,) int64) of the batches in order."""
    batches = [_cifar_batch(path) for path in paths]
    planar = np.concatenate([x for x, _ in batches])  # (n, 3072): R plane, G plane, B plane
    hwc = planar.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE).transpose(0, 2, 3, 1)  # (n, 32, 32, 3)
    pixels = luma(hwc) if channels == 1 else hwc  # (n, 32, 32) or (n, 32, 32, 3)
    return pixels.reshape(len(planar), -1), np.concatenate([y for _, y in batches])


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data (n, 3072) uint8, labels (n,) int64) of one pickled batch dict."""
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()  # the files are Python 2 pickles
    except Exception as err:  # a damaged pickle can fail in many ways; all mean the same to the user
        raise SourceError(f"{path}: not a readable CIFAR-10 batch ({type(err).__name__}: {err}); {CIFAR}") from err
    data = batch.get(b"data") if isinstance(batch, dict) else None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        raise SourceError(f"{path}: expected a dict with b'data', a (n, 3072) uint8 array")
    labels = np.asarray(batch.get(b"labels", []))
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise SourceError(f"{path}: expected b'labels', {len(data)} integers, got {labels.shape} {labels.dtype}")
    _check_labels(path, labels)
    return data, labels.astype(np.int64)


def _check_labels(path: Path, labels: np.ndarray) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= N_CLASSES))
    if len(bad):
        raise SourceError(f"{path}: item {bad[0]}: label {labels[bad[0]]} is not 0-9")


def _frame(pixels: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"input": list(pixels), "label": labels.astype(np.int64)})


# ----------------------------------------------------------------------------------------------
# MNIST

MNIST = ("download MNIST's four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
         "t10k-labels-idx1-ubyte; .gz is fine) and pass the folder that holds them")
MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # 0x0803: unsigned bytes, 3 dimensions; 0x0801: 1 dimension
MNIST_SIDE = 28


def read_mnist(cfg: MnistCfg, source: Path) -> Dataset:
    """The IDX files (or their .gz): pixels (784,) uint8 row-major. val = `cfg.n_val` training images
    held out by np.random.default_rng(cfg.seed); train keeps the rest, both in file order."""
    root = require(Path(source), MNIST)
    paths = {part: [_idx_path(root, name) for name in names] for part, names in MNIST_FILES.items()}
    (train_x, train_y), (test_x, test_y) = (_mnist_part(*paths[part]) for part in ("train", "test"))
    if cfg.n_val >= len(train_y):
        raise SourceError(f"{paths['train'][0]}: {len(train_y)} images, too few to hold out n_val={cfg.n_val}")
    held = np.zeros(len(train_y), dtype=bool)
    held[np.random.default_rng(cfg.seed).permutation(len(train_y))[: cfg.n_val]] = True
    splits = {"train": _frame(train_x[~held], train_y[~held]), "val": _frame(train_x[held], train_y[held]),
              "test": _frame(test_x, test_y)}
    meta = {"kind": "pixels", "shape": [MNIST_SIDE, MNIST_SIDE, 1], "levels": 256, "n_classes": N_CLASSES,
            "source": files_record(root, [p for ps in paths.values() for p in ps])}
    return Dataset(splits, meta)


def _idx_path(root: Path, name: str) -> Path:
    for path in (root / name, root / f"{name}.gz"):
        if path.exists():
            return path
    raise SourceError(f"{root / name}: not found (nor {name}.gz); {MNIST}")


def _mnist_part(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(pixels (n, 784) uint8, labels (n,) int64)."""
    images = _idx(images_path, IMAGES_MAGIC, (MNIST_SIDE, MNIST_SIDE))
    labels = _idx(labels_path, LABELS_MAGIC, ())
    if len(images) != len(labels):
        raise SourceError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path.name}")
    _check_labels(labels_path, labels)
    return images.reshape(len(images), -1), labels.astype(np.int64)


def _idx(path: Path, magic: int, dims: tuple[int, ...]) -> np.ndarray:
    """An IDX file's payload (n, *dims) uint8, after checking its magic number, dimensions and size."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise SourceError(f"{path}: not a complete gzip file ({err})") from err
    header = 4 * (2 + len(dims))  # big-endian int32: magic, count, then each dimension
    if len(raw) < header:
        raise SourceError(f"{path}: {len(raw)} bytes, shorter than the {header}-byte IDX header (truncated?)")
    found, n, *shape = struct.unpack(f">{2 + len(dims)}i", raw[:header])
    if found != magic:
        raise SourceError(f"{path}: magic number {found}, expected {magic}")
    if tuple(shape) != dims:
        raise SourceError(f"{path}: items of shape {tuple(shape)}, expected {dims}")
    size = header + n * int(np.prod(dims))
    if len(raw) != size:
        raise SourceError(f"{path}: {len(raw)} bytes, expected {size} for {n} items (truncated?)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(n, *dims)
