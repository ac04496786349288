"""Initialize a cell's backbone: artifacts/init/<task>/<arch>/<init>/seed<seed>/{backbone.pt,info.json}.

- `scratch`: the seeded random initialization, untrained (so scratch and SPT cells of one seed
  start from the very same weights before pretraining).
- `masked_spt`: masked-token denoising on the task's own *training inputs* (labels unused), the
  checkpoint with the best validation masked-token accuracy is kept. Tracked as an MLflow run
  with tag stage=pretrain.
"""
from __future__ import annotations

from pathlib import Path

import torch

from components import paths
from components.config import Params
from components.data.batching import train_stream
from components.atomic import write_json
from components.evaluation import evaluate_masked_lm
from components.models import MaskedLM, build_backbone, count_parameters, new_head
from components.objectives import mask_tokens, masked_lm_loss
from components.stages.common import derive_seed, load_meta, load_split, progress, resolve_device
from components.training import checkpoint
from components.training.loop import train


def run(params: Params, task: str, arch: str, init: str, seed: int) -> Path:
    meta = load_meta(task)
    arch_cfg = params.archs[arch]
    backbone = build_backbone(arch_cfg, len(meta["vocab"]), meta["pad_id"], derive_seed(seed, "init"))
    out = paths.init_dir(task, arch, init, seed)
    info = {"task": task, "arch": arch, "init": init, "seed": seed, "data_sha256": meta["sha256"]["train"],
            "pretrain_run_id": None, "pretrain_steps": 0, "pretrain_tokens": 0}
    if init == "masked_spt":
        info.update(_masked_spt(params, meta, backbone, task, arch, seed))
    elif init != "scratch":
        raise ValueError(f"init '{init}' is not known to the pretrain stage")
    info["backbone_sha256"] = checkpoint.save(out / "backbone.pt", backbone.state_dict(), info)
    write_json(info, out / "info.json")
    return out


def _masked_spt(params: Params, meta: dict, backbone, task: str, arch: str, seed: int) -> dict:
    cfg, device = params.pretrain, resolve_device(params.device)
    pad, mask_id = meta["pad_id"], meta["mask_id"]
    train_split, val_split = load_split(task, "train"), load_split(task, "val")
    model = new_head(MaskedLM, backbone, len(meta["vocab"]), derive_seed(seed, "pretrain-head")).to(device)
    gen = torch.Generator().manual_seed(derive_seed(seed, "pretrain-mask"))
    stream = train_stream(train_split.lengths, cfg.batch_size, derive_seed(seed, "pretrain-order"))
    batches = (tuple(t.to(device) for t in train_split.batch(rows, pad)) for rows in stream)

    def loss_fn(m, batch):
        tokens, mask, _ = batch  # labels are never used in pretraining
        inputs, targets = mask_tokens(tokens, mask, cfg.mask_ratio, mask_id, gen)
        return masked_lm_loss(m(inputs, mask), targets)

    def evaluate(m):
        return evaluate_masked_lm(m, val_split, cfg.eval_batch_size, pad, mask_id, cfg.mask_ratio,
                                  derive_seed(seed, "pretrain-val-mask"), device)

    from components import tracking  # MLflow enters only at the stage boundary

    cell_tags = {"task": task, "arch": arch, "init": "masked_spt", "seed": str(seed), "stage": "pretrain"}
    with tracking.start_run(params.tracking.experiment, f"pretrain-{task}-{arch}-s{seed}", cell_tags) as t:
        t.log_params({"arch": params.archs[arch].model_dump(), "pretrain": cfg.model_dump(),
                      "lr": cfg.lr[arch], **count_parameters(model)})
        log = progress(f"pretrain-{task}-{arch}-s{seed}", t.log_metrics)
        result = train(model, batches, loss_fn, evaluate, cfg, cfg.lr[arch], log)
        model.load_state_dict(result.best_state)
        t.log_metrics({"best_val_masked_accuracy": result.best_val["accuracy"], "best_step": result.best_step,
                       "pretrain_seconds": result.seconds})
    return {"pretrain_run_id": t.run_id, "pretrain_steps": result.steps, "pretrain_tokens": result.tokens,
            "pretrain_best_step": result.best_step, "pretrain_val_masked_accuracy": result.best_val["accuracy"],
            "pretrain_seconds": round(result.seconds, 2)}
