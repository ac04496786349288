"""LaS attention against the SDPA Transformer, per training step, side by side in one process:
the fast path (pooled values, one decay factor, one mask bias) and its materialized reference twin
(the paper's order of operations), bidirectional and causal, at long lengths.

    .venv/bin/python benchmarks/las_speed.py [--steps 5] [--lengths 1024 4096]

d_model 64, 2 layers, 4 heads, feed-forward x2, AdamW step on a classification loss over random
tokens; batch 8 at L <= 1024 and fewer above so the reference fits in memory (tokens per step
are printed). Writes reports/benchmarks/las_speed.{csv,md}.
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import time

import pandas as pd
import torch

from components.atomic import write_text
from components.config import LaSCfg, TransformerCfg
from components.models import Classifier, build_backbone, new_head
from components.models import las as las_module
from components.objectives import classification_loss
from components.paths import report_dir
from components.training.optim import build_optimizer

SIZE = dict(d_model=64, n_layers=2, n_heads=4, ff_mult=2)
VOCAB, CLASSES = 20, 10


def step_time(cfg, L: int, batch: int, steps: int, reference: bool = False, warmup: int = 2) -> float:
    """Seconds per AdamW training step (mean over `steps` after `warmup`)."""
    model = new_head(Classifier, build_backbone(cfg, VOCAB, 0, 0), CLASSES, 1)
    opt = build_optimizer(model, 1e-3, 0.01, (0.9, 0.98))
    g = torch.Generator().manual_seed(0)
    x = torch.randint(2, VOCAB, (batch, L), generator=g)
    mask = torch.ones(batch, L, dtype=torch.bool)
    y = torch.randint(0, CLASSES, (batch,), generator=g)
    real = las_module.LaSAttention.attend
    if reference:  # the materialized twin in place of the fast path
        las_module.LaSAttention.attend = lambda self, q, k, v, m: las_module.las_attend_ref(
            q, k, v, m, self.alphas, self.pool, self.causal)
    try:
        for i in range(warmup + steps):
            if i == warmup:
                start = time.perf_counter()
            loss, _, _ = classification_loss(model(x, mask), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return (time.perf_counter() - start) / steps
    finally:
        las_module.LaSAttention.attend = real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per step: batch = tokens // L (at least 1)")
    args = ap.parse_args()
    rows = []
    for L in args.lengths:
        batch = max(1, args.tokens // L)
        for causal in (False, True):
            base = step_time(TransformerCfg(**SIZE, causal=causal), L, batch, args.steps)
            las = LaSCfg(**SIZE, causal=causal, decay_max=0.1, pool=3)
            fast = step_time(las, L, batch, args.steps)
            ref = step_time(las, L, batch, args.steps, reference=True)
            rows.append({"L": L, "batch": batch, "causal": causal, "transformer_s": round(base, 4),
                         "las_s": round(fast, 4), "las_ref_s": round(ref, 4), "las_vs_transformer": round(fast / base, 2),
                         "ref_vs_fast": round(ref / fast, 2)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    where = (f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
             f"commit {commit}")
    out = report_dir() / "benchmarks"
    write_text(table.to_csv(index=False), out / "las_speed.csv")
    md = ["# LaS attention: seconds per training step", "",
          f"d_model 64, 2 layers, 4 heads, AdamW step, {args.steps} timed steps after 2 warm-up, "
          f"{args.tokens} tokens per step; {where}.", "",
          "| L | batch | causal | Transformer (SDPA) s | LaS s | LaS reference s | LaS / Transformer | reference / LaS |",
          "|---:|---:|---|---:|---:|---:|---:|---:|"]
    md += [f"| {r.L} | {r.batch} | {r.causal} | {r.transformer_s:.3f} | {r.las_s:.3f} | {r.las_ref_s:.3f} | "
           f"{r.las_vs_transformer:.2f}x | {r.ref_vs_fast:.2f}x |" for r in table.itertuples()]
    write_text("\n".join(md) + "\n", out / "las_speed.md")
    print("\n".join(md))


if __name__ == "__main__":
    main()
