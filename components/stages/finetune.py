"""Finetune one cell: load its initial backbone (artifacts/init/...), put a fresh classification
head on top, train all weights on the training split with validation-based model selection,
and write artifacts/finetune/<task>/<arch>/<init>/seed<seed>/{model.pt,info.json}.

The cell's MLflow run (tags task, arch, init, seed, stage=finetune) is created here; the
evaluate stage later adds the test metric to the same run. The test split is never read here.
"""
from __future__ import annotations

from pathlib import Path

from components import paths
from components.config import Params
from components.data.batching import train_stream
from components.atomic import file_sha256, read_json, write_json
from components.evaluation import evaluate_classifier
from components.grid import Cell
from components.models import Classifier, build_backbone, count_parameters, new_head
from components.objectives import classification_loss
from components.stages.common import derive_seed, load_meta, load_split, progress, resolve_device
from components.training import checkpoint
from components.training.loop import train


def run(params: Params, task: str, arch: str, init: str, seed: int) -> Path:
    cell, cfg, device = Cell(task, arch, init, seed), params.finetune, resolve_device(params.device)
    meta = load_meta(task)
    init_dir = paths.init_dir(task, arch, init, seed)
    state, init_info = checkpoint.load(init_dir / "backbone.pt")
    backbone = build_backbone(params.archs[arch], len(meta["vocab"]), meta["pad_id"], derive_seed(seed, "init"))
    backbone.load_state_dict(state)
    model = new_head(Classifier, backbone, meta["n_classes"], derive_seed(seed, "finetune-head")).to(device)

    train_split, val_split = load_split(task, "train"), load_split(task, "val")
    pad = meta["pad_id"]
    stream = train_stream(train_split.lengths, cfg.batch_size, derive_seed(seed, "finetune-order"))
    batches = (tuple(t.to(device) for t in train_split.batch(rows, pad)) for rows in stream)

    def loss_fn(m, batch):
        tokens, mask, labels = batch
        return classification_loss(m(tokens, mask), labels)

    def evaluate(m):
        return evaluate_classifier(m, val_split, cfg.eval_batch_size, pad, device)

    from components import tracking  # MLflow enters only at the stage boundary

    init_sha = file_sha256(init_dir / "backbone.pt")
    tags = {**cell.tags(), "stage": "finetune", "cell": cell.name, "device": str(device),
            "data_sha256": meta["sha256"]["train"], "init_sha256": init_sha,
            "pretrain_run_id": init_info.get("pretrain_run_id") or ""}
    with tracking.start_run(params.tracking.experiment, cell.name, tags) as t:
        counts = count_parameters(model)
        t.log_params({"arch": params.archs[arch].model_dump(), "finetune": cfg.model_dump(),
                      "lr": cfg.lr[arch], "pretrain_steps": init_info["pretrain_steps"], **counts})
        result = train(model, batches, loss_fn, evaluate, cfg, cfg.lr[arch], progress(cell.name, t.log_metrics))
        t.log_metrics({"best_val_accuracy": result.best_val["accuracy"], "best_step": result.best_step,
                       "finetune_seconds": result.seconds})
    out = paths.finetune_dir(task, arch, init, seed)
    info = {**cell.tags(), "seed": seed, "run_id": t.run_id, "device": str(device),
            "init_sha256": init_sha, "pretrain_run_id": init_info.get("pretrain_run_id"),
            "pretrain_steps": init_info["pretrain_steps"], "pretrain_tokens": init_info["pretrain_tokens"],
            "finetune_steps": result.steps, "finetune_tokens": result.tokens,
            "finetune_seconds": round(result.seconds, 2), "best_step": result.best_step,
            "val_accuracy": result.best_val["accuracy"], **counts}
    checkpoint.save(out / "model.pt", result.best_state, info)
    write_json(info, out / "info.json")
    return out


def load_info(task: str, arch: str, init: str, seed: int) -> dict:
    return read_json(paths.finetune_dir(task, arch, init, seed) / "info.json")
