"""Materialize a task: draw it with its seeded generator, or read the official files a user has
(`source` in params, or `arena materialize --task T --from PATH`), then write
data/<task>/{train,val,test}.parquet + meta.json and the data card reports/data/<task>.{md,png}.
Everything is built under temp names and renamed into place, so a failure leaves nothing behind."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from components import paths, records
from components.atomic import atomic_dir, atomic_path, file_sha256, write_text
from components.config import ConfigError, Params
from components.data import bits, card, digits, listops, pathfinder
from components.data.contract import Dataset, SourceError
from components.data.parquet import write_split

GENERATORS = {"listops": listops, "pathfinder": pathfinder, "bit_memory": bits, "bit_xor": bits,
              "digits": digits}
WHERE = {  # what a reader of each kind wants `source` to point at
    "listops": "the LRA release folder (it holds listops-1000/)",
    "pathfinder": "the LRA release folder (it holds pathfinder32/ ... pathfinder256/)",
    "aan": "the LRA release folder (it holds tsv_data/)",
    "imdb": "the folder aclImdb/ from aclImdb_v1.tar.gz",
    "cifar10": "the folder cifar-10-batches-py/ from cifar-10-python.tar.gz",
    "mnist": "the folder with MNIST's four IDX files",
    "remote_homology": "the folder with TAPE's remote_homology_*.json files",
}


def reader(kind: str):
    from components.data import homology, images, imdb, lra_files

    return {"listops": lra_files.read_listops, "pathfinder": lra_files.read_pathfinder, "aan": lra_files.read_aan,
            "imdb": imdb.read_imdb, "cifar10": images.read_cifar10, "mnist": images.read_mnist,
            "remote_homology": homology.read_remote_homology}[kind]


def build(task: str, cfg, source: Path | None) -> Dataset:
    """The task's dataset, read from `source` if given, else generated."""
    if source is not None:
        return reader(cfg.kind)(cfg, Path(source))
    if cfg.kind not in GENERATORS:
        raise ConfigError(f"tasks.{task}.source: {cfg.kind} is read from official files; set it to "
                          f"{WHERE[cfg.kind]} or pass --from PATH")
    module = GENERATORS[cfg.kind]
    return Dataset(module.generate(cfg), module.meta(cfg))


def lengths(df, column: str) -> dict:
    n = df[column].map(len).to_numpy()
    return {"mean": round(float(n.mean()), 2), "min": int(n.min()), "max": int(n.max()),
            **{f"p{q}": float(np.percentile(n, q)) for q in (5, 50, 95)}}


def run(params: Params, task: str, source: str | None = None) -> Path:
    if task not in params.tasks:
        raise ConfigError(f"tasks.{task}: not defined in params")
    cfg = params.tasks[task]
    source = source or cfg.source
    data = build(task, cfg, Path(source) if source else None)
    meta = {"task": task, **data.meta, "rows": {}, "length": {}, "sha256": {}}
    columns = ("input", "input2") if meta["kind"] == "pairs" else ("input",)
    out = paths.data_dir(task)
    for split, df in data.splits.items():
        if df.empty:
            raise SourceError(f"{source or f'tasks.{task}'}: the {split} split has no rows")
    with atomic_dir(out) as tmp:
        for split, df in data.splits.items():
            write_split(df, tmp / f"{split}.parquet", meta["kind"])
            meta["rows"][split] = len(df)
            meta["length"][split] = {c: lengths(df, c) for c in columns} if len(columns) > 1 else lengths(df, "input")
            meta["sha256"][split] = file_sha256(tmp / f"{split}.parquet")
        records.save(records.DataMeta(**meta), tmp / "meta.json")
        text, png = card.render(task, data.splits, meta)
        md_path, png_path = paths.card_paths(task)
        with atomic_path(png_path) as p:
            p.write_bytes(png)
        write_text(text, md_path)
    return out


def current(params: Params, task: str) -> bool:
    """Whether data/<task> exists and was made from the task's present settings (generated tasks:
    the same generator settings; file-based ones: read from the same `source`). A worker uses it
    to reuse data it pulled or made earlier instead of materializing again."""
    path = paths.meta_path(task)
    if not path.exists():
        return False
    meta = records.load(records.DataMeta, path)
    if any(not paths.split_path(task, s).exists() or file_sha256(paths.split_path(task, s)) != meta.sha256.get(s)
           for s in paths.SPLITS):
        return False  # a split missing or edited in place: build it again
    cfg, recorded = params.tasks[task], meta.source
    if cfg.source:
        return str(recorded.get("root", "")).startswith(str(Path(cfg.source).resolve()))
    if cfg.kind not in GENERATORS:
        return False
    return recorded == json.loads(json.dumps(GENERATORS[cfg.kind].meta(cfg)["source"]))
