"""The stage commands of `arena` (what dvc.yaml calls): materialize, tune, pretrain, finetune,
evaluate, report, and `run` (one unit: pretrain -> finetune -> evaluate). Each resolves its cell's
settings once (components/spec.py) and calls the stage. The entry point that adds the Prefect
commands (`grid`, `profile`) is flows/cli.py."""
from __future__ import annotations

import argparse
import os
import sys

from components.config import ConfigError, Params, load_params
from components.data.contract import SourceError

# Defaults the user's environment can override: no telemetry (it is outbound traffic), and time
# enough for Prefect's temporary server to start on a small machine (its default 20 s is not).
QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def errors() -> tuple[type[BaseException], ...]:
    """What the CLI reports in one line with exit 2 (the MLflow store's errors once it is loaded)."""
    found = [ConfigError, SourceError, FileNotFoundError]
    if "components.tracking" in sys.modules:
        found.append(sys.modules["components.tracking"].StoreError)
    return tuple(found)



def _cell_args(p: argparse.ArgumentParser, fraction: str) -> None:
    for flag in ("--task", "--arch", "--init"):
        p.add_argument(flag, required=True)
    p.add_argument("--seed", required=True, type=int)
    if fraction == "one":
        p.add_argument("--fraction", type=float, default=1.0, help="share of labelled training rows (default 1.0)")
    elif fraction == "many":
        p.add_argument("--fraction", type=float, action="append", dest="fractions",
                       help="a label fraction to finetune (repeat; default: grid.fractions)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="arena", description=__doc__)
    ap.add_argument("--params", default="params.yaml", help="settings file (default: params.yaml)")
    sub = ap.add_subparsers(dest="command", required=True)
    mat = sub.add_parser("materialize", help="generate a task, or read its official files, into Parquet splits")
    mat.add_argument("--task", required=True)
    mat.add_argument("--from", dest="source", metavar="PATH", help="official files to read (overrides tasks.TASK.source)")
    tune = sub.add_parser("tune", help="run an arm's tuning trials (validation only) and select its settings")
    for flag in ("--task", "--arch", "--init"):
        tune.add_argument(flag, required=True)
    for name, text, fraction in (
            ("pretrain", "initialize a cell's backbone (random, language-pretrained or self-pretrained)", "one"),
            ("finetune", "finetune a cell", "one"), ("evaluate", "test a finetuned cell", "one"),
            ("run", "a cell's starts: pretrain, then finetune and evaluate at each fraction", "many")):
        _cell_args(sub.add_parser(name, help=text), fraction)
    sub.add_parser("report", help="build reports/grid.{md,html,csv}")
    return ap


def quiet() -> None:
    import logging

    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    # MLflow logs a locked SQLite store at ERROR before raising; tracking._retry waits that out, and
    # an error that remains is reported in one line, so its own traceback would only add noise
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def run_stage(params: Params, args: argparse.Namespace) -> None:
    """Run the stage `args.command` names and print what it wrote."""
    import importlib  # only the stage that runs: the report's plotting stack stays out of training starts

    if args.command == "materialize":
        from components.stages import materialize

        print(materialize.run(params, args.task, args.source))
        return
    if args.command == "report":
        from components.stages import report

        print(*report.run(params), sep="\n")
        return
    _check_names(params, args)
    if args.command == "tune":
        from components.stages import tune

        _store()
        print(tune.run(params, args.task, args.arch, args.init))
        return
    from components.grid import Cell
    from components.spec import resolve

    if args.command == "run":
        from components.stages.unit import run_unit

        _store()
        from components.stages import skip

        fractions = args.fractions or params.grid.fractions
        units: dict = {}  # one per pretraining start: self-pretraining sees each fraction's own rows
        for f in fractions:
            spec = resolve(params, Cell(args.task, args.arch, args.init, args.seed, _fraction(f)))
            if spec.skip or spec.blocked:  # its record says why; it never shares a start with a runnable cell
                status, reason = skip.upstream(spec, "evaluate")
                skip.write("evaluate", spec.cell, status, reason)
                print(f"{spec.name}: {status}: {reason}")
            else:
                units.setdefault(spec.start, []).append(spec)
        for specs in units.values():
            for name, record in run_unit(specs, params=params).items():
                shown = f"test accuracy {100 * record.test_accuracy:.2f}%" if record.test_accuracy is not None \
                    else f"{record.status}: {record.reason}"
                print(f"{name}: {shown}")
        return
    spec = resolve(params, Cell(args.task, args.arch, args.init, args.seed, _fraction(getattr(args, "fraction", 1.0))))
    if spec.skip or spec.blocked:  # cheap: a skipped cell never imports torch
        from components.stages import skip

        print(skip.write(args.command, spec.start if args.command == "pretrain" else spec.cell,
                         *skip.upstream(spec, args.command)))
        return
    from components.stages.unit import hold

    _store()
    stage = importlib.import_module(f"components.stages.{args.command}")
    with hold(spec.start):  # every stage of a start's cells: one process at a time
        print(stage.run(spec))


def _store() -> None:
    from components import tracking

    tracking.check_store()


def _check_names(params: Params, args: argparse.Namespace) -> None:
    for flag, value, known in (("--task", args.task, params.tasks), ("--arch", args.arch, params.archs),
                               ("--init", args.init, params.inits)):
        if value not in known:
            raise ConfigError(f"{flag} {value}: not defined in params ({', '.join(sorted(known))})")


def _fraction(f: float) -> float:
    if not 0 < f <= 1:
        raise ConfigError(f"--fraction {f}: must be in (0, 1]")
    return f


def interrupted(err: KeyboardInterrupt) -> int:
    """One line for Ctrl-C or SIGTERM; the exit status a shell expects (130, 143)."""
    from components.signals import Terminated

    print(f"arena: stopped ({err or 'interrupted'}); open MLflow runs end KILLED, a re-run resumes",
          file=sys.stderr)
    return 143 if isinstance(err, Terminated) else 130


def main(argv: list[str] | None = None, ap: argparse.ArgumentParser | None = None) -> int:
    from components import signals

    quiet()
    signals.install()
    args = (ap or parser()).parse_args(argv)
    try:
        run_stage(load_params(args.params), args)
    except KeyboardInterrupt as err:
        return interrupted(err)
    except errors() as err:
        print(f"arena: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
