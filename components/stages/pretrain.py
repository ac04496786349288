"""Initialize a cell's backbone: artifacts/init/<task>/<arch>/<init>/seed<seed>/{backbone.pt,info.json}
(a tuning trial's: artifacts/tuning/<task>/<arch>/<init>/trial<k>/init/).

- `scratch` / `fpt_random`: the seeded random initialization, untrained (so cells of one seed
  start from the very same weights, whatever happens to them next).
- `fpt_frozen` / `pretrained_full`: the language-pretrained weights.
- `masked_spt` / `causal_spt`: self-pretraining on the task's own *training inputs* (labels
  unused): masked-token denoising, or next-token prediction for causal models; the checkpoint
  with the best validation token accuracy is kept. Tracked as an MLflow run with stage=pretrain.
  Resumable: killed and re-run, it continues from its last periodic checkpoint.
Skipped cells and diverged pretraining write an info.json that says so, and no weights.
"""
from __future__ import annotations

from pathlib import Path

import torch

from components import paths, records
from components.atomic import atomic_dir, file_sha256
from components.config import LANGUAGE_PRETRAINED, PRETRAINING
from components.evaluation import evaluate_causal_lm, evaluate_masked_lm
from components.models import MaskedLM, build_backbone, count_parameters, new_head
from components.objectives import mask_tokens, masked_lm_loss, next_token_targets
from components.records import DataMeta, InitInfo
from components.spec import CellSpec
from components.stages import skip
from components.stages.common import (backbone_inputs, batches_from, clear_resume, derive_seed, label_rows, load_meta,
                                      load_split, progress, resolve_device, resume_file)
from components.training import checkpoint
from components.training.loop import Diverged, read_meta, train


def run(spec: CellSpec, parent_run_id: str | None = None) -> Path:
    """Initialize the backbone of `spec`'s pretraining start (`CellSpec.start`)."""
    spec = spec.at(spec.start.fraction)
    cell = spec.cell
    if (blocked := skip.upstream(spec, "pretrain")) is not None:
        return skip.write("pretrain", cell, *blocked)
    meta, init = load_meta(cell.task), spec.init
    backbone = build_backbone(spec.arch, **backbone_inputs(meta), seed=derive_seed(cell.seed, "init"),
                              pretrained=init.kind in LANGUAGE_PRETRAINED)
    info = {**cell.tags(), "seed": cell.seed, "init_kind": init.kind, "data_sha256": meta.sha256["train"],
            "init_hash": spec.init_hash}
    resume = None
    if init.kind in PRETRAINING:
        try:
            result, run_id, resume = _self_pretrain(spec, meta, backbone, parent_run_id)
        except Diverged as err:
            clear_resume(err.resume)
            return skip.write("pretrain", cell, "diverged", f"pretraining diverged: {err}",
                              {"pretrain_run_id": err.run_id, "diverged_at_step": err.step})
        info.update({"pretrain_run_id": run_id, "pretrain_steps": result.steps, "pretrain_tokens": result.tokens,
                     "pretrain_best_step": result.best_step, "pretrain_val_accuracy": result.best_val["accuracy"],
                     "pretrain_seconds": round(result.seconds, 2), "pretrain_resumed_from": result.resumed_from})
    out = paths.init_dir(cell)
    with atomic_dir(out) as tmp:
        record = InitInfo(**info)
        sha = checkpoint.save(tmp / "backbone.pt", backbone.state_dict(), record.model_dump())
        records.save(record.model_copy(update={"backbone_sha256": sha}), tmp / "info.json")
    if resume is not None:
        clear_resume(resume)
    return out


def current(spec: CellSpec) -> bool:
    """Whether the start's initialization is already there, finished, from the same settings, code
    and data (a unit that was killed while finetuning then keeps it, and its finetuning's resume
    state); one from other settings is replaced."""
    folder = paths.init_dir(spec.start)
    if not (folder / "info.json").exists() or not (folder / "backbone.pt").exists():
        return False
    info = records.load(InitInfo, folder / "info.json")
    meta = paths.meta_path(spec.cell.task)
    return (info.status == "ok" and info.init_hash == spec.init_hash and meta.exists()
            and info.data_sha256 == records.load(DataMeta, meta).sha256["train"]
            and info.backbone_sha256 == file_sha256(folder / "backbone.pt"))


def _self_pretrain(spec: CellSpec, meta: DataMeta, backbone, parent_run_id: str | None) -> tuple:
    cell, cfg, device, init = spec.cell, spec.pretrain, resolve_device(spec.device), spec.init
    causal = init.kind == "causal_spt"
    ratio = init.mask_ratio or spec.task.mask_ratio
    pad, mask_id, vocab = meta.pad_id, meta.mask_id, len(meta.vocab)
    limit = getattr(backbone, "max_len", None)  # positions of a language-pretrained backbone
    train_split, val_split = load_split(cell.task, "train", limit), load_split(cell.task, "val", limit)
    steps, _ = spec.budgets(len(train_split))
    if cell.fraction != 1.0:  # the start's labelled rows, the very subset its cells finetune on
        train_split = train_split.subset(label_rows(len(train_split), cell.fraction,
                                                    derive_seed(spec.task.seed, "label-subset")))
    model = new_head(MaskedLM, backbone, vocab, derive_seed(cell.seed, "pretrain-head")).to(device)
    gen = torch.Generator().manual_seed(derive_seed(cell.seed, "pretrain-mask"))
    batches = batches_from(train_split, cfg.batch_size, derive_seed(cell.seed, "pretrain-order"), pad, device)

    def loss_fn(m, batch):
        tokens, mask, _ = batch  # labels are never used in pretraining
        if causal:
            return masked_lm_loss(m(tokens, mask), next_token_targets(tokens, mask))
        inputs, targets = mask_tokens(tokens, mask, ratio, mask_id, gen)
        return masked_lm_loss(m(inputs, mask), targets)

    def evaluate(m):
        if causal:
            return evaluate_causal_lm(m, val_split, cfg.eval_batch_size, pad, device)
        return evaluate_masked_lm(m, val_split, cfg.eval_batch_size, pad, mask_id, ratio,
                                  derive_seed(cell.seed, "pretrain-val-mask"), device)

    from components import tracking  # MLflow enters only at the stage boundary

    resume = resume_file("pretrain", cell, {
        "arch": spec.arch.model_dump(), "init": init.model_dump(), "phase": cfg.model_dump(),
        "task": spec.task.model_dump(), "data": meta.sha256["train"], "steps": steps,
        "seed": cell.seed, "fraction": cell.fraction, "device": device.type, "bf16": spec.bf16, "compile": spec.compile})
    earlier = read_meta(resume)
    name = f"pretrain-{cell.name}"
    tags = {**cell.tags(), "stage": "pretrain", "objective": "causal" if causal else "masked",
            "data_sha256": meta.sha256["train"]}
    try:
        with tracking.start_run(spec.experiment, name, tags, run_id=earlier and earlier["run_id"],
                                parent_run_id=parent_run_id) as t:
            if not t.reopened:
                t.log_params({"arch": spec.arch.model_dump(), "pretrain": cfg.model_dump(),
                              "init": init.model_dump(), "lr": cfg.lr, "steps": steps,
                              "mask_ratio": None if causal else ratio, **count_parameters(model)})
            result = train(model, batches, loss_fn, evaluate, cfg, steps,
                           progress(name, t.log_metrics), generators=[gen], checkpoint=resume,
                           meta={"run_id": t.run_id}, bf16=spec.bf16, compile=spec.compile, desc=name)
            model.load_state_dict(result.best_state)
            t.log_metrics({"best_val_token_accuracy": result.best_val["accuracy"], "best_step": result.best_step,
                           "pretrain_seconds": result.seconds})
    except Diverged as err:
        err.run_id, err.resume = t.run_id, resume
        raise
    return result, t.run_id, resume
