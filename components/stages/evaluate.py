"""Evaluate one cell on its test split with the best-validation weights from finetuning, add
`test_accuracy` to the cell's MLflow run, and write metrics/<task>/<arch>/<init>/seed<seed>/frac<f>.json,
with the derived metrics (state size, FLOPs per token) and the code version that computed them.
This is the only stage that reads a test split, and only for grid cells: a tuning trial's record
is its validation result (artifacts/tuning/.../trial<t>/frac<f>.json), so selection never sees
test rows. A skipped or diverged cell gets a record that says so, without a test number."""
from __future__ import annotations

import json
from pathlib import Path

from components import paths
from components.atomic import read_json, write_json
from components.config import Params
from components.evaluation import evaluate_classifier
from components.grid import Cell
from components.models import Classifier, build_backbone
from components.stages import skip
from components.stages.common import load_meta, load_split, resolve_device
from components.stages.finetune import load_info
from components.training import checkpoint


def run(params: Params, cell: Cell, choice: dict | None = None) -> Path:
    """`params` are the cell's resolved settings; `choice` says how they were chosen (stages/tune.py
    `choice`; read from the arm's selection when not given)."""
    if (blocked := skip.upstream(params, "evaluate", cell)) is not None:
        out = skip.write("evaluate", cell, *blocked, known := _known(cell))
        if blocked[0] == "diverged":  # that is its arm's result: recorded as such, so a re-run does not retry it
            _record(known.get("run_id") or _diverged_run(params, cell), read_json(out))
        return out
    info = load_info(cell)
    if cell.trial is not None:  # a tuning trial: validation only, the test split stays unread
        out = paths.metrics_path(cell)
        write_json(info, out)
        _record(info["run_id"], info)
        return out
    device, meta = resolve_device(params.device), load_meta(cell.task)
    state, _ = checkpoint.load(paths.finetune_dir(cell) / "model.pt")
    model = Classifier(build_backbone(params.archs[cell.arch], len(meta["vocab"]), meta["pad_id"], 0),
                       meta["n_classes"])
    model.load_state_dict(state)
    test_split = load_split(cell.task, "test")
    test = evaluate_classifier(model.to(device), test_split, params.finetune.eval_batch_size, meta["pad_id"], device)

    from components import tracking  # MLflow enters only at the stage boundary

    tracking.resume_run(info["run_id"]).log_metrics({"test_accuracy": test["accuracy"], "test_loss": test["loss"]},
                                                    step=info["best_step"])
    out = paths.metrics_path(cell)
    from components import derived
    from components.versioning import code_version

    record = {**info, "test_accuracy": test["accuracy"], "test_loss": test["loss"], "n_test": len(test_split),
              "selection": choice or _selection(params, cell),
              "state_size": derived.state_size(params.archs[cell.arch]), "derived_by": code_version(),
              "flops_per_token": derived.flops_per_token(model, round(meta["length"]["test"]["mean"]), len(meta["vocab"]))}
    write_json(record, out)
    _record(info["run_id"], record)
    return out


def _selection(params: Params, cell: Cell) -> dict:
    from components.stages import tune

    return tune.choice(params, cell)


def _diverged_run(params: Params, cell: Cell) -> str:
    """A finetune-stage MLflow run for a cell whose pretraining diverged (finetuning never started),
    so the outcome is in the shared record under the cell's config hash like any other."""
    from components import tracking
    from components.grid import config_hash

    data = read_json(paths.meta_path(cell.task))["sha256"]["train"] if paths.meta_path(cell.task).exists() else ""
    tags = {**cell.tags(), "stage": "finetune", "cell": cell.name, "data_sha256": data,
            "config_hash": config_hash(params, cell)}
    with tracking.start_run(params.tracking.experiment, cell.name, tags) as t:
        pass
    return t.run_id


def _record(run_id: str, record: dict) -> None:
    """The cell's metrics file, also as the `result` tag of its finetune run: the shared record a
    grid re-run (on any machine) checks before training a cell again."""
    from components import tracking

    tracking.resume_run(run_id).set_tags({"result": json.dumps(record, sort_keys=True)})


def _known(cell: Cell) -> dict:
    """What a cell that did not finish still tells (its run id and step of divergence, if any)."""
    path = paths.finetune_dir(cell) / "info.json"
    if not path.exists():
        return {}
    return {k: v for k, v in read_json(path).items() if k in ("run_id", "pretrain_run_id", "diverged_at_step", "config_hash")}
