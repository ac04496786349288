"""The Prefect grid flow in local mode (a temporary Prefect server): the whole chain end to end,
units fanned out under a concurrency bound, a failing cell that stops nothing else, and a re-run
that trains only what is not recorded yet."""
import contextlib
import io
import json
import threading
import time

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from components import paths, tracking
from components.atomic import read_json, write_json
from flows.cli import main
from components.grid import Cell


def finetune_runs(experiment: str) -> list:
    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], "tags.stage = 'finetune'")


@pytest.mark.slow
def test_grid_flow_end_to_end_then_rerun_trains_nothing(workdir, raw_params, prefect_harness):
    from flows.grid import grid_flow

    raw_params["grid"].update(archs=["s4d"], inits=["scratch", "masked_spt", "causal_spt"])
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    state = grid_flow("params.yaml", return_state=True)
    assert state.is_completed()
    grid = pd.read_csv(paths.report_dir() / "grid.csv").set_index("init")
    assert sorted(grid.index) == ["causal_spt", "masked_spt", "scratch"]
    assert grid.loc["causal_spt", "status"] == "skipped 1/1" and grid.loc["scratch", "status"] == "ok"
    report = paths.report_dir()  # the report: claims, the grid with the papers' numbers, figures, DVC files
    page, md = (report / "grid.html").read_text(), (report / "grid.md").read_text()
    assert "<h2 id=\"claims\">Claims</h2>" in page and "SPT beats scratch for Transformers" in page
    assert "S4 59.60?" in md and "Not the papers' setting" in md
    assert {"listops-heatmap.png", "listops-curves.png", "listops-s4d-kernels.png"} <= {
        f.name for f in (report / "figures").iterdir()}
    assert page.count("data:image/png;base64,") == 3
    assert set(json.loads((report / "metrics.json").read_text())["listops"]) == {
        "s4d/scratch/1", "s4d/masked_spt/1", "s4d/causal_spt/1"}
    assert set(pd.read_csv(report / "plots" / "learning_curves.csv")["cell"]) == {"s4d · scratch", "s4d · masked_spt"}

    experiment = raw_params["tracking"]["experiment"]
    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    (parent,) = client.search_runs([exp.experiment_id], "tags.stage = 'grid'")
    assert parent.info.status == "FINISHED" and parent.data.tags["failed"] == "0"
    runs = finetune_runs(experiment)
    assert sorted(r.data.tags["init"] for r in runs) == ["masked_spt", "scratch"]
    for r in runs:  # children of the grid run, with what identifies their inputs
        assert "test_accuracy" in r.data.metrics
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert len(r.data.tags["config_hash"]) == 16 and len(r.data.tags["data_sha256"]) == 64
        assert r.data.tags["git_commit"]
    (pretraining,) = client.search_runs([exp.experiment_id], "tags.stage = 'pretrain'")
    assert pretraining.data.tags["mlflow.parentRunId"] == parent.info.run_id

    # (not capsys: Prefect's console handler would keep writing to its stream after this test)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["grid", "--dry-run"]) == 0
    listed = out.getvalue()
    assert "0 to run, 2 already recorded, 1 skipped" in listed
    assert "skip  listops-s4d-causal_spt-s0" in listed and "done  listops-s4d-scratch-s0" in listed

    (paths.report_dir() / "grid.csv").unlink()
    again = grid_flow("params.yaml", return_state=True).result()
    assert again["ran"] == [] and len(again["recorded_before"]) == 2
    assert len(finetune_runs(experiment)) == 2  # nothing trained again
    assert pd.read_csv(paths.report_dir() / "grid.csv").set_index("init").loc["scratch", "status"] == "ok"


@pytest.mark.slow
def test_a_failing_cell_stops_nothing_and_is_retried(workdir, raw_params, prefect_harness, monkeypatch):
    import flows.grid
    from flows.grid import grid_flow

    raw_params["grid"].update(archs=["s4d"], inits=["scratch", "masked_spt"])
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    real = flows.grid.run_unit

    def flaky(specs, parent, params=None):
        if specs[0].cell.init == "masked_spt":
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(specs, parent, params)

    monkeypatch.setattr(flows.grid, "run_unit", flaky)
    earlier = paths.metrics_path(Cell("listops", "s4d", "masked_spt", 0))  # a result from an earlier run
    write_json({"task": "listops", "arch": "s4d", "init": "masked_spt", "seed": 0, "status": "ok",
                "test_accuracy": 0.3}, earlier)
    state = grid_flow("params.yaml", return_state=True)
    assert state.is_failed()
    assert read_json(earlier.with_suffix(".prev.json"))["test_accuracy"] == 0.3  # kept, not lost
    assert "1 of 2 runs failed" in state.message and "listops-s4d-masked_spt-s0: RuntimeError: CUDA out of memory" in state.message
    grid = pd.read_csv(paths.report_dir() / "grid.csv").set_index("init")
    assert grid.loc["scratch", "status"] == "ok" and grid.loc["masked_spt", "status"] == "failed 1/1"
    assert "CUDA out of memory" in grid.loc["masked_spt", "note"]

    monkeypatch.setattr(flows.grid, "run_unit", real)
    summary = grid_flow("params.yaml", return_state=True).result()
    assert summary["ran"] == ["listops-s4d-masked_spt-s0"] and summary["recorded_before"] == ["listops-s4d-scratch-s0"]
    assert sorted(r.data.tags["init"] for r in finetune_runs(raw_params["tracking"]["experiment"])) == ["masked_spt",
                                                                                                      "scratch"]
    assert pd.read_csv(paths.report_dir() / "grid.csv").set_index("init")["status"].tolist() == ["ok", "ok"]


def test_units_run_concurrently_up_to_the_bound(workdir, raw_params, prefect_harness, monkeypatch):
    import flows.grid
    from flows.grid import grid_flow

    raw_params["grid"].update(archs=["s4d"], inits=["scratch"], seeds=[0, 1, 2, 3, 4])
    raw_params["prefect"]["concurrency"] = 2
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    lock, now, peak, started = threading.Lock(), [0], [0], []

    def fake(specs, parent, params=None):  # a unit that only takes time, then records a result
        start = specs[0].cell
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
            started.append(start.seed)
        time.sleep(0.5)
        with lock:
            now[0] -= 1
        cell = Cell(start.task, start.arch, start.init, start.seed)
        write_json({**cell.tags(), "seed": cell.seed, "fraction": 1.0, "status": "ok", "test_accuracy": 0.5, "val_accuracy": 0.5, "params_trainable": 1,
                    "params_total": 1, "pretrain_steps": 0, "finetune_steps": 1, "pretrain_seconds": 0.0,
                    "finetune_seconds": 0.5}, paths.metrics_path(cell))
        return {}

    monkeypatch.setattr(flows.grid, "run_unit", fake)
    summary = grid_flow("params.yaml", return_state=True).result()
    assert sorted(started) == [0, 1, 2, 3, 4] and len(summary["ran"]) == 5
    assert peak[0] == 2


def test_concurrent_units_on_a_multi_gpu_host_each_get_their_own_device(monkeypatch):
    """The local runner's units spread over the visible GPUs, one each, and wait when all are taken."""
    import threading
    import time

    import torch

    from components.stages import unit

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(unit, "_GPUS", None)
    held, peak, clashes, lock = [], [0], [], threading.Lock()

    def one():
        with unit.device_slot("auto") as device:
            with lock:
                if device in held:
                    clashes.append(device)  # two units on one GPU at once
                held.append(device)
                peak[0] = max(peak[0], len(held))
            time.sleep(0.05)
            with lock:
                held.remove(device)

    threads = [threading.Thread(target=one) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2 and not clashes
    with unit.device_slot("cpu") as device:
        assert device == "cpu"  # an explicit setting is kept
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with unit.device_slot("auto") as device:
        assert device == "auto"  # one GPU or none: resolved as before
