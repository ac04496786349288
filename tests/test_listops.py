import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from components import paths
from components.config import ListOpsCfg
from components.data import listops
from components.stages import materialize


def evaluate_independently(tokens: list[str]) -> int:
    """A stack evaluator written apart from the generator: '[OP' opens, ']' closes, digits are leaves."""
    stack: list[list] = []
    result = None
    for tok in tokens:
        if tok.startswith("["):
            stack.append([tok])
        elif tok == "]":
            op, *args = stack.pop()
            if op == "[MAX":
                value = max(args)
            elif op == "[MIN":
                value = min(args)
            elif op == "[MED":
                s = sorted(args)
                mid = len(s) // 2
                value = s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) // 2  # floor of the mean
            elif op == "[SM":
                value = sum(args) % 10
            else:
                raise AssertionError(op)
            if stack:
                stack[-1].append(value)
            else:
                result = value
        else:
            d = int(tok)
            if stack:
                stack[-1].append(d)
            else:
                result = d
    assert not stack
    return result


CFG = ListOpsCfg(max_depth=5, min_length=16, max_length=96, n_train=400, n_val=100, n_test=100, seed=3)


def test_labels_agree_with_independent_evaluator():
    splits = listops.generate(CFG)
    for df in splits.values():
        for ids, label in zip(df["input"], df["label"]):
            assert evaluate_independently([listops.VOCAB[i] for i in ids]) == label


def test_lengths_bounds_and_no_duplicates_across_splits():
    splits = listops.generate(CFG)
    seen = set()
    for split, df in splits.items():
        assert len(df) == getattr(CFG, f"n_{split}")
        for ids in df["input"]:
            assert CFG.min_length < len(ids) < CFG.max_length
            assert tuple(ids) not in seen
            seen.add(tuple(ids))


def test_med_uses_floor_of_mean_for_even_counts():
    assert listops.apply_op("[MED", [3, 6]) == 4
    assert listops.apply_op("[SM", [7, 8]) == 5


def test_same_seed_same_data_other_seed_other_data():
    a, b = listops.generate(CFG), listops.generate(CFG)
    c = listops.generate(CFG.model_copy(update={"seed": 4}))
    for split in a:
        assert a[split]["label"].tolist() == b[split]["label"].tolist()
        assert [x.tolist() for x in a[split]["input"]] == [x.tolist() for x in b[split]["input"]]
    assert [x.tolist() for x in a["train"]["input"]] != [x.tolist() for x in c["train"]["input"]]


def test_materialize_writes_the_contract_byte_identically(workdir, tiny_params):
    out = materialize.run(tiny_params, "listops")
    meta = json.loads(paths.meta_path("listops").read_text())
    assert meta["vocab"][:2] == ["<pad>", "<mask>"]
    assert {"[MAX", "[MIN", "[MED", "[SM", "]", *map(str, range(10))} <= set(meta["vocab"])
    assert meta["n_classes"] == 10 and meta["source"]["seed"] == tiny_params.tasks["listops"].seed
    assert meta["source"]["max_length"] == tiny_params.tasks["listops"].max_length
    cfg = tiny_params.tasks["listops"]
    assert meta["rows"] == {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}
    table = pq.read_table(paths.split_path("listops", "train"))
    assert table.column_names == ["input", "label"]
    assert table.num_rows == cfg.n_train
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    materialize.run(tiny_params, "listops")
    assert first == {p.name: p.read_bytes() for p in out.iterdir()}
    assert not [p for p in workdir.joinpath("data").iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_materialize_leaves_nothing_partial_on_failure(workdir, tiny_params, monkeypatch):
    materialize.run(tiny_params, "listops")
    before = paths.split_path("listops", "train").read_bytes()

    def broken(df, path, kind):
        raise OSError("disk full")

    monkeypatch.setattr(materialize, "write_split", broken)
    with pytest.raises(OSError):
        materialize.run(tiny_params, "listops")
    assert paths.split_path("listops", "train").read_bytes() == before
    assert [p.name for p in workdir.joinpath("data").iterdir()] == ["listops"]
    assert not [p for p in workdir.joinpath("reports", "data").iterdir() if p.name.startswith(".")]


def test_label_skew_matches_lra_shape():
    df = listops.generate(ListOpsCfg(setting="cpu", n_train=3000, n_val=10, n_test=10, seed=1))["train"]
    freq = np.bincount(df["label"], minlength=10) / len(df)
    assert freq[0] > 0.12 and freq[9] > 0.12  # LRA's 0/9 skew (about 17% each)
    assert max(freq[1:9]) < 0.12
