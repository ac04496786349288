"""Build the report from every cell's metrics file: reports/grid.{csv,md,html}, the figures under
reports/figures/, reports/metrics.json (for `dvc metrics show`) and the learning curves as
reports/plots/learning_curves.csv (for `dvc plots show`). Learning curves come from MLflow and
SSM kernels from the pretraining checkpoints, where this machine has them; a figure whose inputs
are missing is left out, with a line saying so."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from components import paths, records, selection, tuning
from components.atomic import atomic_path, write_text
from components.config import Params
from components.grid import Cell, arms, cells, excluded, skip_reason, trial_cells
from components.records import CellRecord
from components.references import load as load_references
from components.report import figures as fig
from components.report.claims import check
from components.report.document import Figure, to_markdown
from components.report.html import to_html
from components.report.tables import aggregate, budget, document

FIGURES = "figures"


def _rows(cells_: list[Cell]) -> list[dict]:
    return [records.load(CellRecord, paths.metrics_path(c)).row() for c in cells_]


def collect(params: Params) -> pd.DataFrame:
    """One row per grid cell, except those a `grid.exclude` rule leaves out (a wide product with
    rules would otherwise fill the tables with rows that were never meant to run)."""
    results = pd.DataFrame(_rows([c for c in cells(params) if not excluded(params, c)]))
    for task, cfg in params.tasks.items():  # Bit Memory's chance is not 50% per bit (components/data/bits.py)
        if cfg.kind == "bit_memory" and len(results):
            results.loc[results["task"] == task, "majority_accuracy"] = copy_baseline(cfg)
    return results


def copy_baseline(cfg) -> float:
    """Bit Memory's trivial accuracy: copy the query's visible bits, guess the zeroed ones."""
    return 1.0 - cfg.mask_prob / 2


def collect_tuning(params: Params) -> tuple[pd.DataFrame, dict[tuple, dict]]:
    """Every arm's selection and its trials' records, where they were made under the present
    `tuning` and training settings (a leftover from another budget or setting is not this grid's)."""
    trials, selections = [], {}
    if params.tuning.trials == 1:
        return pd.DataFrame(), {}
    for arm in arms(params):
        if (sel := selection.load_selection(params, *arm)) is None:
            continue
        selections[arm] = sel.model_dump()
        trials += _rows([c for c in trial_cells(params, *arm)
                         if skip_reason(params, c) is None and paths.metrics_path(c).exists()])
    return pd.DataFrame(trials), selections


SPENT = ("Steps and tokens count pretraining toward the arm that uses it; time is training wall time; runs "
         "that diverged or failed count nothing (their partial compute is not recorded).")


def tuning_note(params: Params) -> str:
    return _tuning_text(params) + _fixed_ssm_lr(params)


def _fixed_ssm_lr(params: Params) -> str:
    """SSM parameters have their own learning rate (S4's convention), outside the search space."""
    rates = {a: params.archs[a].ssm_lr for a in params.grid.archs if hasattr(params.archs[a], "ssm_lr")}
    if not rates:
        return ""
    shown = ", ".join(f"{a} {lr:g}" for a, lr in rates.items())
    return f" The SSM parameters' own learning rate (`ssm_lr`: {shown}) is fixed, not tuned."


def _tuning_text(params: Params) -> str:
    cfg = params.tuning
    if cfg.trials == 1:
        return ("No tuning (`tuning.trials: 1`): every arm ran the shared defaults of `pretrain` and `finetune` "
                "(per-architecture learning rates as declared there). " + SPENT)
    space = ", ".join(f"`{k}` {'log-' if r.log else ''}uniform in [{r.low:g}, {r.high:g}]" + (" (integer)" if r.integer else "")
                      for k, r in sorted(cfg.space.items()))
    n = cfg.trials - cfg.defaults_first
    points = (f"trial 0 each architecture's declared defaults (`pretrain` and `finetune` as written), then the "
              f"first {n} quasi-random point{'s' if n > 1 else ''}" if cfg.defaults_first else "the same quasi-random points")
    return (f"Every (task, arch, init) arm had the same declared budget: {cfg.trials} trials, {points} "
            f"(scrambled Sobol, seed {cfg.seed}, the same for every arm) of the space {space}; "
            f"arms that do not pretrain ignore `pretrain.*`. Trials train on seed {cfg.seed}"
            + (f", on {100 * cfg.budget_share:g}% of each phase's step budget," if cfg.budget_share < 1 else "")
            + " and are scored on validation data only; "
            f"selection: {tuning.RULE}. The selected settings then ran on each of the arm's grid seeds, "
            "whose test splits were read once each. " + SPENT)


def setting_note(params: Params, task: str) -> str:
    """How this task's setting differs from the papers' ("" when it does not)."""
    cfg, notes = params.tasks[task], []
    if cfg.kind == "bit_memory":
        notes.append(f"chance here is copying the query's visible bits and guessing the rest "
                     f"({100 * copy_baseline(cfg):.0f}% per bit), not 50%")
    if cfg.source is None and getattr(cfg, "setting", None) != "paper":
        if cfg.kind == "listops":
            notes.append(f"ListOps of lengths {cfg.min_length}–{cfg.max_length} and depth {cfg.max_depth} with "
                         f"{cfg.n_train:,} training rows (LRA: 500–2000, depth 10, 96,000)")
        elif cfg.kind == "pathfinder":
            notes.append(f"{cfg.n_train:,} training images (LRA: 160,000)")
    semi = [i for i in params.grid.inits if getattr(params.inits[i], "pretrain_rows", "labelled") == "all"]
    if semi and any(f < 1.0 for f in params.grid.fractions):
        notes.append(f"{', '.join(semi)} self-pretrain on every training input whatever the label fraction: "
                     "semi-supervised, not the papers' protocol, so no SPT claim rests on them")
    if params.profile != "paper":
        sizes = ", ".join(f"{a} d{params.archs[a].d_model}×{params.archs[a].n_layers}" for a in params.grid.archs
                          if hasattr(params.archs[a], "d_model"))
        notes.append(f"models at `{params.profile}` sizes ({sizes})" if sizes else f"`{params.profile}` profile")
    return "; ".join(notes)


def scale_note(params: Params, results: pd.DataFrame) -> str:
    """At what scale and budget the grid ran, in a sentence for the report's headline."""
    archs = [params.archs[a] for a in params.grid.archs]
    sizes = sorted({f"d{c.d_model}×{c.n_layers}" for c in archs if hasattr(c, "d_model")})
    ok = results.get("status", pd.Series("ok", index=results.index)).fillna("ok") == "ok"
    keys = [k for k in ("task", "arch", "init", "fraction") if k in results]
    counts = results[ok].groupby(keys)["seed"].nunique() if keys and "seed" in results and ok.any() else pd.Series(dtype=int)
    lo, hi = (int(counts.min()), int(counts.max())) if len(counts) else (len(params.grid.seeds),) * 2
    seeds = f"{lo}" if lo == hi else f"{lo}–{hi}"
    steps = []
    for phase in ("pretrain", "finetune"):
        col = pd.to_numeric(results.get(f"{phase}_steps", pd.Series(dtype=float)), errors="coerce")
        col = col[results.get("status", pd.Series("ok", index=results.index)).fillna("ok") == "ok"]
        col = col[col > 0]
        if len(col):
            lo, hi = int(col.min()), int(col.max())
            steps.append(f"{phase} {lo:,}" + (f"–{hi:,}" if hi != lo else "") + " steps")
    tuned = (f"{params.tuning.trials} tuning trials per arm" if params.tuning.trials > 1 else "no tuning")
    return (f"Profile `{params.profile}`: models {', '.join(sizes) or 'as configured'}, {seeds} seed{'s' * (seeds != '1')} "
            f"per cell, {tuned}, {' and '.join(steps) or 'no finished cell'} per cell.")


def _histories(params: Params, results: pd.DataFrame, task: str) -> dict[str, pd.DataFrame]:
    """{arch · init: (step, value, seed) of every finished seed's validation accuracy} at all labels."""
    from components import tracking

    out: dict[str, list[pd.DataFrame]] = {}
    for r in results[(results["task"] == task) & (results["status"] == "ok")].itertuples():
        if getattr(r, "fraction", 1.0) == 1.0 and isinstance(getattr(r, "run_id", None), str):
            points = tracking.history(r.run_id, "val_accuracy")
            if points:
                out.setdefault(f"{r.arch} · {r.init}", []).append(
                    pd.DataFrame(points, columns=["step", "value"]).assign(seed=r.seed))
    return {name: pd.concat(frames, ignore_index=True) for name, frames in out.items()}


def _kernels(params: Params, task: str) -> dict[str, dict[str, list]]:
    """{ssm arch: {init: per-layer max |kernel| curves}} from pretraining checkpoints on this machine."""
    from components.models import build_backbone
    from components.stages.common import backbone_inputs, load_meta
    from components.training import checkpoint

    out: dict[str, dict[str, list]] = {}
    if not paths.meta_path(task).exists():
        return out
    meta = load_meta(task)
    length = int(meta.model_length("train", "max"))
    for arch in params.grid.archs:
        if params.archs[arch].kind not in ("s4d", "dlr"):
            continue
        for init in params.grid.inits:
            kind = params.inits[init].kind
            path = paths.init_dir(Cell(task, arch, init, params.grid.seeds[0])) / "backbone.pt"
            if kind not in ("scratch", "masked_spt", "causal_spt") or params.inits[init].total_steps or not path.exists():
                continue
            backbone = build_backbone(params.archs[arch], **backbone_inputs(meta), seed=0)
            backbone.load_state_dict(checkpoint.load(path)[0])
            out.setdefault(arch, {})["scratch (init)" if kind == "scratch" else init] = fig.kernel_decay_curves(backbone, length)
    return out


def _las_arms(params: Params) -> dict[str, str]:
    arms = {}
    for a in params.grid.archs:
        cfg = params.archs[a]
        if cfg.kind == "transformer" and not cfg.causal and cfg.block_size is None:
            arms[a] = f"vanilla ({a})"
        elif cfg.kind in ("las", "las_chunk"):
            arms[a] = ("smoothing only" if cfg.decay_max == 0 else "decay only" if cfg.pool == 1 else "LaS") + f" ({a})"
    return arms


def figures_for(params: Params, table: pd.DataFrame, results: pd.DataFrame, task: str) -> tuple[list[Figure], pd.DataFrame]:
    """The task's figures, and its learning curves as rows (cell, step, val_accuracy)."""
    out, curves = [], _histories(params, results, task)
    drawn = [(f"{task}-heatmap", fig.heatmap(table, task), f"{task}: test accuracy (%) per architecture and initialization"),
             (f"{task}-curves", fig.learning_curves(curves), f"{task}: validation accuracy during finetuning (MLflow)"),
             (f"{task}-data", fig.data_efficiency(table, task), f"{task}: test accuracy against the share of labels"),
             (f"{task}-las", fig.las_ablation(table, task, _las_arms(params)), f"{task}: LaS ablation, from scratch")]
    for arch, curves_by_init in _kernels(params, task).items():
        if len(curves_by_init) > 1:
            drawn.append((f"{task}-{arch}-kernels", fig.kernel_decay(curves_by_init),
                           f"{task}, {arch}: max |kernel| over channels against distance, per layer: the initial "
                           "(HiPPO-style) kernels and those learned by self-pretraining (SPT paper, Figure 4)"))
    out = [Figure(name, png, caption) for name, png, caption in drawn if png is not None]
    rows = [{"cell": cell, "seed": int(seed), "step": int(s), "val_accuracy": float(v)} for cell, df in curves.items()
            for s, v, seed in zip(df["step"], df["value"], df["seed"])]
    return out, pd.DataFrame(rows, columns=["cell", "seed", "step", "val_accuracy"])


def run(params: Params) -> list[Path]:
    results = collect(params)
    table = aggregate(results)
    out = paths.report_dir()
    tasks = list(dict.fromkeys(table["task"]))
    drawn, curves = {}, []
    for task in tasks:
        drawn[task], rows = figures_for(params, table, results, task)
        curves.append(rows.assign(task=task))
    from components import tracking

    left_out = sum(excluded(params, c) for c in cells(params))
    context = (f"Profile `{params.profile}`, {len(results)} cells"
               + (f" ({left_out} more of the product left out by `grid.exclude`)" if left_out else "")
               + f", code {tracking.git_commit()}. Built by `arena report` from metrics/ and the MLflow store.")
    trials, selections = collect_tuning(params)
    spent = budget(results, trials, selections)
    verdicts = check(results, params.archs, params.inits)
    blocks = document(table, verdicts, load_references(), {t: setting_note(params, t) for t in tasks}, drawn, context,
                      spent, tuning_note(params), scale_note(params, results))
    written = []
    for figures in drawn.values():
        for f in figures:
            with atomic_path(out / FIGURES / f"{f.name}.png") as tmp:
                tmp.write_bytes(f.png)
            written.append(out / FIGURES / f"{f.name}.png")
    metrics = {t: {f"{r.arch}/{r.init}/{r.fraction:g}": (None if pd.isna(r.acc_mean) else round(float(r.acc_mean), 2))
                   for r in table[table["task"] == t].itertuples()} for t in tasks}
    claims = pd.DataFrame([v.__dict__ for v in verdicts])
    files = {"grid.csv": table.to_csv(index=False), "grid.md": to_markdown(blocks, FIGURES),
             "claims.csv": claims.to_csv(index=False), "budget.csv": spent.to_csv(index=False),
             "grid.html": to_html(blocks, "Comparison grid"), "metrics.json": json.dumps(metrics, indent=2) + "\n",
             "plots/learning_curves.csv": pd.concat(curves).to_csv(index=False) if curves else "cell,seed,step,val_accuracy\n"}
    for name, text in files.items():
        write_text(text, out / name)
        written.append(out / name)
    return written
