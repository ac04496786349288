"""Readers of the official dataset files, on tiny fixture trees written in the exact official formats."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image
from torch.utils.data import random_split

import official_files as of
from components.config import AanCfg, Cifar10Cfg, ImdbCfg, ListOpsCfg, MnistCfg, PathfinderCfg, RemoteHomologyCfg
from components.data import homology, images, imdb, listops, lra_files, text
from components.data.contract import SPLITS, SourceError
from components.data.parquet import SCHEMAS

def pathfinder_release(folder: Path) -> Path:
    of.write_pathfinder(folder)
    return folder


CASES = {  # task: (reader, cfg, fixture writer returning the source to pass, rows per split)
    "listops": (lra_files.read_listops, ListOpsCfg(), lambda d: of.write_listops(d / "lra_release").parent, (3, 1, 1)),
    "aan": (lra_files.read_aan, AanCfg(max_length=64), of.write_aan, (2, 1, 1)),
    "pathfinder": (lra_files.read_pathfinder, PathfinderCfg(), pathfinder_release, (10, 1, 1)),
    "imdb": (imdb.read_imdb, ImdbCfg(n_val=2, max_length=16), of.write_imdb, (4, 2, 2)),
    "cifar10": (images.read_cifar10, Cifar10Cfg(n_val=5), of.write_cifar, (15, 5, 4)),
    "mnist": (images.read_mnist, MnistCfg(n_val=2), of.write_mnist, (10, 2, 4)),
    "remote_homology": (homology.read_remote_homology, RemoteHomologyCfg(), of.write_homology, (2, 1, 1)),
}


def plain(df) -> dict:
    return {column: [np.asarray(x).tolist() for x in df[column]] for column in df.columns}


def read(task: str, source: Path, **overrides):
    reader, cfg, _, _ = CASES[task]
    return reader(cfg.model_copy(update=overrides), source)


def raises(match: str):
    return pytest.raises(SourceError, match=match)


# ----------------------------------------------------------------------------------------------
# the contract, for every reader


@pytest.mark.parametrize("task", CASES)
def test_contract_and_determinism(task, tmp_path):
    reader, cfg, write, rows = CASES[task]
    source = write(tmp_path)
    data = reader(cfg, source)
    meta, kind = data.meta, data.meta["kind"]
    schema = SCHEMAS[kind]
    for split, n in zip(SPLITS, rows):
        df = data.splits[split]
        assert list(df.columns) == schema.names and len(df) == n, split
        assert df["label"].dtype == np.int64 and df["label"].between(0, meta["n_classes"] - 1).all()
        for column in schema.names[:-1]:
            assert all(x.dtype == (np.uint8 if kind == "pixels" else np.int16) for x in df[column])
            if kind != "pixels":  # ids are in the vocabulary, and never <pad> or <mask>
                ids = np.concatenate(list(df[column]))
                assert ids.max() < len(meta["vocab"]) and not np.isin(ids, [meta["pad_id"], meta["mask_id"]]).any()
        pa.Table.from_pandas(df, schema=schema, preserve_index=False)  # the Parquet schema takes the frame
    assert {"kind", "n_classes", "source"} <= set(meta)
    if kind == "pixels":
        assert meta["levels"] == 256 and len(meta["shape"]) == 3
    else:
        assert {"vocab", "pad_id", "mask_id"} <= set(meta)
    files = meta["source"]["files"]
    assert files and all(len(digest) == 64 for digest in files.values())
    again = reader(cfg, source)
    assert again.meta == meta
    assert all(plain(again.splits[s]) == plain(data.splits[s]) for s in SPLITS)


@pytest.mark.parametrize("task, hint", [
    ("listops", "lra_release.gz"), ("aan", "lra_release.gz"), ("pathfinder", "lra_release.gz"),
    ("imdb", "aclImdb_v1.tar.gz"), ("cifar10", "cifar-10-python.tar.gz"), ("mnist", "train-images-idx3-ubyte"),
    ("remote_homology", "remote_homology.tar.gz"),
])
def test_missing_source_says_what_to_get(task, hint, tmp_path):
    with raises("not found") as err:
        read(task, tmp_path / "nowhere")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'nowhere'}: not found; ") and hint in message and "\n" not in message


def test_missing_files_inside_the_source(tmp_path):
    with raises("no folder listops-1000 at any depth; download lra_release.gz"):
        read("listops", tmp_path)
    with raises(f"{tmp_path / 'aclImdb'}: not found; download the IMDB reviews .*aclImdb_v1.tar.gz.* "
                "pass the folder that holds train/ and test/"):
        read("imdb", tmp_path / "aclImdb")
    (of.write_mnist(tmp_path) / "t10k-images-idx3-ubyte").unlink()
    with raises("t10k-images-idx3-ubyte: not found \\(nor t10k-images-idx3-ubyte.gz\\)"):
        read("mnist", tmp_path)


# ----------------------------------------------------------------------------------------------
# byte-level text and release folders


def test_byte_vocabulary():
    assert len(text.VOCAB) == 258 and len(set(text.VOCAB)) == 258
    assert text.VOCAB[:2] == ("<pad>", "<mask>")
    assert text.VOCAB[ord("A") + 2] == "A" and text.VOCAB[ord(" ") + 2] == " " and text.VOCAB[10 + 2] == "\\x0a"
    ids = text.encode_bytes("Aé\n".encode(), 3)
    assert ids.dtype == np.int16 and ids.tolist() == [65 + 2, 0xC3 + 2, 0xA9 + 2]


def test_find_dirs_any_depth_deepest_first(tmp_path):
    for folder in ("lra_release/listops-1000", "lra_release/lra_release/listops-1000",
                   "lra_release/pathfinder32/imgs/listops-1000"):  # inside a data folder: never searched
        (tmp_path / folder).mkdir(parents=True)
    found = lra_files.find_dirs(tmp_path, "listops-1000")
    assert found == [tmp_path / "lra_release/lra_release/listops-1000", tmp_path / "lra_release/listops-1000"]
    assert lra_files.find_dir(tmp_path, "listops-1000") == found[0]
    assert lra_files.find_dirs(found[1], "listops-1000") == [found[1]]  # the folder itself may be passed


# ----------------------------------------------------------------------------------------------
# ListOps


def test_listops_tokens_labels_and_copy(tmp_path):
    of.write_listops(tmp_path / "lra_release", {s: [("( ( [MAX 1 ) ] )", 1)] for s in SPLITS})
    of.write_listops(tmp_path / "lra_release" / "lra_release")
    data = read("listops", tmp_path)
    ids = [listops.TOKEN_ID[t] for t in ["[MAX", "[MIN", "5", "2", "]", "3", "]"]]
    assert plain(data.splits["test"]) == {"input": [ids], "label": [3]}
    assert data.splits["train"]["label"].tolist() == [9, 1, 2]  # the deeper copy
    assert data.meta["vocab"] == list(listops.VOCAB)
    assert data.meta["source"]["copy"] == "lra_release/lra_release/listops-1000"
    assert data.meta["source"]["candidates"] == ["lra_release/lra_release/listops-1000", "lra_release/listops-1000"]
    assert set(data.meta["source"]["files"]) == {f"lra_release/lra_release/listops-1000/{name}"
                                                 for name in of.LISTOPS_FILES.values()}


BAD_ROWS = {  # task: (fixture writer, file a bad row is appended to, its line ending)
    "listops": (of.write_listops, "listops-1000/basic_train.tsv", "\r\n"),
    "aan": (of.write_aan, "tsv_data/new_aan_pairs.eval.tsv", "\n"),
}


@pytest.mark.parametrize("task, line, message", [
    ("listops", "( ( [MAX 2 ) 9 ) ]\t9\t1", "basic_train.tsv: line 5: 3 tab-separated fields, expected 2"),
    ("listops", "( ( [FOO 2 ) 9 ) ]\t9", "basic_train.tsv: line 5: unknown token '\\[FOO'"),
    ("listops", "( ( [MAX 2 ) 9 ) ]\t10", "basic_train.tsv: line 5: label '10' is not 0-9"),
    ("listops", "( ( [MAX 2 ) 9 ) ]\t-1", "basic_train.tsv: line 5: label '-1' is not 0-9"),
    ("aan", "1\tA\tB\tb'x'", "new_aan_pairs.eval.tsv: line 2: 4 tab-separated fields, expected 5"),
    ("aan", "2\tA\tB\tb'x'\tb'y'", "new_aan_pairs.eval.tsv: line 2: label '2' is not 0 or 1"),
    ("aan", "yes\tA\tB\tb'x'\tb'y'", "new_aan_pairs.eval.tsv: line 2: label 'yes' is not 0 or 1"),
])
def test_tsv_bad_rows(tmp_path, task, line, message):
    write, name, newline = BAD_ROWS[task]
    write(tmp_path)
    with open(tmp_path / name, "a", newline="") as f:
        f.write(line + newline)
    with raises(message):
        read(task, tmp_path)


def test_listops_header_is_checked(tmp_path):
    of.write_listops(tmp_path)
    path = tmp_path / "listops-1000/basic_val.tsv"
    path.write_bytes(path.read_bytes().split(b"\n", 1)[1])
    with raises("basic_val.tsv: line 1: expected the header 'Source\\\\tTarget'"):
        read("listops", tmp_path)


# ----------------------------------------------------------------------------------------------
# AAN


def test_aan_raw_fields_and_cuts(tmp_path):
    long_doc = "b'" + "x" * 12_000 + "'"
    rows = {**of.AAN, "test": [("1", "A", "B", long_doc, "b'short'")]}
    of.write_aan(tmp_path, rows)
    data = read("aan", tmp_path, max_length=20_000)
    first = bytes((data.splits["train"]["input"][0] - text.OFFSET).astype(np.uint8).tolist())
    assert first == of.AAN["train"][0][3].encode()  # the b'...' literal as is, escapes and all
    assert first.startswith(b"b'Statistical parsing.\\nCaf\\xc3\\xa9")
    assert [data.splits[s]["label"].tolist() for s in SPLITS] == [[1, 0], [1], [1]]
    test = data.splits["test"]
    assert len(test["input"][0]) == 10_000 and len(test["input2"][0]) == len("b'short'")  # first 10,000 bytes
    assert len(read("aan", tmp_path, max_length=64).splits["test"]["input"][0]) == 64


# ----------------------------------------------------------------------------------------------
# Pathfinder


def test_pathfinder_order_and_s4_split(tmp_path):
    written = of.write_pathfinder(tmp_path)  # metadata 0.npy, 2.npy, 10.npy: read in that (integer) order
    data = read("pathfinder", tmp_path)
    parts = random_split(range(12), [10, 1, 1], generator=torch.Generator().manual_seed(42))  # as S4 calls it
    for split, part in zip(SPLITS, parts):
        df = data.splits[split]
        assert [x.tolist() for x in df["input"]] == [written[i][1].reshape(-1).tolist() for i in part.indices]
        assert df["label"].tolist() == [written[i][2] for i in part.indices]
    source = data.meta["source"]
    assert data.meta["shape"] == [32, 32, 1] and data.meta["n_classes"] == 2
    assert set(source["files"]) == {f"pathfinder32/curv_contour_length_14/metadata/{b}.npy" for b in (0, 2, 10)}
    assert source["images"]["count"] == 12 and len(source["images"]["sha256"]) == 64 and "skipped" not in source
    assert source["copy"] == "pathfinder32"


def test_pathfinder_nested_copies_deepest_is_read(tmp_path):
    of.write_pathfinder(tmp_path / "lra_release", copy=1)
    of.write_pathfinder(tmp_path / "lra_release" / "lra_release", copy=2)
    data = read("pathfinder", tmp_path)
    assert all(x[0] == 2 for s in SPLITS for x in data.splits[s]["input"])
    assert data.meta["source"]["copy"] == "lra_release/lra_release/pathfinder32"
    assert data.meta["source"]["candidates"] == ["lra_release/lra_release/pathfinder32", "lra_release/pathfinder32"]


def test_pathfinder_empty_and_unreadable_pngs_are_counted_skips(tmp_path):
    of.write_pathfinder(tmp_path, difficulty="curv_baseline")
    imgs = tmp_path / "pathfinder32/curv_baseline/imgs"
    (imgs / "0/sample_1.png").write_bytes(b"")  # like the release's empty curv_baseline/imgs/0/sample_172.png
    png = (imgs / "2/sample_3.png").read_bytes()
    (imgs / "2/sample_3.png").write_bytes(png[: len(png) // 2])  # truncated
    (imgs / "10/sample_0.png").write_bytes(b"not a png")
    data = read("pathfinder", tmp_path, difficulty="easy")
    skipped = ["pathfinder32/curv_baseline/imgs/0/sample_1.png", "pathfinder32/curv_baseline/imgs/2/sample_3.png",
               "pathfinder32/curv_baseline/imgs/10/sample_0.png"]
    assert data.meta["source"]["skipped"] == {"count": 3, "files": skipped}
    assert data.meta["source"]["images"]["count"] == 12
    kept = sorted(tuple(x[1:3]) for s in SPLITS for x in data.splits[s]["input"])  # (batch, index) of each row
    assert kept == sorted({(b, i) for b in (0, 2, 10) for i in range(4)} - {(0, 1), (2, 3), (10, 0)})
    assert [len(data.splits[s]) for s in SPLITS] == [9, 0, 0]  # 9 readable images: int(0.1 * 9) = 0, as S4


def test_pathfinder_bad_files_are_errors(tmp_path):
    of.write_pathfinder(tmp_path)
    level = tmp_path / "pathfinder32/curv_contour_length_14"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(level / "imgs/2/sample_0.png")
    with raises("imgs/2/sample_0.png: 16x16 pixels, expected 32x32"):
        read("pathfinder", tmp_path)
    of.write_pathfinder(tmp_path)
    with open(level / "metadata/2.npy", "a") as f:
        f.write("imgs/2 sample_9.png 9 1 1.0 14 4 2 0.5 1 1\n")
    with raises("imgs/2/sample_9.png: not found; listed in .*metadata/2.npy line 5"):
        read("pathfinder", tmp_path)
    (level / "metadata/2.npy").write_text("imgs/2 sample_0.png 0\n")
    with raises("metadata/2.npy: line 1: expected 'imgs/<batch> sample_<i>.png"):
        read("pathfinder", tmp_path)
    with raises("curv_contour_length_9/metadata: not found"):
        read("pathfinder", tmp_path, difficulty="intermediate")


# ----------------------------------------------------------------------------------------------
# IMDB


def test_imdb_order_labels_and_held_out_val(tmp_path):
    source = of.write_imdb(tmp_path)
    data = read("imdb", source, seed=3)
    rows = [(review, label) for label, name in ((0, "neg"), (1, "pos"))
            for _, review in sorted(of.IMDB[("train", name)].items())]  # unsup/ is not read
    held = np.random.default_rng(3).permutation(len(rows))[:2]
    expect = {"train": [r for i, r in enumerate(rows) if i not in held], "val": [rows[i] for i in sorted(held)],
              "test": [(of.IMDB[("test", "neg")]["0_4.txt"], 0), (of.IMDB[("test", "pos")]["0_10.txt"], 1)]}
    for split, rows in expect.items():
        inputs = [text.encode_bytes(review.encode(), 16).tolist() for review, _ in rows]
        assert plain(data.splits[split]) == {"input": inputs, "label": [label for _, label in rows]}
    assert max(map(len, data.splits["train"]["input"])) == 16
    assert len(data.meta["source"]["files"]) == 8 and "train/pos/10_8.txt" in data.meta["source"]["files"]


# ----------------------------------------------------------------------------------------------
# CIFAR-10


def cifar_train() -> tuple[np.ndarray, np.ndarray]:
    batches = [of.cifar_batch(name) for name in of.CIFAR_BATCHES[:5]]
    return np.concatenate([b[b"data"] for b in batches]), np.concatenate([b[b"labels"] for b in batches])


def test_cifar_gray_is_pil_luma_and_split_is_s4(tmp_path):
    data = read("cifar10", of.write_cifar(tmp_path))
    planar, labels = cifar_train()
    hwc = planar.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(42)).numpy()  # S4: first 45k train, last 5k val
    for split, idx in (("train", perm[:15]), ("val", perm[15:])):
        pil = [np.asarray(Image.fromarray(hwc[i]).convert("L")).reshape(-1).tolist() for i in idx]
        assert plain(data.splits[split]) == {"input": pil, "label": labels[idx].tolist()}
    colours = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    assert np.array_equal(images.luma(colours), np.asarray(Image.fromarray(colours).convert("L")))
    assert data.meta["shape"] == [32, 32, 1]


def test_cifar_rgb_is_hwc(tmp_path):
    data = read("cifar10", of.write_cifar(tmp_path), channels=3)
    test = of.cifar_batch("test_batch")
    hwc = test[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(4, -1)
    assert plain(data.splits["test"]) == {"input": hwc.tolist(), "label": test[b"labels"]}
    assert data.meta["shape"] == [32, 32, 3]


class _Call:
    def __reduce__(self):
        return os.getcwd, ()  # harmless, but any global call must be refused


@pytest.mark.parametrize("content, message", [
    (pickle.dumps({b"data": _Call(), b"labels": []}, protocol=2), "UnpicklingError: refusing to load posix.getcwd"),
    (pickle.dumps(of.cifar_batch("data_batch_3"), protocol=2)[:5000], "not a readable CIFAR-10 batch"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 10]}, protocol=2),
     "item 1: label 10 is not 0-9"),
    (pickle.dumps({b"labels": [1]}, protocol=2), "expected a dict with b'data'"),
])
def test_cifar_bad_batches(tmp_path, content, message):
    root = of.write_cifar(tmp_path)
    (root / "data_batch_3").write_bytes(content)
    with raises(f"data_batch_3: .*{message}"):
        read("cifar10", root)


# ----------------------------------------------------------------------------------------------
# MNIST


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_and_held_out_val(tmp_path, gz):
    data = read("mnist", of.write_mnist(tmp_path, gz=gz), seed=5)
    x, y = of.mnist_arrays("train")
    held = np.zeros(12, bool)
    held[np.random.default_rng(5).permutation(12)[:2]] = True
    assert plain(data.splits["train"]) == {"input": x[~held].reshape(10, -1).tolist(), "label": y[~held].tolist()}
    assert plain(data.splits["val"]) == {"input": x[held].reshape(2, -1).tolist(), "label": y[held].tolist()}
    tx, ty = of.mnist_arrays("t10k")
    assert plain(data.splits["test"]) == {"input": tx.reshape(4, -1).tolist(), "label": ty.tolist()}
    assert data.meta["shape"] == [28, 28, 1]
    assert all(name.endswith(".gz") == gz for name in data.meta["source"]["files"])


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _relabel(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[8] = 10  # the first label, after the 8-byte header
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("name, damage, message", [
    ("train-images-idx3-ubyte", _cut, "9324 bytes, expected 9424 for 12 items \\(truncated\\?\\)"),
    ("train-images-idx3-ubyte", lambda p: p.write_bytes(b"\x00\x00"), "2 bytes, shorter than the 16-byte IDX header"),
    ("t10k-labels-idx1-ubyte", _relabel, "item 0: label 10 is not 0-9"),
    ("t10k-images-idx3-ubyte", lambda p: p.write_bytes((2049).to_bytes(4, "big") + p.read_bytes()[4:]),
     "magic number 2049, expected 2051"),
    ("t10k-labels-idx1-ubyte", lambda p: p.write_bytes(p.read_bytes()[:-1]), "11 bytes, expected 12"),
])
def test_mnist_bad_files(tmp_path, name, damage, message):
    damage(of.write_mnist(tmp_path) / name)
    with raises(f"{name}: {message}"):
        read("mnist", tmp_path)


def test_mnist_truncated_gzip(tmp_path):
    path = of.write_mnist(tmp_path, gz=True) / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with raises("train-labels-idx1-ubyte.gz: not a complete gzip file"):
        read("mnist", tmp_path)


# ----------------------------------------------------------------------------------------------
# TAPE remote homology


def test_homology_vocab_unknown_letters_and_test_split(tmp_path):
    source = of.write_homology(tmp_path)
    data = read("remote_homology", source, max_length=8)
    ids = homology.TOKEN_ID
    assert data.meta["vocab"] == ["<pad>", "<mask>", "<unk>", *"ABCDEFGHIKLMNOPQRSTUVWXYZ"]
    assert plain(data.splits["train"]) == {"input": [[ids[c] for c in "MKTAYIAK"], [ids[c] for c in "GSHM"] +
                                                     [ids["<unk>"]] + [ids[c] for c in "LLK"]], "label": [3, 0]}
    assert data.splits["val"]["label"].tolist() == [1194]
    assert data.splits["test"]["label"].tolist() == [7]
    assert plain(read("remote_homology", source, test_split="family_holdout").splits["test"])["input"] == [[2] * 4]
    assert set(data.meta["source"]["files"]) == {"remote_homology_train.json", "remote_homology_valid.json",
                                                 "remote_homology_test_fold_holdout.json"}


@pytest.mark.parametrize("records, message", [
    ([{"primary": "MKT", "fold_label": 1195}], "record 0: fold_label 1195 is not in \\[0, 1195\\)"),
    ([{"primary": "MKT", "fold_label": 1}, {"primary": "MKT"}], "record 1: fold_label None is not in"),
    ([{"primary": [11, 9, 17], "fold_label": 1}], "record 0: `primary` must be an amino-acid string"),
])
def test_homology_bad_records(tmp_path, records, message):
    of.write_homology(tmp_path, {**of.HOMOLOGY, "valid": records})
    with raises(f"remote_homology_valid.json: {message}"):
        read("remote_homology", tmp_path)


def test_homology_broken_json(tmp_path):
    path = of.write_homology(tmp_path) / "remote_homology_train.json"
    path.write_text(json.dumps(of.HOMOLOGY["train"])[:-5])
    with raises("remote_homology_train.json: not valid JSON"):
        read("remote_homology", tmp_path)
