"""The stage functions end to end on the shrunk real config, in a temp dir with a temp MLflow store."""
import inspect
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from components import paths, tracking
from components.config import PRETRAINING, parse_params
from components.grid import Cell, cells, excluded, skip_reason
from components.spec import resolve
from components.stages import evaluate, finetune, materialize, pretrain, report
from components.training import checkpoint


def run_all(params):
    for t in params.grid.tasks:
        materialize.run(params, t)
    for c in cells(params):
        for stage in (pretrain, finetune, evaluate):
            stage.run(resolve(params, c))
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
    runnable = [c for c in cells(tiny_params) if skip_reason(tiny_params, c) is None]
    assert {"task", "arch", "init", "status", "n_seeds", "acc_mean", "acc_std", "note"} <= set(grid.columns)
    listed = {(c.task, c.arch, c.init, c.fraction) for c in cells(tiny_params) if not excluded(tiny_params, c)}
    assert len(grid) == len(listed) < len(cells(tiny_params))  # excluded cells are counted, not listed
    done = grid[grid["status"] == "ok"]
    assert len(done) == len(runnable) and done["acc_mean"].between(0, 100).all()
    assert set(zip(done["arch"], done["init"])) == {(c.arch, c.init) for c in runnable}
    assert ("fpt", "scratch") not in set(zip(grid["arch"], grid["init"]))
    md = (paths.report_dir() / "grid.md").read_text()
    assert "left out by `grid.exclude`" in md
    assert "| transformer | masked_spt |" in md and "causal_spt needs a causal model" in md

    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(tiny_params.tracking.experiment)
    runs = client.search_runs([exp.experiment_id])
    finetunes = [r for r in runs if r.data.tags.get("stage") == "finetune"]
    pretrains = {r.info.run_id: r for r in runs if r.data.tags.get("stage") == "pretrain"}
    assert len(finetunes) == len(runnable)
    self_pretrained = [c for c in runnable if params_init(tiny_params, c) in PRETRAINING]
    assert {r.data.tags["init"] for r in pretrains.values()} == {c.init for c in self_pretrained} >= {
        "masked_spt", "causal_spt"}
    assert len(pretrains) == len(self_pretrained)
    for r in finetunes:
        assert {"task", "arch", "init", "seed", "fraction", "init_sha256", "data_sha256"} <= set(r.data.tags)
        assert 0.0 <= r.data.metrics["test_accuracy"] <= 1.0
        assert r.info.status == "FINISHED"
        cell = Cell(r.data.tags["task"], r.data.tags["arch"], r.data.tags["init"], int(r.data.tags["seed"]))
        if params_init(tiny_params, cell) in PRETRAINING:
            assert r.data.tags["pretrain_run_id"] in pretrains  # lineage to the pretraining run
        metrics = json.loads(paths.metrics_path(cell).read_text())
        history = client.get_metric_history(r.info.run_id, "train_loss")  # every log_every (2) steps
        assert [m.step for m in history] == list(range(2, metrics["finetune_steps"] + 1, 2))
        assert metrics["finetune_steps"] == (4 if cell.init == "masked_spt_tied" else 6)  # tied: 6 - 40%
        assert metrics["run_id"] == r.info.run_id
        assert metrics["test_accuracy"] == r.data.metrics["test_accuracy"]
        _, lineage = checkpoint.load(paths.finetune_dir(cell) / "model.pt")  # lineage inside the checkpoint too
        assert lineage["init_sha256"] == r.data.tags["init_sha256"]
        assert (lineage["pretrain_run_id"] or "") == r.data.tags["pretrain_run_id"]
    assert not paths.resume_dir("finetune", runnable[0]).exists()  # resume state is removed when done


def params_init(params, cell):
    return params.inits[cell.init].kind


def test_scratch_and_spt_share_initial_weights_and_spt_changes_them(workdir, tiny_params):
    materialize.run(tiny_params, "listops")
    for init in ("scratch", "masked_spt"):
        pretrain.run(resolve(tiny_params, Cell("listops", "s4d", init, 0)))
    scratch, _ = checkpoint.load(paths.init_dir(Cell("listops", "s4d", "scratch", 0)) / "backbone.pt")
    spt, info = checkpoint.load(paths.init_dir(Cell("listops", "s4d", "masked_spt", 0)) / "backbone.pt")
    assert scratch.keys() == spt.keys()
    assert info["pretrain_steps"] == tiny_params.pretrain.steps and info["pretrain_run_id"]
    assert not all((scratch[k] == spt[k]).all() for k in scratch)


def test_same_params_same_metrics(workdir, tiny_params):
    materialize.run(tiny_params, "listops")
    results = []
    for _ in range(2):
        cell = Cell("listops", "transformer", "masked_spt", 1)
        pretrain.run(resolve(tiny_params, cell))
        finetune.run(resolve(tiny_params, cell))
        out = evaluate.run(resolve(tiny_params, cell))
        m = json.loads(out.read_text())
        results.append((m["test_accuracy"], m["test_loss"], m["val_accuracy"], m["best_step"]))
    assert results[0] == results[1]


@pytest.mark.slow
def test_every_architecture_in_params_trains_and_gets_its_own_row(workdir, raw_params):
    raw_params["grid"].update(archs=list(raw_params["archs"]), inits=["scratch"], exclude=[])
    params = parse_params(raw_params)
    run_all(params)
    grid = pd.read_csv(paths.report_dir() / "grid.csv")
    assert sorted(grid["arch"]) == sorted(raw_params["archs"])
    assert (grid["status"] == "ok").all()
    assert (grid["params_trainable"] <= grid["params_total"]).all() and grid["acc_mean"].between(0, 100).all()


def test_git_commit_is_dirty_for_changed_inputs_not_for_what_a_run_writes(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "reports").mkdir()
    for name in ("params.yaml", "dvc.lock", "reports/grid.md"):
        (tmp_path / name).write_text("a\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "init")
    commit = lambda: tracking.git_commit.__wrapped__(str(tmp_path))  # noqa: E731  (uncached)
    (tmp_path / "dvc.lock").write_text("b\n")  # what `dvc repro` itself rewrites
    (tmp_path / "reports" / "grid.md").write_text("b\n")
    assert not commit().endswith("-dirty") and len(commit()) == 40
    (tmp_path / "params.yaml").write_text("b\n")  # a setting that differs from the commit
    assert commit().endswith("-dirty")


def test_arena_run_is_one_unit_end_to_end(workdir, raw_params, capsys):
    """`arena run`: data materialized when missing, then per fraction a self-pretraining on that
    fraction's labelled rows, finetuned and tested on the same rows: one MLflow pretraining run
    and one finetune run per fraction."""
    import yaml

    from flows.cli import main

    raw_params["grid"].update(archs=["s4d"], inits=["masked_spt"], fractions=[0.5, 1.0])
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    argv = ["--params", "params.yaml", "run", "--task", "listops", "--arch", "s4d", "--init", "masked_spt", "--seed", "0"]
    assert main(argv) == 0
    out = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("[")]  # not progress
    assert [line.split(":")[0] for line in out] == ["listops-s4d-masked_spt-s0-f0.5", "listops-s4d-masked_spt-s0"]
    assert all("test accuracy" in line for line in out)
    for fraction in (0.5, 1.0):
        record = json.loads(paths.metrics_path(Cell("listops", "s4d", "masked_spt", 0, fraction)).read_text())
        assert record["status"] == "ok" and 0 <= record["test_accuracy"] <= 1
    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(raw_params["tracking"]["experiment"])
    assert len(client.search_runs([exp.experiment_id], "tags.stage = 'pretrain'")) == 2
    assert len(client.search_runs([exp.experiment_id], "tags.stage = 'finetune'")) == 2
