"""Generation speed of the synthetic tasks, and their faithfulness statistics.

    .venv/bin/python benchmarks/generation.py [--images 400] [--listops 2000]

Pathfinder images per second at every resolution (hard), on one process and on every core;
ListOps rows per second at the cpu and paper settings; bit-task rows per second. Then the
statistics the reference gives for a faithful generator: ListOps (paper) label histogram and
length quantiles beside tasks.md §2.2, Pathfinder positive rate and a global-statistics
classifier's held-out accuracy (chance: 0.5). Prints tables and writes
reports/benchmarks/generation.{csv,md}.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd

from components.atomic import write_text
from components.config import BitMemoryCfg, BitXORCfg, ListOpsCfg, PathfinderCfg
from components.data import bits, listops, pathfinder
from components.paths import report_dir

LISTOPS_REF_QUANTILES = {5: 540, 25: 704, 50: 957, 75: 1312, 95: 1805}  # tasks.md §2.2 (simulated)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def speed(images: int, listops_rows: int) -> pd.DataFrame:
    rows, cores = [], os.cpu_count() or 1
    for res in (32, 64, 128, 256):
        n = max(images * 32 // res, 40)
        for workers in sorted({1, cores}):
            cfg = PathfinderCfg(resolution=res, workers=workers)
            _, s = timed(lambda: pathfinder.draw_many(cfg, n))
            rows.append({"task": f"pathfinder{res} hard", "workers": workers, "rows": n, "seconds": round(s, 2),
                         "rows_per_s": round(n / s, 1)})
    for setting in ("cpu", "paper"):
        cfg = ListOpsCfg(setting=setting)
        _, s = timed(lambda: listops.sample_expressions(cfg, np.random.default_rng(0), listops_rows))
        rows.append({"task": f"listops {setting}", "workers": 1, "rows": listops_rows, "seconds": round(s, 2),
                     "rows_per_s": round(listops_rows / s, 1)})
    for cfg in (BitMemoryCfg(n_train=20_000), BitXORCfg(n_train=20_000)):
        _, s = timed(lambda: bits.ROWS[cfg.kind](cfg, 20_000, np.random.default_rng(0)))
        rows.append({"task": cfg.kind, "workers": 1, "rows": 20_000, "seconds": round(s, 3),
                     "rows_per_s": round(20_000 / s, 1)})
    return pd.DataFrame(rows)


def listops_faithfulness(n: int) -> str:
    rows = listops.sample_expressions(ListOpsCfg(setting="paper"), np.random.default_rng(0), n)
    lengths = np.array([len(ids) for ids, _ in rows])
    freq = np.bincount([v for _, v in rows], minlength=10) / n
    q = " | ".join(f"p{k} {np.percentile(lengths, k):.0f} (ref {ref})" for k, ref in LISTOPS_REF_QUANTILES.items())
    labels = " ".join(f"{d}:{f:.3f}" for d, f in enumerate(freq))
    return (f"- ListOps paper setting, {n} rows: lengths {q}; mean {lengths.mean():.0f} (ref ≈1037)\n"
            f"- ListOps paper labels (ref: 0 and 9 ≈ 0.17, others 0.073-0.093): {labels}")


def pathfinder_faithfulness(n: int) -> str:
    cfg = PathfinderCfg(resolution=32, seed=7)
    g, counts = pathfinder.GEOMETRY[32], pathfinder.counts(cfg)
    drawn = [pathfinder.draw(g, *counts, np.random.default_rng([7, i])) for i in range(n)]
    y = np.array([label for _, label, _ in drawn])
    X = np.array([[img.mean(), (img > 0).sum(), np.linalg.norm(d["markers"][0] - d["markers"][1])]
                  for img, _, d in drawn])
    X = np.c_[(X - X.mean(0)) / X.std(0), np.ones(n)]
    half = n // 2
    w = np.linalg.lstsq(X[:half], 2.0 * y[:half] - 1, rcond=None)[0]
    acc = ((X[half:] @ w > 0) == y[half:]).mean()
    return (f"- Pathfinder-32 hard, {n} images: positive rate {y.mean():.3f}; a linear classifier on mean brightness, "
            f"lit-pixel count and marker distance, fit on {half} and scored on {n - half}: accuracy {acc:.3f} (chance 0.5)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=400, help="Pathfinder-32 images per timing (fewer at larger sizes)")
    ap.add_argument("--listops", type=int, default=2000, help="ListOps rows per timing")
    args = ap.parse_args()
    table = speed(args.images, args.listops)
    notes = "\n".join([listops_faithfulness(args.listops), pathfinder_faithfulness(args.images)])
    print(table.to_string(index=False), notes, sep="\n\n")
    out = report_dir() / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "generation.csv", index=False)
    header = f"# Generation speed\n\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores. " \
             f"`python benchmarks/generation.py --images {args.images} --listops {args.listops}`\n\n"
    md = ["| " + " | ".join(table.columns) + " |", "|---" * len(table.columns) + "|",
          *("| " + " | ".join(map(str, r)) + " |" for r in table.itertuples(index=False))]
    write_text(header + "\n".join(md) + "\n\n## Faithfulness\n\n" + notes + "\n", out / "generation.md")


if __name__ == "__main__":
    main()
