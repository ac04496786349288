"""The training loop, pure with respect to files: batches in, best-validation weights out.

The caller supplies the batches, a loss function, an evaluation function and a `log` callback
(MLflow in the stages, a list in tests). The returned state is the one with the best validation
score, never simply the last step's.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import nn

from components.config import OptimCfg
from components.training.optim import build_optimizer, lr_factor

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # tokens (B, L), mask (B, L), labels (B,)
LossFn = Callable[[nn.Module, Batch], tuple[torch.Tensor, int, int]]  # -> loss, n correct, n counted
EvalFn = Callable[[nn.Module], dict[str, float]]  # -> metrics including "score" (higher is better)
LogFn = Callable[[dict[str, float], int], None]


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainResult:
    best_state: dict[str, torch.Tensor]
    best_step: int
    best_val: dict[str, float]
    steps: int
    seconds: float
    tokens: int
    history: list[dict] = field(default_factory=list)


def train(model: nn.Module, batches: Iterator[Batch], loss_fn: LossFn, evaluate: EvalFn,
          cfg: OptimCfg, lr: float, log: LogFn) -> TrainResult:
    opt = build_optimizer(model, lr, cfg.weight_decay, cfg.betas)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps))
    best = TrainResult(copy.deepcopy(model.state_dict()), 0, {"score": -math.inf}, 0, 0.0, 0)
    start, window_start, tokens = time.perf_counter(), time.perf_counter(), 0
    loss_sum, correct, counted, window_tokens = 0.0, 0, 0, 0
    for step in range(1, cfg.steps + 1):
        model.train()
        batch = next(batches)
        loss, n_correct, n_counted = loss_fn(model, batch)
        if not torch.isfinite(loss):
            raise Diverged(f"loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        n_tokens = int(batch[1].sum())
        tokens += n_tokens
        loss_sum, correct, counted, window_tokens = (loss_sum + loss.item(), correct + n_correct,
                                                     counted + n_counted, window_tokens + n_tokens)
        if step % cfg.log_every == 0 or step == cfg.steps:
            n = step % cfg.log_every or cfg.log_every
            now = time.perf_counter()
            log({"train_loss": loss_sum / n, "train_accuracy": correct / max(counted, 1),
                 "lr": lr * lr_factor(step - 1, cfg.warmup_steps, cfg.steps),  # the main group's rate
                 "tokens_per_s": window_tokens / (now - window_start)}, step)
            loss_sum, correct, counted, window_tokens, window_start = 0.0, 0, 0, 0, now
        if step % cfg.eval_every == 0 or step == cfg.steps:
            val = evaluate(model)
            log({f"val_{k}": v for k, v in val.items()}, step)
            best.history.append({"step": step, **val})
            if val["score"] > best.best_val["score"]:
                best.best_state, best.best_step, best.best_val = copy.deepcopy(model.state_dict()), step, val
    best.steps, best.seconds, best.tokens = cfg.steps, time.perf_counter() - start, tokens
    return best
