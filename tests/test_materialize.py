"""The materialize stage over every generated task of the shipped params.yaml (shrunk): the
contract per kind, byte-identical re-runs, data cards, errors, and a pixel task trained end to end."""
import json
import pyarrow.parquet as pq
import pytest

from mlflow.tracking import MlflowClient

from components import paths, tracking
from flows.cli import main
from components.config import ConfigError, parse_params
from components.data.parquet import SCHEMAS
from components.grid import Cell
from components.stages import evaluate, finetune, materialize, pretrain
from components.spec import resolve

KIND = {"listops": "tokens", "pathfinder": "pixels", "bit_memory": "bits", "bit_xor": "bits", "digits": "pixels"}


def test_every_generated_task_writes_its_contract_and_card_byte_identically(workdir, tiny_params):
    for task, cfg in tiny_params.tasks.items():
        out = materialize.run(tiny_params, task)
        meta = json.loads(paths.meta_path(task).read_text())
        assert meta["kind"] == KIND[cfg.kind] and meta["task"] == task
        assert meta["rows"] == {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}
        assert meta["source"]["generator"] == cfg.kind and meta["source"]["seed"] == cfg.seed
        table = pq.read_table(paths.split_path(task, "train"))
        assert table.schema.equals(SCHEMAS[meta["kind"]])
        if meta["kind"] == "pixels":
            side = cfg.resolution if cfg.kind == "pathfinder" else 8  # digits: 8x8, ten classes, 17 levels
            assert meta["shape"] == [side, side, 1]
            assert {len(x) for x in table.column("input").to_pylist()} == {side * side}
            assert set(table.column("label").to_pylist()) <= set(range(meta["n_classes"]))
            assert max(max(x) for x in table.column("input").to_pylist()) < meta["levels"]
        card, figure = paths.card_paths(task)
        text = card.read_text()
        assert f"# Data card: {task}" in text and "## Labels" in text and "p50" in text
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        first = {p.name: p.read_bytes() for p in out.iterdir()}
        first_card = (text, figure.read_bytes())
        materialize.run(tiny_params, task)
        assert first == {p.name: p.read_bytes() for p in out.iterdir()}, task
        assert first_card == (card.read_text(), figure.read_bytes()), task


def test_other_seed_other_pathfinder_images(workdir, raw_params):
    raw_params["tasks"]["pathfinder32"]["seed"] = 1
    other = parse_params(raw_params)
    raw_params["tasks"]["pathfinder32"]["seed"] = 0
    base = parse_params(raw_params)
    a = pq.read_table(materialize.run(base, "pathfinder32") / "train.parquet").column("input").to_pylist()
    b = pq.read_table(materialize.run(other, "pathfinder32") / "train.parquet").column("input").to_pylist()
    assert a != b


def test_a_reader_task_without_source_says_what_to_get(workdir, raw_params):
    raw_params["tasks"]["text"] = {"kind": "imdb"}
    params = parse_params(raw_params)
    with pytest.raises(ConfigError, match=r"tasks\.text\.source: imdb is read from official files.*aclImdb"):
        materialize.run(params, "text")
    assert not (workdir / "data").exists() or not any((workdir / "data").iterdir())


def test_cli_from_a_missing_path_is_one_line_and_leaves_nothing(workdir, raw_params, capsys):
    import yaml

    raw_params["tasks"]["text"] = {"kind": "imdb"}
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    assert main(["materialize", "--task", "text", "--from", str(workdir / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("arena: error: ") and "nowhere" in err and "\n" not in err
    assert not (workdir / "data").exists() or not any((workdir / "data").iterdir())
    assert not (workdir / "reports").exists()


def test_grid_refuses_tasks_it_cannot_train(raw_params):
    raw_params["tasks"]["retrieval"] = {"kind": "aan"}
    raw_params["grid"]["tasks"] = ["listops", "retrieval"]
    with pytest.raises(ConfigError, match=r"grid\.tasks: 'retrieval' \(aan\) cannot be trained yet"):
        parse_params(raw_params)


def test_settings_presets_and_unknown_setting(raw_params):
    raw_params["tasks"]["pathfinder32"]["setting"] = "huge"
    with pytest.raises(ConfigError, match=r"tasks\.pathfinder32.*setting: 'huge' is not one of \['cpu', 'paper'\]"):
        parse_params(raw_params)


@pytest.mark.slow
def test_a_pixel_task_trains_end_to_end(workdir, raw_params):
    """Pathfinder as LRA feeds it to Transformers: one token per intensity; masked SPT then finetuning."""
    raw_params["tasks"]["pathfinder32"].update(n_train=24, n_val=8, n_test=8)
    raw_params["grid"].update(tasks=["pathfinder32"], archs=["transformer"], inits=["scratch", "masked_spt"])
    params = parse_params(raw_params)
    materialize.run(params, "pathfinder32")
    for init in ("scratch", "masked_spt"):
        cell = Cell("pathfinder32", "transformer", init, 0)
        for stage in (pretrain, finetune, evaluate):
            stage.run(resolve(params, cell))
        metrics = json.loads(paths.metrics_path(cell).read_text())
        assert 0 <= metrics["test_accuracy"] <= 1 and metrics["status"] == "ok"
    info = json.loads((paths.init_dir(Cell("pathfinder32", "transformer", "masked_spt", 0)) / "info.json").read_text())
    assert info["status"] == "ok" and 0 <= info["pretrain_val_accuracy"] <= 1
    run = MlflowClient(tracking.tracking_uri()).get_run(info["pretrain_run_id"])
    assert run.data.params["mask_ratio"] == "0.5"  # the task's image ratio (the SPT paper's)


def test_digits_are_the_bundled_real_images_split_without_overlap():
    import numpy as np

    from components.config import DigitsCfg
    from components.data import digits

    splits = digits.generate(DigitsCfg())
    assert {k: len(v) for k, v in splits.items()} == {"train": 1200, "val": 297, "test": 300}
    every = sorted(bytes(np.asarray(x, dtype=np.uint8)) + bytes([y]) for v in splits.values()
                   for x, y in zip(v["input"], v["label"]))
    pixels, labels = digits._load()
    assert every == sorted(bytes(x) + bytes([y]) for x, y in zip(pixels, labels))  # a partition of the 1,797
    assert set(splits["train"]["label"]) == set(range(10))
    assert max(max(x) for x in splits["train"]["input"]) == 16 and all(len(x) == 64 for x in splits["test"]["input"])
    assert digits.generate(DigitsCfg(seed=1))["test"]["label"].tolist() != splits["test"]["label"].tolist()
