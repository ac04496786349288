"""The stage functions end to end on the shrunk real config, in a temp dir with a temp MLflow store."""
import inspect
import json
from pathlib import Path

import pandas as pd
import pytest
import pyarrow.parquet as pq
from mlflow.tracking import MlflowClient

from components import paths, tracking
from components.config import parse_params
from components.grid import cells
from components.stages import evaluate, finetune, materialize, pretrain, report


def run_all(params):
    for t in params.grid.tasks:
        materialize.run(params, t)
    for c in cells(params):
        for stage in (pretrain, finetune, evaluate):
            stage.run(params, c.task, c.arch, c.init, c.seed)
    return report.run(params)


def test_pipeline_writes_report_tracks_runs_and_keeps_test_out_of_training(workdir, tiny_params, monkeypatch):
    reads = []  # (stage module, file name) of every Parquet read, whatever the route to pyarrow
    real_read = pq.read_table

    def spy(path, *args, **kwargs):
        stage = next((f.frame.f_globals["__name__"] for f in inspect.stack(0)
                      if f.frame.f_globals["__name__"].startswith("components.stages.")
                      and f.frame.f_globals["__name__"] != "components.stages.common"), "?")
        reads.append((stage, Path(path).stem))
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", spy)
    run_all(tiny_params)

    # the test split is read by the evaluate stage only
    assert {m for m, s in reads if s == "test"} == {"components.stages.evaluate"}
    assert {m for m, s in reads} == {"components.stages.pretrain", "components.stages.finetune",
                                     "components.stages.evaluate"}
    assert ("components.stages.pretrain", "train") in reads and ("components.stages.finetune", "val") in reads

    grid = pd.read_csv(paths.report_dir() / "grid.csv")
    assert {"task", "arch", "init", "n_seeds", "acc_mean", "acc_std"} <= set(grid.columns)
    assert len(grid) == len(tiny_params.grid.archs) * len(tiny_params.grid.inits)
    assert grid["acc_mean"].between(0, 100).all()
    assert "| transformer | masked_spt |" in (paths.report_dir() / "grid.md").read_text()

    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(tiny_params.tracking.experiment)
    runs = client.search_runs([exp.experiment_id])
    finetunes = [r for r in runs if r.data.tags.get("stage") == "finetune"]
    pretrains = {r.info.run_id: r for r in runs if r.data.tags.get("stage") == "pretrain"}
    assert len(finetunes) == len(cells(tiny_params))
    assert len(pretrains) == len(tiny_params.grid.archs)  # one per arch for masked_spt, seed 0
    for r in finetunes:
        assert {"task", "arch", "init", "seed"} <= set(r.data.tags)
        assert 0.0 <= r.data.metrics["test_accuracy"] <= 1.0
        assert r.info.status == "FINISHED"
        history = client.get_metric_history(r.info.run_id, "train_loss")
        assert [m.step for m in history] == [2, 4, 6]
        if r.data.tags["init"] == "masked_spt":
            assert r.data.tags["pretrain_run_id"] in pretrains  # lineage to the pretraining run
        metrics = json.loads(paths.metrics_path(r.data.tags["task"], r.data.tags["arch"], r.data.tags["init"],
                                                int(r.data.tags["seed"])).read_text())
        assert metrics["run_id"] == r.info.run_id
        assert metrics["test_accuracy"] == r.data.metrics["test_accuracy"]


def test_scratch_and_spt_share_initial_weights_and_spt_changes_them(workdir, tiny_params):
    materialize.run(tiny_params, "listops")
    from components.training import checkpoint

    for init in ("scratch", "masked_spt"):
        pretrain.run(tiny_params, "listops", "s4d", init, 0)
    scratch, _ = checkpoint.load(paths.init_dir("listops", "s4d", "scratch", 0) / "backbone.pt")
    spt, info = checkpoint.load(paths.init_dir("listops", "s4d", "masked_spt", 0) / "backbone.pt")
    assert scratch.keys() == spt.keys()
    assert info["pretrain_steps"] == tiny_params.pretrain.steps and info["pretrain_run_id"]
    assert not all((scratch[k] == spt[k]).all() for k in scratch)


def test_same_params_same_metrics(workdir, tiny_params):
    materialize.run(tiny_params, "listops")
    results = []
    for _ in range(2):
        pretrain.run(tiny_params, "listops", "transformer", "masked_spt", 1)
        finetune.run(tiny_params, "listops", "transformer", "masked_spt", 1)
        out = evaluate.run(tiny_params, "listops", "transformer", "masked_spt", 1)
        m = json.loads(out.read_text())
        results.append((m["test_accuracy"], m["test_loss"], m["val_accuracy"], m["best_step"]))
    assert results[0] == results[1]


@pytest.mark.slow
def test_every_architecture_in_params_trains_and_gets_its_own_row(workdir, raw_params):
    raw_params["grid"].update(archs=list(raw_params["archs"]), inits=["scratch", "masked_spt"])
    params = parse_params(raw_params)
    run_all(params)
    grid = pd.read_csv(paths.report_dir() / "grid.csv")
    assert sorted(set(grid["arch"])) == sorted(raw_params["archs"])
    assert len(grid) == 2 * len(raw_params["archs"])
    for row in grid.itertuples():
        frozen = raw_params["archs"][row.arch]["kind"] == "fpt"
        assert (row.params_trainable < row.params_total) == frozen, row.arch
        assert 0 <= row.acc_mean <= 100
