"""The training loop, pure with respect to its data: batches in, best-validation weights out.

The caller supplies the batches (as a function of the first step to produce, so a resumed run
continues the same sequence), a loss function, an evaluation function and a `log` callback
(MLflow in the stages, a list in tests). The returned state is the one with the best validation
score, never simply the last step's; `cfg.patience` stops early when validation stops improving.

Resumable: given `checkpoint`, the whole training state (weights, optimizer, step, best so far,
history, every random generator involved, the caller's `meta`) is written there atomically every
`cfg.checkpoint_every` steps. Calling `train` again with the same arguments continues from that
state, and on CPU ends with exactly the result of an uninterrupted run.
"""
from __future__ import annotations

import copy
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import torch
from torch import nn

from components.config import Phase
from components.training import checkpoint as ckpt
from components.training.optim import build_optimizer, lr_factor

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # tokens (B, L), mask (B, L), labels (B,)
BatchesFrom = Callable[[int], Iterator[Batch]]  # first step (0-based) -> the batches from there on
LossFn = Callable[[nn.Module, Batch], tuple[torch.Tensor, int, int]]  # -> loss, n correct, n counted
EvalFn = Callable[[nn.Module], dict[str, float]]  # -> metrics including "score" (higher is better)
LogFn = Callable[[dict[str, float], int], None]


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int, loss: float):
        super().__init__(f"loss is {loss} at step {step}")
        self.step = step


@dataclass
class TrainResult:
    best_state: dict[str, torch.Tensor]
    best_step: int
    best_val: dict[str, float]
    steps: int  # steps actually taken (fewer than the budget when stopped early)
    seconds: float
    tokens: int
    stopped_early: bool = False
    resumed_from: int = 0  # the step a checkpoint restored, 0 for a fresh start
    history: list[dict] = field(default_factory=list)


def _load(path: Path, device: torch.device | str = "cpu") -> Optional[dict]:
    """A resume checkpoint, or None when it cannot be read: then it is moved aside (to
    <name>.corrupt) with one line saying so, and training starts from step 0."""
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(blob, dict) or not {"model", "optimizer", "meta", "step"} <= set(blob):
            raise ValueError("not a resume checkpoint")
        return blob
    except Exception as err:  # noqa: BLE001 (truncated zip, wrong pickle, anything torch.load raises)
        aside = Path(path).with_suffix(".corrupt")
        os.replace(path, aside)
        print(f"warning: {path}: unreadable resume checkpoint ({type(err).__name__}); moved to {aside}, "
              "starting from step 0", file=sys.stderr, flush=True)
        return None


def read_meta(path: Optional[Path]) -> Optional[dict]:
    """The caller's `meta` stored in a resume checkpoint, or None when there is none (or it is corrupt)."""
    if path is None or not Path(path).exists():
        return None
    blob = _load(path)
    return None if blob is None else blob["meta"]


def train(model: nn.Module, batches: BatchesFrom, loss_fn: LossFn, evaluate: EvalFn, cfg: Phase,
          steps: int, log: LogFn, *, generators: Sequence[torch.Generator] = (),
          checkpoint: Optional[Path] = None, meta: Optional[dict] = None, bf16: bool = False,
          compile: bool = False, desc: str = "train") -> TrainResult:
    lr = cfg.lr
    opt = build_optimizer(model, lr, cfg.weight_decay, cfg.betas)
    for group in opt.param_groups:
        group["base_lr"] = group["lr"]
    device = next(model.parameters()).device
    forward = torch.compile(model, dynamic=True) if compile else model
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if bf16 and device.type == "cuda"
                else nullcontext())

    s = {"step": 0, "best_state": copy.deepcopy(model.state_dict()), "best_step": 0,
         "best_val": {"score": -math.inf}, "history": [], "seconds": 0.0, "tokens": 0,
         "window": [0.0, 0, 0, 0], "since_best": 0, "stopped_early": False}
    blob = _load(checkpoint, device) if checkpoint is not None and Path(checkpoint).exists() else None
    if blob is not None:
        s = _restore(blob, model, opt, generators)
    elif checkpoint is not None:  # a step-0 state: a run killed before its first periodic save still resumes
        _save(checkpoint, s, model, opt, generators, meta)
    resumed_from = s["step"]

    bar = _progress_bar(steps, resumed_from, desc)
    start = window_start = time.perf_counter()
    stream = batches(s["step"])
    while s["step"] < steps and not s["stopped_early"]:
        step = s["step"] = s["step"] + 1
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(step - 1, cfg.warmup_steps, steps, cfg.schedule)
        model.train()
        batch = next(stream)
        with autocast:
            loss, n_correct, n_counted = loss_fn(forward, batch)
        if not torch.isfinite(loss):
            raise Diverged(step, loss.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()

        n_tokens = int(batch[1].sum())
        s["tokens"] += n_tokens
        w = s["window"]
        s["window"] = w = [w[0] + loss.item(), w[1] + n_correct, w[2] + n_counted, w[3] + n_tokens]
        if step % cfg.log_every == 0 or step == steps:
            n, now = step % cfg.log_every or cfg.log_every, time.perf_counter()
            metrics = {"train_loss": w[0] / n, "train_accuracy": w[1] / max(w[2], 1),
                       "lr": lr * lr_factor(step - 1, cfg.warmup_steps, steps, cfg.schedule),  # main group
                       "tokens_per_s": w[3] / max(now - window_start, 1e-9)}
            log(metrics, step)
            _show(bar, step, metrics)
            s["window"], window_start = [0.0, 0, 0, 0], now
        else:
            _show(bar, step, None)
        if step % cfg.eval_every == 0 or step == steps:
            val = evaluate(model)
            log({f"val_{k}": v for k, v in val.items()}, step)
            s["history"].append({"step": step, **val})
            if val["score"] > s["best_val"]["score"]:
                s["best_state"], s["best_step"], s["best_val"] = copy.deepcopy(model.state_dict()), step, val
                s["since_best"] = 0
            else:
                s["since_best"] += 1
                s["stopped_early"] = (cfg.patience is not None and s["since_best"] >= cfg.patience
                                      and step < steps)
        if checkpoint is not None and step % cfg.checkpoint_every == 0 and step < steps:
            _save(checkpoint, {**s, "seconds": s["seconds"] + time.perf_counter() - start}, model, opt,
                  generators, meta)
    if bar is not None:
        bar.close()
    return TrainResult(s["best_state"], s["best_step"], s["best_val"], s["step"],
                       s["seconds"] + time.perf_counter() - start, s["tokens"], s["stopped_early"],
                       resumed_from, s["history"])


def _save(path: Path, s: dict, model: nn.Module, opt: torch.optim.Optimizer,
          generators: Sequence[torch.Generator], meta: Optional[dict]) -> None:
    blob = {**s, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "rng": torch.get_rng_state(), "generators": [g.get_state() for g in generators], "meta": meta or {}}
    if torch.cuda.is_available():
        blob["cuda_rng"] = torch.cuda.get_rng_state_all()
    ckpt.save_object(path, blob)


def _restore(blob: dict, model: nn.Module, opt: torch.optim.Optimizer, generators: Sequence[torch.Generator]) -> dict:
    model.load_state_dict(blob.pop("model"))
    opt.load_state_dict(blob.pop("optimizer"))
    torch.set_rng_state(blob.pop("rng").cpu())
    cuda_rng = blob.pop("cuda_rng", None)
    if cuda_rng is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in cuda_rng])
    for g, state in zip(generators, blob.pop("generators"), strict=True):
        g.set_state(state.cpu())
    blob.pop("meta")
    return blob


def _progress_bar(total: int, initial: int, desc: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are a nicety
        return None
    return tqdm(total=total, initial=initial, desc=desc, disable=None, leave=False, dynamic_ncols=True)


def _show(bar, step: int, metrics: Optional[dict]) -> None:
    if bar is None:
        return
    bar.update(step - bar.n)
    if metrics is not None:
        bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", acc=f"{metrics['train_accuracy']:.3f}",
                        tok_s=f"{metrics['tokens_per_s']:.0f}", refresh=False)
