"""Finetune one cell: load its initial backbone (artifacts/init/...), put a fresh classification
head on top (for the bit tasks, per-bit logits), train on the cell's labelled training rows with
validation-based model selection, and write
artifacts/finetune/<task>/<arch>/<init>/seed<seed>/frac<fraction>/{model.pt,info.json}
(a tuning trial's: artifacts/tuning/<task>/<arch>/<init>/trial<k>/frac<fraction>/).

Every weight trains, except for the frozen inits (`fpt_frozen`, `fpt_random`), where attention
and feed-forward of the language model stay fixed. The cell's MLflow run (tags task, arch, init,
seed, fraction, stage=finetune, and the lineage: pretraining run id and the initial checkpoint's
hash) is created here; the evaluate stage adds the test metric to it. The test split is never
read here. Resumable like pretraining; a diverged run is recorded as such, not raised.
"""
from __future__ import annotations

from pathlib import Path

from components import paths, records
from components.atomic import atomic_dir, file_sha256
from components.config import FROZEN
from components.evaluation import evaluate_classifier
from components.models import build_backbone, count_parameters, new_head
from components.objectives import classification_loss
from components.records import OK, CellRecord, InitInfo
from components.spec import CellSpec
from components.stages import skip
from components.stages.common import (backbone_inputs, batches_from, clear_resume, derive_seed, head_for, label_rows,
                                      load_meta, load_split, progress, resolve_device, resume_file)
from components.training import checkpoint
from components.training.loop import Diverged, read_meta, train


def run(spec: CellSpec, parent_run_id: str | None = None) -> Path:
    cell = spec.cell
    if (blocked := skip.upstream(spec, "finetune")) is not None:
        return skip.write("finetune", cell, *blocked)
    cfg, device, init = spec.finetune, resolve_device(spec.device), spec.init
    meta, init_dir = load_meta(cell.task), paths.init_dir(spec.start)
    state, _ = checkpoint.load(init_dir / "backbone.pt")
    init_info = records.load(InitInfo, init_dir / "info.json")
    backbone = build_backbone(spec.arch, **backbone_inputs(meta), seed=derive_seed(cell.seed, "init"))
    backbone.load_state_dict(state)
    if init.kind in FROZEN:
        backbone.freeze()
    head, outputs = head_for(meta)
    model = new_head(head, backbone, outputs, derive_seed(cell.seed, "finetune-head")).to(device)

    limit = getattr(backbone, "max_len", None)  # positions of a language-pretrained backbone
    full, val_split, pad = load_split(cell.task, "train", limit), load_split(cell.task, "val", limit), meta.pad_id
    train_split = full if cell.fraction == 1.0 else full.subset(
        label_rows(len(full), cell.fraction, derive_seed(spec.task.seed, "label-subset")))
    _, steps = spec.budgets(len(full))
    batches = batches_from(train_split, cfg.batch_size, derive_seed(cell.seed, "finetune-order"), pad, device)

    def loss_fn(m, batch):
        tokens, mask, labels = batch  # bit tasks: patches (B, L, P), mask, per-bit targets (B, n_bits)
        return classification_loss(m(tokens, mask), labels)

    def evaluate(m):
        return evaluate_classifier(m, val_split, cfg.eval_batch_size, pad, device)

    from components import tracking  # MLflow enters only at the stage boundary

    init_sha = file_sha256(init_dir / "backbone.pt")
    resume = resume_file("finetune", cell, {
        "arch": spec.arch.model_dump(), "init": init.model_dump(), "phase": cfg.model_dump(),
        "init_sha256": init_sha, "data": meta.sha256, "steps": steps, "seed": cell.seed,
        "fraction": cell.fraction, "device": device.type, "bf16": spec.bf16, "compile": spec.compile})
    earlier = read_meta(resume)
    tags = {**cell.tags(), "stage": "finetune", "cell": cell.name, "device": str(device),
            "data_sha256": meta.sha256["train"], "init_sha256": init_sha,
            "pretrain_run_id": init_info.pretrain_run_id or "", "config_hash": spec.config_hash}
    counts = count_parameters(model)
    try:
        with tracking.start_run(spec.experiment, cell.name, tags, run_id=earlier and earlier["run_id"],
                                parent_run_id=parent_run_id) as t:
            if not t.reopened:
                t.log_params({"arch": spec.arch.model_dump(), "finetune": cfg.model_dump(),
                              "init": init.model_dump(), "lr": cfg.lr, "steps": steps,
                              "train_rows": len(train_split), "pretrain_steps": init_info.pretrain_steps, **counts})
            result = train(model, batches, loss_fn, evaluate, cfg, steps,
                           progress(cell.name, t.log_metrics), checkpoint=resume, meta={"run_id": t.run_id},
                           bf16=spec.bf16, compile=spec.compile, desc=cell.name)
            t.log_metrics({"best_val_accuracy": result.best_val["accuracy"], "best_step": result.best_step,
                           "finetune_seconds": result.seconds})
    except Diverged as err:
        clear_resume(resume)
        return skip.write("finetune", cell, "diverged", f"finetuning diverged: {err}",
                          {"run_id": t.run_id, "diverged_at_step": err.step, "config_hash": spec.config_hash})
    info = CellRecord(
        **{**cell.tags(), "seed": cell.seed, "fraction": cell.fraction}, status=OK, run_id=t.run_id,
        config_hash=spec.config_hash, device=str(device), init_sha256=init_sha,
        pretrain_run_id=init_info.pretrain_run_id, pretrain_steps=init_info.pretrain_steps,
        pretrain_tokens=init_info.pretrain_tokens, pretrain_seconds=init_info.pretrain_seconds,
        train_rows=len(train_split), finetune_budget=steps, finetune_steps=result.steps,
        stopped_early=result.stopped_early, finetune_tokens=result.tokens, finetune_seconds=round(result.seconds, 2),
        finetune_resumed_from=result.resumed_from, best_step=result.best_step,
        val_accuracy=result.best_val["accuracy"], val_rising=still_rising(result.history, result.steps), **counts)
    out = paths.finetune_dir(cell)
    with atomic_dir(out) as tmp:
        checkpoint.save(tmp / "model.pt", result.best_state, info.model_dump(mode="json"))
        records.save(info, tmp / "info.json")
    clear_resume(resume)
    return out


def still_rising(history: list[dict], steps: int, tolerance: float = 0.005) -> bool | None:
    """Whether the best validation accuracy improved by more than `tolerance` in the last fifth of
    the steps (the run stopped while still learning; the kept checkpoint is the best one, so a
    noisy plateau does not count); None with no evaluation on one side of that mark."""
    evals = [(h["step"], h["accuracy"]) for h in history if "accuracy" in h]
    before = [a for s, a in evals if s <= 0.8 * steps]
    after = [a for s, a in evals if s > 0.8 * steps]
    if not before or not after:
        return None
    return max(after) - max(before) > tolerance


def load_info(cell) -> CellRecord:
    return records.load(CellRecord, paths.finetune_dir(cell) / "info.json")
