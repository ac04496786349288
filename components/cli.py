"""`arena`: one subcommand per pipeline stage (what dvc.yaml calls), plus `grid` (the Prefect flow)."""
from __future__ import annotations

import argparse
import os
import sys

from components.config import ConfigError, load_params
from components.data.contract import SourceError


def _cell_args(p: argparse.ArgumentParser, fraction: bool) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--init", required=True)
    p.add_argument("--seed", required=True, type=int)
    if fraction:
        p.add_argument("--fraction", type=float, default=1.0, help="share of labelled training rows (default 1.0)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="arena", description=__doc__)
    ap.add_argument("--params", default="params.yaml", help="settings file (default: params.yaml)")
    sub = ap.add_subparsers(dest="command", required=True)
    mat = sub.add_parser("materialize", help="generate a task, or read its official files, into Parquet splits")
    mat.add_argument("--task", required=True)
    mat.add_argument("--from", dest="source", metavar="PATH", help="official files to read (overrides tasks.TASK.source)")
    for name, text in (("pretrain", "initialize a cell's backbone (random, language-pretrained or self-pretrained)"),
                       ("finetune", "finetune a cell"), ("evaluate", "test a finetuned cell")):
        _cell_args(sub.add_parser(name, help=text), fraction=name != "pretrain")
    tune = sub.add_parser("tune", help="run an arm's tuning trials (validation only) and select its settings")
    for flag in ("--task", "--arch", "--init"):
        tune.add_argument(flag, required=True)
    sub.add_parser("report", help="build reports/grid.{md,csv}")
    grid = sub.add_parser("grid", help="run the whole grid as a Prefect flow")
    grid.add_argument("--dry-run", action="store_true", help="list the cells that would run, are recorded, or are skipped")
    grid.add_argument("--concurrency", type=int, help="units of work at once (default: prefect.concurrency)")
    grid.add_argument("--deployment", help="run units on a work pool through this deployment, e.g. arena-cell/gpu")
    prof = sub.add_parser("profile", help="switch params.yaml to a named profile (smoke, cpu, paper, ...)")
    prof.add_argument("name")
    return ap


# Defaults the user's environment can override: no telemetry (it is outbound traffic), and time
# enough for Prefect's temporary server to start on a small machine (its default 20 s is not).
QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def main(argv: list[str] | None = None) -> int:
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    args = parser().parse_args(argv)
    try:
        params = load_params(args.params)
        if args.command == "profile":
            from components import profiles

            changed = profiles.apply(args.params, args.name)
            print(f"{args.params}: profile {args.name}; changed: {', '.join(changed) or 'nothing'}")
            return 0
        if args.command == "grid":
            if args.concurrency is not None and args.concurrency < 1:
                raise ConfigError(f"--concurrency {args.concurrency}: must be at least 1")
            if args.dry_run:
                from components.stages import plan

                print(plan.describe(params))
                return 0
            from prefect.settings import get_current_settings

            if (args.deployment or params.prefect.deployment) and not get_current_settings().api.url:
                raise ConfigError("grid: a deployment runs on a work pool, which needs a Prefect server: set "
                                  "PREFECT_API_URL (README, 'Prefect: a server, a GPU pool, workers')")
            from flows.grid import grid_flow

            state = grid_flow(args.params, args.concurrency, args.deployment, return_state=True)
            if not state.is_completed():
                print(f"arena: grid {state.name}: {state.message}", file=sys.stderr)
                return 1
            return 0
        if args.command in ("pretrain", "finetune", "evaluate", "tune"):
            cell = _cell(params, args)
            from components.stages import skip  # cheap: a skipped cell never imports torch

            if args.command != "tune" and (blocked := skip.upstream(params, args.command, cell)) is not None:
                print(skip.write(args.command, cell, *blocked))
                return 0
        import importlib  # only the stage that runs: the report's plotting stack stays out of training starts

        stage = importlib.import_module(f"components.stages.{args.command}")
        if args.command == "materialize":
            print(stage.run(params, args.task, args.source))
        elif args.command == "tune":
            print(stage.run(params, args.task, args.arch, args.init))
        elif args.command == "report":
            print(*stage.run(params), sep="\n")
        else:
            from components.stages.tune import resolve  # the arm's selected settings, when tuning is on

            print(stage.run(resolve(params, cell), cell))
    except (ConfigError, SourceError, FileNotFoundError) as err:
        print(f"arena: error: {err}", file=sys.stderr)
        return 2
    return 0


def _cell(params, args):
    from components.grid import Cell

    for flag, value, known in (("--task", args.task, params.tasks), ("--arch", args.arch, params.archs),
                               ("--init", args.init, params.inits)):
        if value not in known:
            raise ConfigError(f"{flag} {value}: not defined in params ({', '.join(sorted(known))})")
    fraction = getattr(args, "fraction", 1.0)
    if args.command == "tune":
        return Cell(args.task, args.arch, args.init, params.tuning.seed, 1.0, 0)
    if not 0 < fraction <= 1:
        raise ConfigError(f"--fraction {fraction}: must be in (0, 1]")
    return Cell(args.task, args.arch, args.init, args.seed, fraction)


if __name__ == "__main__":
    sys.exit(main())
