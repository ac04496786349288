"""`arena`, the command: the stage commands of components/cli.py, plus the two that belong to
the orchestration layer: `grid` (the whole grid as a Prefect flow) and `profile` (switch
params.yaml to a named profile)."""
from __future__ import annotations

import atexit
import gc
import sys

from components import cli
from components.config import ConfigError, load_params


def parser():
    ap = cli.parser()
    sub = next(a for a in ap._actions if a.dest == "command")  # the subcommands of components/cli.py
    grid = sub.add_parser("grid", help="run the whole grid as a Prefect flow")
    grid.add_argument("--dry-run", action="store_true", help="list the cells that would run, are recorded, or are skipped")
    grid.add_argument("--concurrency", type=int, help="units of work at once (default: prefect.concurrency)")
    grid.add_argument("--deployment", help="run units on a work pool through this deployment, e.g. arena-cell/gpu")
    grid.add_argument("--no-report", action="store_true", help="leave the report to `arena report` (DVC's report stage)")
    prof = sub.add_parser("profile", help="switch params.yaml to a named profile (smoke, cpu, paper, ...)")
    prof.add_argument("name")
    return ap


def main(argv: list[str] | None = None) -> int:
    from components import signals

    # The interpreter's exit collects the whole heap (~500k objects once torch, MLflow and Prefect
    # are in): 1.5-2.5 s of such a command (py-spy). Frozen at exit (after the atexit handlers of
    # torch, MLflow and Prefect, which register later), the heap is left to the OS; every atexit
    # handler and weakref finalizer still runs.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    cli.quiet()
    signals.install()
    args = parser().parse_args(argv)
    try:
        params = load_params(args.params)
        if args.command == "profile":
            from flows import profiles

            changed = profiles.apply(args.params, args.name)
            print(f"{args.params}: profile {args.name}; changed: {', '.join(changed) or 'nothing'}")
        elif args.command == "grid":
            return grid(params, args)
        else:
            cli.run_stage(params, args)
    except KeyboardInterrupt as err:
        return cli.interrupted(err)
    except cli.errors() as err:
        print(f"arena: error: {err}", file=sys.stderr)
        return 2
    return 0


def grid(params, args) -> int:
    if args.concurrency is not None and args.concurrency < 1:
        raise ConfigError(f"--concurrency {args.concurrency}: must be at least 1")
    from components import tracking

    tracking.check_store()
    if args.dry_run:
        from components.stages import plan

        print(plan.describe(params))
        return 0
    from prefect.settings import get_current_settings

    if (args.deployment or params.prefect.deployment) and not get_current_settings().api.url:
        raise ConfigError("grid: a deployment runs on a work pool, which needs a Prefect server: set "
                          "PREFECT_API_URL (docs/scale-out.md)")
    from flows.grid import grid_flow

    state = grid_flow(args.params, args.concurrency, args.deployment, return_state=True, build_report=not args.no_report)
    if not state.is_completed():
        print(f"arena: grid {state.name}: {state.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
