"""The report's figures, drawn from the aggregated grid (`components.report.tables.aggregate`), MLflow metric
histories and SSM kernels.

Pure: data in, PNG bytes out (None when there is nothing to draw); the report stage names and writes
the files. Figures are drawn on `matplotlib.figure.Figure` directly, so no pyplot state or backend
is involved, and saved without a "Software" tag, so the same input gives the same bytes.

Table columns read: task, arch, init, fraction, n_seeds, acc_mean, acc_std (percent), status.
"""
from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

if TYPE_CHECKING:  # torch is imported only where kernels are computed: the report stage stays light
    import torch

DPI = 110
ACCURACY = "test accuracy (%)"
CMAP = matplotlib.colormaps["viridis"].with_extremes(bad="#e0e0e0")  # grey: no result


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _rows(table: pd.DataFrame, task: str, fraction: float | None = None) -> pd.DataFrame:
    """The task's rows (at one label fraction, when given)."""
    rows = table[table["task"] == task]
    return rows if fraction is None else rows[np.isclose(rows["fraction"].astype(float), fraction)]


def _done(rows: pd.DataFrame) -> pd.Series:
    """Rows with a result: at least one finished seed."""
    return (rows["n_seeds"] > 0) & rows["acc_mean"].notna()


def _std(x) -> float:
    return float("nan") if pd.isna(x) else float(x)


# grid -----------------------------------------------------------------------------------------


def heatmap(table: pd.DataFrame, task: str) -> bytes | None:
    """Test accuracy of every (arch, init) for one task with all labels: archs as rows and inits as
    columns, both in table order; each cell says mean ± std over seeds, and a cell that did not run
    is grey and says why (its status: skipped, failed, diverged). None when no cell has a result."""
    rows = _rows(table, task, 1.0)
    if not _done(rows).any():
        return None
    archs, inits = list(dict.fromkeys(rows["arch"])), list(dict.fromkeys(rows["init"]))
    acc = np.full((len(archs), len(inits)), np.nan)  # (archs, inits)
    text = np.full(acc.shape, "", dtype=object)
    for r, done in zip(rows.itertuples(), _done(rows)):
        i, j = archs.index(r.arch), inits.index(r.init)
        if done:
            acc[i, j] = r.acc_mean
            text[i, j] = f"{r.acc_mean:.1f}" + ("" if pd.isna(r.acc_std) else f"\n± {r.acc_std:.1f}")
        else:
            text[i, j] = str(r.status).split()[0]

    fig = Figure(figsize=(1.5 + 1.05 * len(inits), 1.2 + 0.55 * len(archs)), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(acc), cmap=CMAP, aspect="auto")
    for (i, j), label in np.ndenumerate(text):
        if np.isnan(acc[i, j]):
            color = "#707070"
        else:  # viridis is dark at its low end
            color = "white" if image.norm(acc[i, j]) < 0.5 else "black"
        ax.text(j, i, label, ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(len(inits)), inits, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(archs)), archs, fontsize=8)
    ax.set_title(f"{task}: test accuracy, all labels", fontsize=9)
    fig.colorbar(image, ax=ax, label=ACCURACY)
    return _png(fig)


def data_efficiency(table: pd.DataFrame, task: str) -> bytes | None:
    """Test accuracy (mean ± std over seeds) against the share of labelled training rows, one line
    per (arch, init) with results at 2 or more fractions (a lone point at 100% is the heatmap's);
    the x axis is logarithmic when the fractions span more than a decade. None when no (arch, init)
    has such a line, in particular when the task has results at fewer than 2 fractions."""
    rows = _rows(table, task)
    rows = rows[_done(rows)]
    rows = rows[rows.groupby(["arch", "init"])["fraction"].transform("nunique") >= 2]
    if rows.empty:
        return None
    fractions = np.sort(rows["fraction"].astype(float).unique())
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    for (arch, init), g in rows.groupby(["arch", "init"], sort=False):
        g = g.sort_values("fraction")
        ax.errorbar(g["fraction"].astype(float), g["acc_mean"], yerr=g["acc_std"].map(_std), marker="o",
                    markersize=4, capsize=3, label=f"{arch} · {init}")
    if fractions[-1] / fractions[0] > 10:
        ax.set_xscale("log")
    ax.set_xticks(fractions, [f"{100 * f:g}%" for f in fractions], fontsize=8)
    ax.minorticks_off()
    ax.set(xlabel="labelled training rows", ylabel=ACCURACY, title=f"{task}: accuracy against label share")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _png(fig)


def las_ablation(table: pd.DataFrame, task: str, arms: dict[str, str]) -> bytes | None:
    """Bars of test accuracy (mean ± std over seeds) for the archs in `arms` ({arch: label}, drawn in
    that order), trained from scratch on all labels. None when fewer than 2 of them have results."""
    rows = _rows(table, task, 1.0)
    rows = rows[_done(rows) & (rows["init"] == "scratch")].set_index("arch")
    shown = [a for a in arms if a in rows.index]
    if len(shown) < 2:
        return None
    mean = rows.loc[shown, "acc_mean"].astype(float).to_numpy()  # (arms,)
    std = np.array([_std(x) for x in rows.loc[shown, "acc_std"]])  # (arms,)
    fig = Figure(figsize=(1.6 + 1.2 * len(shown), 3.4), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar(range(len(shown)), mean, yerr=np.nan_to_num(std), capsize=4, color="#4c72b0")
    ax.bar_label(bars, [f"{m:.1f}" for m in mean], fontsize=7, padding=2)
    ax.set_xticks(range(len(shown)), [arms[a] for a in shown], rotation=20, ha="right", fontsize=8)
    ax.set(ylabel=ACCURACY, title=f"{task}: LaS ablation (scratch, all labels)")
    return _png(fig)


# training -------------------------------------------------------------------------------------


def learning_curves(histories: dict[str, pd.DataFrame], metric: str = "val_accuracy") -> bytes | None:
    """One line per arm: `histories[name]` has columns step, value (an MLflow metric history) and,
    for several seeds, `seed`: then the line is the mean over seeds at each step with the band
    from the lowest to the highest seed. A step logged twice by one seed (a resumed run trains the
    steps after its last checkpoint again) counts once, with its last value. None when every
    history is empty."""
    histories = {name: df for name, df in histories.items() if len(df)}
    if not histories:
        return None
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    for name, df in histories.items():
        df = df.assign(seed=df["seed"] if "seed" in df else 0)
        df = df.drop_duplicates(["seed", "step"], keep="last")
        by_step = df.groupby("step")["value"].agg(["mean", "min", "max", "count"]).sort_index()
        seeds = df["seed"].nunique()
        line, = ax.plot(by_step.index, by_step["mean"], marker="." if len(by_step) < 30 else None, linewidth=1.2,
                        label=name if seeds == 1 else f"{name} (mean of {seeds} seeds)")
        if seeds > 1:
            ax.fill_between(by_step.index, by_step["min"], by_step["max"], color=line.get_color(), alpha=0.2,
                            linewidth=0)
    ax.set(xlabel="step", ylabel=metric, title=f"{metric}: mean over seeds, band from lowest to highest")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _png(fig)


# kernels --------------------------------------------------------------------------------------


def kernel_decay_curves(backbone: torch.nn.Module, length: int) -> list[np.ndarray]:
    """Per S4D/DLR layer, in layer order, the largest |kernel| over directions and channels at each
    distance: K_max[l] = max_{c, d} |K[c, d, l]|, one (length,) array per layer (SPT paper, §3.6).
    Kernels are computed without gradients on the backbone's device and returned on CPU; [] for a
    backbone without SSM layers."""
    import torch

    from components.models import ssm_kernels

    with torch.no_grad():
        return [k.abs().amax(dim=(0, 1)).cpu().numpy() for k in ssm_kernels(backbone, length)]  # (C, D, L) -> (L,)


def kernel_decay(curves: dict[str, list[np.ndarray]]) -> bytes | None:
    """The SPT paper's Figure 4: one panel per layer (log y axis, shared), one line per label;
    `curves[label]` holds a (length,) array of max |kernel| per layer (`kernel_decay_curves`).
    None when no label has a layer."""
    n_layers = max((len(layers) for layers in curves.values()), default=0)
    if not n_layers:
        return None
    cols = n_layers if n_layers <= 3 else math.ceil(math.sqrt(n_layers))
    rows = math.ceil(n_layers / cols)
    fig = Figure(figsize=(0.6 + 3.0 * cols, 0.6 + 2.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False).flat
    for layer, ax in enumerate(axes):
        if layer >= n_layers:
            ax.set_axis_off()
            continue
        for label, layers in curves.items():
            if layer < len(layers):
                ax.plot(np.arange(len(layers[layer])), layers[layer], linewidth=1.0, label=label)
        ax.set_yscale("log")
        ax.set_title(f"layer {layer + 1}", fontsize=9)
        ax.set_xlabel("distance (positions)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.axes[0].set_ylabel("max over channels |kernel|", fontsize=8)
    fig.axes[0].legend(fontsize=7)
    return _png(fig)
