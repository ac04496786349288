"""TAPE remote homology (Rao et al. 2019): fold classification of protein sequences, 1,195 folds.

TAPE's loaders (tape/datasets.py, RemoteHomologyDataset) read LMDB,
`remote_homology/remote_homology_{train,valid,test_*_holdout}.lmdb`, and TAPE's README also links
the same splits as JSON ("raw data", http://s3.amazonaws.com/proteindata/data_raw/remote_homology.tar.gz):
each file a JSON list of records with `primary` (the amino-acid string), `fold_label` (int) and
other fields (id, protein_length, class/superfamily/family labels, structure features) not read here.
TAPE's own tfrecord_to_json.py would write `primary` as a list of integer codes; this reader needs
the string. To make the JSON from the LMDB files with TAPE installed:

    import json
    from tape.datasets import LMDBDataset
    records = [{"primary": r["primary"], "fold_label": int(r["fold_label"])}
               for r in LMDBDataset("remote_homology/remote_homology_train.lmdb")]
    json.dump(records, open("remote_homology_train.json", "w"))

Tokens: TAPE's IUPAC letters (tape/tokenizers.py IUPAC_VOCAB, 25 letters), any other character is
<unk>; TAPE's <cls>/<sep> are not added.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from components.config import RemoteHomologyCfg
from components.data.contract import MASK, PAD, Dataset, SourceError, files_record, require

UNK = "<unk>"
IUPAC = "ABCDEFGHIKLMNOPQRSTUVWXYZ"
VOCAB: tuple[str, ...] = (PAD, MASK, UNK, *IUPAC)
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
WHAT = ("download TAPE's remote homology JSON (data_raw/remote_homology.tar.gz, linked from the "
        "songlab-cal/tape README) and pass the folder that holds remote_homology_*.json")


def read_remote_homology(cfg: RemoteHomologyCfg, source: Path) -> Dataset:
    """remote_homology_train.json, remote_homology_valid.json and remote_homology_test_{cfg.test_split}.json
    as given, records in file order; sequences cut to `cfg.max_length` tokens."""
    root = require(Path(source), WHAT)
    names = {"train": "train", "val": "valid", "test": f"test_{cfg.test_split}"}
    paths = {split: require(root / f"remote_homology_{name}.json", WHAT) for split, name in names.items()}
    splits = {split: _split(path, cfg) for split, path in paths.items()}
    meta = {"kind": "tokens", "vocab": list(VOCAB), "pad_id": TOKEN_ID[PAD], "mask_id": TOKEN_ID[MASK],
            "n_classes": cfg.n_classes, "source": files_record(root, list(paths.values()))}
    return Dataset(splits, meta)


def _split(path: Path, cfg: RemoteHomologyCfg) -> pd.DataFrame:
    try:
        records = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SourceError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(records, list):
        raise SourceError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    inputs, labels = [], []
    for i, record in enumerate(records):
        primary = record.get("primary") if isinstance(record, dict) else None
        label = record.get("fold_label") if isinstance(record, dict) else None
        if not isinstance(primary, str):
            raise SourceError(f"{path}: record {i}: `primary` must be an amino-acid string "
                              f"(see components/data/homology.py to convert TAPE's files)")
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < cfg.n_classes:
            raise SourceError(f"{path}: record {i}: fold_label {label!r} is not in [0, {cfg.n_classes})")
        inputs.append(np.array([TOKEN_ID.get(c, TOKEN_ID[UNK]) for c in primary[: cfg.max_length]], dtype=np.int16))
        labels.append(label)
    return pd.DataFrame({"input": inputs, "label": np.array(labels, dtype=np.int64)})
