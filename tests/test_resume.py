"""Kill and resume: a cell whose pretraining is SIGKILLed after a periodic checkpoint and whose
finetuning is SIGKILLed before its first periodic checkpoint, each then re-run, ends with exactly
the metrics and weights of an uninterrupted twin, in one MLflow run per phase."""
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


def saved_step(folder: Path) -> int:
    files = list(folder.glob("*.pt")) if folder.exists() else []
    try:
        return torch.load(files[0], weights_only=True)["step"] if files else -1
    except (FileNotFoundError, RuntimeError, EOFError):  # replaced while reading: look again
        return -1


def kill_after_checkpoint(cwd: Path, phase: str, min_step: int, *args: str) -> None:
    """Start a stage, SIGKILL it as soon as it has saved a resume checkpoint at `min_step` or later."""
    proc = arena(cwd, *args, wait=False)
    folder = cwd / paths.resume_dir(phase, CELL)
    deadline = time.monotonic() + 240
    while saved_step(folder) < min_step:
        assert proc.poll() is None, f"{phase} ended before its checkpoint:\n{proc.stdout.read()}"
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

    kill_after_checkpoint(killed, "pretrain", 20, "pretrain", *ARGS)  # after the first periodic save
    arena(killed, "pretrain", *ARGS)
    kill_after_checkpoint(killed, "finetune", 0, "finetune", *ARGS)  # before the first periodic save
    arena(killed, "finetune", *ARGS)
    arena(killed, "evaluate", *ARGS)

    a = json.loads((straight / paths.metrics_path(CELL)).read_text())
    b = json.loads((killed / paths.metrics_path(CELL)).read_text())
    init_b = json.loads((killed / paths.init_dir(CELL) / "info.json").read_text())
    assert init_b["pretrain_resumed_from"] >= 20  # the second run really continued the killed one
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
    for stage, run_id in (("finetune", b["run_id"]), ("pretrain", init_b["pretrain_run_id"])):
        found = client.search_runs([run.info.experiment_id], f"tags.stage = '{stage}'")
        assert [r.info.run_id for r in found] == [run_id], stage  # no orphaned run of the killed process
        assert found[0].info.status == "FINISHED"
