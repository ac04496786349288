"""Parameters and seconds per training step for every architecture in params.yaml, at one shared
setting: ListOps training batches of 32 (length-bucketed, as in finetuning), AdamW, classification.

    .venv/bin/python benchmarks/arch_speed.py [--steps 20] [--params params.yaml]

Prints a table and writes reports/benchmarks/arch_speed.{csv,md}. Reads data/listops if it was
materialized, else generates the split in memory from params.yaml.
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import time

import numpy as np
import pandas as pd
import torch

from components.atomic import write_text
from components.config import load_params
from components.data import listops
from components.data.batching import TokenSplit, train_stream
from components.models import Classifier, build_backbone, count_parameters, new_head
from components.objectives import classification_loss
from components.paths import report_dir, split_path
from components.stages.common import load_split, resolve_device
from components.training.optim import build_optimizer


def train_split(params) -> TokenSplit:
    if split_path("listops", "train").exists():
        return load_split("listops", "train")
    df = listops.generate(params.tasks["listops"])["train"]
    offsets = np.concatenate([[0], np.cumsum(df["input"].map(len).to_numpy())])
    return TokenSplit(np.concatenate(df["input"].to_list()).astype(np.int64), offsets, df["label"].to_numpy())


def time_arch(cfg, split, device, steps: int, warmup: int = 3, batch_size: int = 32) -> dict:
    backbone = build_backbone(cfg, len(listops.VOCAB), 0, 0, pretrained=cfg.kind == "fpt")
    if cfg.kind == "fpt":
        backbone.freeze()  # timed as fpt_frozen trains it
    model = new_head(Classifier, backbone, listops.N_CLASSES, 1).to(device)
    opt = build_optimizer(model, 1e-3, 0.01, (0.9, 0.98))
    stream = train_stream(split.lengths, batch_size, seed=0)
    tokens, start = 0, 0.0
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, tokens = time.perf_counter(), 0
        x, mask, y = (t.to(device) for t in split.batch(next(stream), 0))
        loss, _, _ = classification_loss(model(x, mask), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tokens += int(mask.sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    return {**count_parameters(model), "s_per_step": round(seconds, 4), "tokens_per_s": round(tokens / steps / seconds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    params = load_params(args.params)
    device, split = resolve_device(params.device), train_split(params)
    rows = []
    for name, cfg in params.archs.items():
        rows.append({"arch": name, "kind": cfg.kind, **time_arch(cfg, split, device, args.steps)})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    where = (f"{device} ({torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or 'cpu'}, "
             f"{torch.get_num_threads()} threads), torch {torch.__version__}, commit {commit}")
    out = report_dir() / "benchmarks"
    write_text(table.to_csv(index=False), out / "arch_speed.csv")
    md = ["# Architecture speed", "", f"ListOps batches of 32 (mean length ~137), AdamW step, {args.steps} timed steps "
          f"after 3 warm-up; {where}.", "", "| arch | kind | trainable params | total params | s / step | tokens / s |",
          "|---|---|---|---|---|---|"]
    md += [f"| {r.arch} | {r.kind} | {r.params_trainable:,} | {r.params_total:,} | {r.s_per_step:.4f} | {r.tokens_per_s:,} |"
           for r in table.itertuples()]
    write_text("\n".join(md) + "\n", out / "arch_speed.md")
    print("\n".join(md))


if __name__ == "__main__":
    main()
