"""Cells per hour on this machine for 1 and 2 concurrent units of the grid flow, and the torch
threads each unit gets: the measurement behind `prefect.concurrency` in the `cpu` profile.

    .venv/bin/python benchmarks/concurrency.py [--task digits] [--steps 300] [--seeds 0 1]

Runs `arena grid` in a fresh temp directory per setting (its own MLflow store and Prefect home,
the task materialized once and copied in), on params.yaml's task and model sizes, with the
Transformer and S4D from scratch and self-pretrained, no tuning, `--steps` per phase. Settings:
1 unit with every core's threads; 2 units each asking for every core's threads (oversubscribed);
2 units sharing the cores (`prefect.threads: null`, the default: cores / concurrency each). Wall time counts the whole `arena grid` command, Prefect's
local server included. Writes reports/benchmarks/concurrency.{csv,md}.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from _shared import child, install, markdown  # benchmarks/_shared.py: children die with the script
from components.atomic import write_text
from components.paths import report_dir

ROOT = Path(__file__).resolve().parents[1]
ARENA = str(Path(sys.executable).parent / "arena")


def params_for(task: str, steps: int, seeds: list[int], archs: list[str], inits: list[str]) -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["grid"].update(tasks=[task], archs=archs, inits=inits, seeds=seeds, fractions=[1.0], exclude=[])
    raw["tuning"]["trials"] = 1
    for phase in ("pretrain", "finetune"):
        raw[phase].update(steps=steps, epochs=None, steps_by_arch={}, steps_by_task={}, steps_by_task_arch={}, eval_every=max(1, steps // 3))
    return raw


def run(raw: dict, data: Path, concurrency: int, threads: int | None) -> float:
    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        tmp = Path(tmp)
        shutil.copytree(data, tmp / "data")
        prefect = {**raw["prefect"], "concurrency": concurrency, "threads": threads}
        (tmp / "params.yaml").write_text(yaml.safe_dump({**raw, "prefect": prefect}))
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "PREFECT_HOME": str(tmp / "prefect"),
               "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)
        t0 = time.perf_counter()
        done = child([ARENA, "grid", "--no-report"], cwd=tmp, env=env)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"arena grid failed (concurrency {concurrency}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        return wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="digits")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--archs", nargs="+", default=["transformer", "s4d"])
    ap.add_argument("--inits", nargs="+", default=["scratch", "masked_spt"])
    args = ap.parse_args()
    install()
    raw = params_for(args.task, args.steps, args.seeds, args.archs, args.inits)
    cells = len(args.seeds) * len(args.archs) * len(args.inits)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="arena-bench-data-") as tmp:
        (Path(tmp) / "params.yaml").write_text(yaml.safe_dump(raw))
        subprocess.run([ARENA, "materialize", "--task", args.task], cwd=tmp, check=True, capture_output=True)
        rows = []
        for concurrency, threads in ((1, None), (2, cores), (2, None)):
            wall = run(raw, Path(tmp) / "data", concurrency, threads)
            row = {"task": args.task, "cells": cells, "steps_per_phase": args.steps, "concurrency": concurrency,
                   "threads": threads or max(1, cores // concurrency), "wall_s": round(wall, 1),
                   "cells_per_hour": round(3600 * cells / wall, 1)}
            print(row, flush=True)
            rows.append(row)
    df = pd.DataFrame(rows)
    base = df["cells_per_hour"].iloc[0]
    df["vs_one_unit"] = (df["cells_per_hour"] / base).round(2)
    out = report_dir() / "benchmarks"
    write_text(df.to_csv(index=False), out / "concurrency.csv")
    write_text(f"# Concurrent units of the grid flow ({args.task}, {cores} cores)\n\n"
               f"`{' '.join(['benchmarks/concurrency.py', *sys.argv[1:]])}`: {cells} cells ({', '.join(args.archs)} x "
               f"{', '.join(args.inits)} x seeds {args.seeds}), {args.steps} steps per phase, no tuning; wall time of "
               "`arena grid --no-report` including Prefect's local server.\n\n" + markdown(df) + "\n",
               out / "concurrency.md")


if __name__ == "__main__":
    main()
