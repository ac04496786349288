"""The grid through a real Prefect work pool: a `prefect server`, a process pool, the `arena-cell/gpu`
deployment from prefect.yaml, a `prefect worker` (limit 2) and an `mlflow server`, all on 127.0.0.1,
in a temp copy of the project switched to a two-cell smoke grid. `arena grid --deployment ...` must
run both units on the worker, read their results back from MLflow, and a dry run must then list
both cells as recorded.

The controller and the worker work in two checkouts of the same commit, as on two hosts: the
controller's report and plan can only come from what MLflow holds.

Hermetic: temp PREFECT_HOME and MLflow store, telemetry off, free ports, and every process started
here (servers, worker, the worker's flow-run subprocesses) is ended in a finally, even on failure.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: prefect, mlflow, arena
STARTUP_S = 150  # a cold `prefect server start` (migrations) took 15-25 s on a quiet 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else f"({path} not written)"


class Processes:
    """Long-running processes in their own sessions, ended as a whole: each group, every descendant
    (Prefect starts flow runs in sessions of their own), and anything left whose cwd lies in `root`."""

    def __init__(self, root: Path, logs: Path):
        self.root, self.logs, self.started = root, logs, []

    def start(self, name: str, cmd: list[str], env: dict, cwd: Path) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.started.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        return _tail(self.logs / f"{name}.log")

    def stop(self) -> None:
        doomed: dict[int, psutil.Process] = {}
        for _, proc in reversed(self.started):  # the worker first, then the servers
            try:
                doomed.update({p.pid: p for p in psutil.Process(proc.pid).children(recursive=True)})
            except psutil.NoSuchProcess:
                pass
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in psutil.process_iter():  # orphans: flow runs whose worker is gone
            try:
                if p.pid != os.getpid() and Path(p.cwd()).is_relative_to(self.root):
                    doomed[p.pid] = p
            except (psutil.Error, OSError, ValueError):
                pass
        for p in doomed.values():
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(list(doomed.values()), timeout=15)
        for _, proc in self.started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass


@pytest.fixture
def processes(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(tmp_path, logs)
    try:
        yield procs
    finally:
        procs.stop()


def _wait_http(url: str, proc: subprocess.Popen, procs: Processes, name: str, timeout: float = STARTUP_S) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode}:\n{procs.log(name)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{name}: no answer from {url} in {timeout} s:\n{procs.log(name)}")


def _api(base: str, path: str, body: dict | None = None):
    req = urllib.request.Request(f"{base}{path}", method="POST" if body is not None else "GET",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _run(cmd: list[str], env: dict, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return done


def _project(tmp_path: Path, env: dict) -> Path:
    """A git checkout of the code and settings, on the smoke profile cut to one arch: two cells."""
    from flows import profiles

    proj = tmp_path / "project"
    proj.mkdir()
    junk = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("components", "flows"):
        shutil.copytree(ROOT / name, proj / name, ignore=junk)
    for name in ("params.yaml", "prefect.yaml"):
        shutil.copy2(ROOT / name, proj / name)
    done = _run([str(BIN / "arena"), "--params", "params.yaml", "profile", "smoke"], env, proj, 120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = (proj / "params.yaml").read_text().splitlines()
    lines = profiles.set_value(lines, "grid.archs", ["s4d"])
    lines = profiles.set_value(lines, "grid.inits", ["scratch", "masked_spt"])
    (proj / "params.yaml").write_text("\n".join(lines) + "\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "project under test"]):
        done = _run(["git", *args], env, proj, 60)
        assert done.returncode == 0, done.stderr
    return proj


@pytest.mark.slow
def test_grid_through_a_process_work_pool(tmp_path, processes):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "MLFLOW_")) and k not in ("ARENA_ROOT", "PYTHONPATH")}
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    })
    proj = _project(tmp_path, {**env, "PYTHONPATH": str(ROOT)})
    # the worker's own checkout of the same commit: nothing the controller reads may come from its files
    checkout = tmp_path / "worker-checkout"
    shutil.copytree(proj, checkout, symlinks=True)
    # the copy's code, not the editable install's (its finder comes after sys.path)
    env["PYTHONPATH"] = str(proj)
    head = _run(["git", "rev-parse", "HEAD"], env, proj, 30).stdout.strip()

    # servers: MLflow (one writer over HTTP, as a lab runs it) and Prefect
    mlflow_port, prefect_port = _free_port(), _free_port()
    mlflow_uri, api = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{prefect_port}/api"
    mlflow = processes.start("mlflow", [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
                                        "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                                        "--artifacts-destination", str(tmp_path / "mlartifacts")],
                               {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, tmp_path)  # no job runners
    server = processes.start("prefect-server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                                "--port", str(prefect_port)], env, tmp_path)
    t_server = _wait_http(f"{api}/health", server, processes, "prefect-server")
    _wait_http(f"{mlflow_uri}/health", mlflow, processes, "mlflow")
    env.update({"PREFECT_API_URL": api, "MLFLOW_TRACKING_URI": mlflow_uri})

    # the pool and the deployment from the project's prefect.yaml (ARENA_ROOT unset: filled per worker)
    for cmd in (["work-pool", "create", "gpu", "--type", "process"], ["--no-prompt", "deploy", "--name", "gpu"]):
        done = _run([str(BIN / "prefect"), *cmd], env, proj, 180)
        assert done.returncode == 0, f"prefect {' '.join(cmd)}:\n{done.stdout}\n{done.stderr}"
    deployment = _api(api, "/deployments/name/arena-cell/gpu")
    assert deployment["work_pool_name"] == "gpu" and deployment["entrypoint"] == "flows/cell.py:cell_flow"
    assert deployment["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $ARENA_ROOT }}"}}]

    # a worker started elsewhere: the pull step must take its flow runs into its checkout
    elsewhere = tmp_path / "worker-cwd"
    elsewhere.mkdir()
    worker = processes.start("worker", [str(BIN / "prefect"), "worker", "start", "--pool", "gpu", "--type", "process",
                                        "--limit", "2"],
                             {**env, "ARENA_ROOT": str(checkout), "PYTHONPATH": str(checkout),
                              "PREFECT_WORKER_QUERY_SECONDS": "2"}, elsewhere)

    t0 = time.monotonic()
    grid = _run([str(BIN / "arena"), "--params", "params.yaml", "grid", "--deployment", "arena-cell/gpu",
                 "--concurrency", "2"], env, proj, 300)
    t_grid = time.monotonic() - t0
    print(f"\nprefect server healthy after {t_server:.1f} s; grid through the pool {t_grid:.1f} s")
    assert worker.poll() is None, f"the worker exited:\n{processes.log('worker')}"
    assert grid.returncode == 0, (f"arena grid: {grid.returncode}\n{grid.stdout[-4000:]}\n{grid.stderr[-6000:]}\n"
                                  f"--- worker ---\n{processes.log('worker')}")

    # Prefect: two cell runs from the deployment, completed, as subflows of the grid's run
    flows = {f["id"]: f["name"] for f in _api(api, "/flows/filter", {})}
    runs = _api(api, "/flow_runs/filter", {})
    cell_runs = [r for r in runs if flows[r["flow_id"]] == "arena-cell"]
    grid_runs = [r for r in runs if flows[r["flow_id"]] == "arena-grid"]
    assert len(grid_runs) == 1 and grid_runs[0]["state_type"] == "COMPLETED"
    assert len(cell_runs) == 2
    assert all(r["state_type"] == "COMPLETED" and r["deployment_id"] == deployment["id"] and r["parent_task_run_id"]
               for r in cell_runs), cell_runs
    for r in sorted(cell_runs, key=lambda r: r["start_time"]):
        print(f"  {r['name']} {r['parameters']['init']}: scheduled {r['expected_start_time']}, "
              f"started {r['start_time']}, ended {r['end_time']} ({r['total_run_time']:.1f} s running)")

    # MLflow: both cells' finetune runs, children of the grid's run, with lineage tags
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name("arena")
    (grid_run,) = client.search_runs([exp.experiment_id], "tags.stage = 'grid'")
    assert grid_run.info.status == "FINISHED"
    finetunes = client.search_runs([exp.experiment_id], "tags.stage = 'finetune'")
    assert sorted(r.data.tags["init"] for r in finetunes) == ["masked_spt", "scratch"]
    # the worker made the data and trained; the controller has neither data nor weights
    data_sha = json.loads((checkout / "data" / "listops_smoke" / "meta.json").read_text())["sha256"]["train"]
    assert (checkout / "artifacts" / "finetune").is_dir()
    assert not (proj / "data").exists()  # the controller keeps only the arms' selection records
    assert not (proj / "artifacts" / "init").exists() and not (proj / "artifacts" / "finetune").exists()
    for r in finetunes:
        tags = r.data.tags
        assert r.info.status == "FINISHED" and "test_accuracy" in r.data.metrics, r
        assert tags["mlflow.parentRunId"] == grid_run.info.run_id
        assert tags["git_commit"].startswith(head) and re.fullmatch(r"[0-9a-f]{8,}", tags["config_hash"])
        assert tags["data_sha256"] == data_sha and tags["arch"] == "s4d"
        assert json.loads(tags["result"])["test_accuracy"] == pytest.approx(r.data.metrics["test_accuracy"])
    (pretrain_run,) = client.search_runs([exp.experiment_id], "tags.stage = 'pretrain'")
    assert pretrain_run.data.tags["mlflow.parentRunId"] == grid_run.info.run_id

    # the controller's report, from the records it read back from MLflow
    with open(proj / "reports" / "grid.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted((row["arch"], row["init"], row["status"]) for row in rows) == [
        ("s4d", "masked_spt", "ok"), ("s4d", "scratch", "ok")], rows

    # a second launch would run nothing: both cells are recorded
    dry = _run([str(BIN / "arena"), "--params", "params.yaml", "grid", "--dry-run"], env, proj, 120)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert sum(line.startswith("done  ") for line in lines) == 2, dry.stdout
    assert "0 to run, 2 already recorded, 0 skipped" in dry.stdout, dry.stdout

    # tuning on, through the same pool: each arm's trials run on the worker (validation only), the
    # controller selects from the records MLflow brings back, then the worker runs the selected settings
    from flows import profiles

    lines = profiles.set_value((proj / "params.yaml").read_text().splitlines(), "tuning.trials", 2)
    for root in (proj, checkout):  # controller and worker must agree on every setting
        (root / "params.yaml").write_text("\n".join(lines) + "\n")
    tuned = _run([str(BIN / "arena"), "--params", "params.yaml", "grid", "--deployment", "arena-cell/gpu",
                  "--concurrency", "2"], env, proj, 300)
    assert tuned.returncode == 0, (f"arena grid: {tuned.returncode}\n{tuned.stdout[-4000:]}\n{tuned.stderr[-6000:]}\n"
                                   f"--- worker ---\n{processes.log('worker')}")
    tunes = client.search_runs([exp.experiment_id], "tags.stage = 'tune'")
    assert len(tunes) == 2
    trials = client.search_runs([exp.experiment_id], "tags.stage = 'finetune' and tags.trial != ''")
    assert len(trials) == 4 and {r.data.tags["mlflow.parentRunId"] for r in trials} == {r.info.run_id for r in tunes}
    assert all("test_accuracy" not in r.data.metrics for r in trials)  # trials never saw test rows
    for init in ("scratch", "masked_spt"):
        sel = json.loads((proj / "artifacts" / "tuning" / "listops_smoke" / "s4d" / init / "selection.json").read_text())
        assert sel["status"] == "ok" and sel["selected"] in (0, 1)
        record = json.loads((proj / "metrics" / "listops_smoke" / "s4d" / init / "seed0" / "frac1.0.json").read_text())
        assert record["selection"]["trial"] == sel["selected"] and record["selection"]["values"] == sel["values"]
