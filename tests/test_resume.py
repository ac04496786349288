"""Kill and resume: a cell whose pretraining and finetuning are each SIGKILLed mid-run (after a
periodic checkpoint) and then re-run ends with exactly the metrics of an uninterrupted twin."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from components import paths
from components.grid import Cell
from components.training import checkpoint

CELL = Cell("listops", "transformer", "masked_spt", 0)
ARGS = ["--task", CELL.task, "--arch", CELL.arch, "--init", CELL.init, "--seed", str(CELL.seed)]


def arena(cwd: Path, *args: str, wait: bool = True):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}"}
    cmd = [sys.executable, "-m", "components.cli", *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    return proc


def kill_after_checkpoint(cwd: Path, phase: str, *args: str) -> None:
    """Start a stage, SIGKILL it as soon as its first resume checkpoint exists."""
    proc = arena(cwd, *args, wait=False)
    folder = cwd / paths.resume_dir(phase, CELL)
    deadline = time.monotonic() + 240
    while not (folder.exists() and any(folder.glob("*.pt"))):
        assert proc.poll() is None, f"{phase} ended before its first checkpoint:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, f"no {phase} checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_sigkill_in_pretraining_and_in_finetuning_then_rerun_gives_identical_metrics(tmp_path, raw_params):
    raw_params["grid"].update(archs=[CELL.arch], inits=[CELL.init], exclude=[])
    for phase in ("pretrain", "finetune"):
        raw_params[phase].update(steps=240, eval_every=40, checkpoint_every=20, log_every=10)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for d in (straight, killed):
        d.mkdir()
        (d / "params.yaml").write_text(yaml.safe_dump(raw_params))
        arena(d, "materialize", "--task", CELL.task)

    for stage in ("pretrain", "finetune", "evaluate"):
        arena(straight, stage, *ARGS)

    kill_after_checkpoint(killed, "pretrain", "pretrain", *ARGS)
    arena(killed, "pretrain", *ARGS)
    kill_after_checkpoint(killed, "finetune", "finetune", *ARGS)
    arena(killed, "finetune", *ARGS)
    arena(killed, "evaluate", *ARGS)

    a = json.loads((straight / paths.metrics_path(CELL)).read_text())
    b = json.loads((killed / paths.metrics_path(CELL)).read_text())
    assert a["finetune_resumed_from"] == 0
    assert b["finetune_resumed_from"] > 0  # the second run really continued a killed one
    init_b = json.loads((killed / paths.init_dir(CELL) / "info.json").read_text())
    assert init_b["pretrain_resumed_from"] > 0
    print({k: (a[k], b[k]) for k in ("test_accuracy", "test_loss", "val_accuracy", "best_step")},
          "resumed from", init_b["pretrain_resumed_from"], b["finetune_resumed_from"])
    for key in ("test_accuracy", "test_loss", "val_accuracy", "best_step", "finetune_steps", "finetune_tokens",
                "pretrain_tokens"):
        assert a[key] == b[key], key
    for path in (paths.init_dir(CELL) / "backbone.pt", paths.finetune_dir(CELL) / "model.pt"):
        (x, _), (y, _) = checkpoint.load(straight / path), checkpoint.load(killed / path)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), path  # bit-identical weights
    assert not (killed / paths.resume_dir("finetune", CELL)).exists()

    client = MlflowClient(f"sqlite:///{killed / 'mlflow.db'}")
    run = client.get_run(b["run_id"])  # the killed run was reopened, not duplicated
    assert run.info.status == "FINISHED" and run.data.metrics["test_accuracy"] == b["test_accuracy"]
    finetunes = client.search_runs([run.info.experiment_id], "tags.stage = 'finetune'")
    assert [r.info.run_id for r in finetunes] == [b["run_id"]]
