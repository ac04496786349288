"""Eight cells at once against one MLflow tracking server (what a pool of GPU workers does):
every run is found, each a child of the grid run, with every metric it logged."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from components import paths
from components.atomic import read_json
from components.grid import cells


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tracking_server(tmp_path, monkeypatch):
    port = free_port()
    log = open(tmp_path / "mlflow-server.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "mlflow-server.log").read_text()
            time.sleep(0.5)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


@pytest.mark.slow
def test_eight_concurrent_cells_against_one_server(workdir, raw_params, prefect_harness, tracking_server):
    from flows.grid import grid_flow

    raw_params["grid"].update(archs=["s4d", "transformer"], inits=["scratch", "masked_spt"], seeds=[0, 1])
    raw_params["prefect"]["concurrency"] = 8
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    summary = grid_flow("params.yaml", return_state=True).result()
    assert len(summary["ran"]) == 8 and not summary["failed"]

    client = MlflowClient(tracking_server)
    exp = client.get_experiment_by_name(raw_params["tracking"]["experiment"])
    (grid,) = client.search_runs([exp.experiment_id], "tags.stage = 'grid'")
    runs = client.search_runs([exp.experiment_id], "tags.stage = 'finetune'")
    pretraining = client.search_runs([exp.experiment_id], "tags.stage = 'pretrain'")
    assert len(runs) == 8 and len(pretraining) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in runs + pretraining} == {grid.info.run_id}
    from components.config import parse_params

    by_name = {r.data.tags["cell"]: r for r in runs}
    for cell in cells(parse_params(raw_params)):
        run, record = by_name[cell.name], read_json(paths.metrics_path(cell))
        assert run.info.status == "FINISHED" and run.info.run_id == record["run_id"]
        assert run.data.metrics["test_accuracy"] == pytest.approx(record["test_accuracy"])
        assert run.data.metrics["best_val_accuracy"] == pytest.approx(record["val_accuracy"])
        # 6 steps: training metrics every 2 steps, validation every 3, each point present
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [2, 4, 6]
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [3, 6]
