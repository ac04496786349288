"""Evaluate one cell on its test split with the best-validation weights from finetuning, add
`test_accuracy` to the cell's MLflow run, and write metrics/<task>/<arch>/<init>/seed<seed>.json.
This is the only stage that reads a test split."""
from __future__ import annotations

from pathlib import Path

from components import paths
from components.config import Params
from components.atomic import write_json
from components.evaluation import evaluate_classifier
from components.models import Classifier, build_backbone
from components.stages.common import load_meta, load_split, resolve_device
from components.stages.finetune import load_info
from components.training import checkpoint


def run(params: Params, task: str, arch: str, init: str, seed: int) -> Path:
    device, meta = resolve_device(params.device), load_meta(task)
    info = load_info(task, arch, init, seed)
    state, _ = checkpoint.load(paths.finetune_dir(task, arch, init, seed) / "model.pt")
    model = Classifier(build_backbone(params.archs[arch], len(meta["vocab"]), meta["pad_id"], 0), meta["n_classes"])
    model.load_state_dict(state)
    test_split = load_split(task, "test")
    test = evaluate_classifier(model.to(device), test_split, params.finetune.eval_batch_size, meta["pad_id"], device)

    from components import tracking  # MLflow enters only at the stage boundary

    tracking.resume_run(info["run_id"]).log_metrics({"test_accuracy": test["accuracy"], "test_loss": test["loss"]},
                                                    step=info["best_step"])
    out = paths.metrics_path(task, arch, init, seed)
    write_json({**info, "test_accuracy": test["accuracy"], "test_loss": test["loss"], "n_test": len(test_split)}, out)
    return out
