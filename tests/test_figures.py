"""The report's figures: valid PNGs from a small grid aggregated like the real one, None where there
is nothing to draw, identical bytes for identical input, and kernel-decay curves that match the
layers' own kernels."""
from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from components.report import figures
from components.config import S4DCfg, TransformerCfg
from components.models import build_backbone
from components.models.s4d import S4D
from components.report.tables import aggregate

PNG = b"\x89PNG\r\n\x1a\n"
ARMS = {"transformer": "vanilla", "las": "LaS", "las_nodecay": "smoothing only", "las_nopool": "decay only"}


def _cells() -> pd.DataFrame:
    """Per-seed results on one task: four archs x three inits x two seeds at all labels, two more
    label fractions for two (arch, init), one init skipped everywhere and one failed seed."""
    rng = np.random.default_rng(0)
    rows = []
    for arch in ARMS:
        for init in ("scratch", "masked_spt", "causal_spt"):
            for seed in (0, 1):
                for fraction in ((0.01, 0.1, 1.0) if arch == "transformer" and init != "causal_spt" else (1.0,)):
                    row = {"task": "listops", "arch": arch, "init": init, "fraction": fraction, "seed": seed,
                           "status": "ok", "test_accuracy": 0.2 + 0.2 * fraction + 0.02 * rng.random(),
                           "val_accuracy": 0.3}
                    if init == "causal_spt":
                        row.update(status="skipped", test_accuracy=None, reason="needs a causal model")
                    if (arch, init, seed) == ("las_nopool", "masked_spt", 1):
                        row.update(status="failed", test_accuracy=None, reason="boom")
                    rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return aggregate(_cells())


def _image(png: bytes) -> Image.Image:
    assert png.startswith(PNG)
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def _histories() -> dict[str, pd.DataFrame]:
    steps = np.arange(0, 100, 10)
    return {"transformer · scratch": pd.DataFrame({"step": steps, "value": 0.1 + steps / 200}),
            "las · scratch": pd.DataFrame({"step": np.r_[steps, 50, 60], "value": np.r_[steps / 100, 0.5, 0.6]})}


def _kernel_curves() -> dict[str, list[np.ndarray]]:
    d = np.arange(64)
    return {"scratch (init)": [np.exp(-d / 40), np.exp(-d / 20)], "masked_spt": [np.exp(-d / 5), np.exp(-d / 10)]}


DRAWN = {
    "heatmap": lambda t: figures.heatmap(t, "listops"),
    "data_efficiency": lambda t: figures.data_efficiency(t, "listops"),
    "las_ablation": lambda t: figures.las_ablation(t, "listops", ARMS),
    "learning_curves": lambda t: figures.learning_curves(_histories()),
    "kernel_decay": lambda t: figures.kernel_decay(_kernel_curves()),
}


@pytest.mark.parametrize("name", DRAWN)
def test_draws_a_png_and_leaves_the_table_alone(table, name):
    before = table.copy()
    image = _image(DRAWN[name](table))
    assert 300 <= image.width <= 1600 and 200 <= image.height <= 1200, image.size
    pd.testing.assert_frame_equal(table, before)


@pytest.mark.parametrize("name", DRAWN)
def test_same_input_same_bytes(table, name):
    assert DRAWN[name](table) == DRAWN[name](table.copy())


def test_nothing_to_draw(table):
    skipped = table[table["n_seeds"] == 0]
    full = table[table["fraction"] == 1.0]
    assert figures.heatmap(table, "no-such-task") is None
    assert figures.heatmap(skipped, "listops") is None  # only cells that did not run
    assert figures.data_efficiency(full, "listops") is None  # one fraction
    one_each = {"scratch": 0.01, "masked_spt": 0.1, "causal_spt": 1.0}  # 3 fractions, no (arch, init) at 2
    scattered = table[(table["arch"] != "transformer") | (table["fraction"] == table["init"].map(one_each))]
    assert scattered["fraction"].nunique() == 3 and figures.data_efficiency(scattered, "listops") is None
    assert figures.las_ablation(table, "listops", {"transformer": "vanilla", "missing": "LaS"}) is None
    assert figures.las_ablation(table[table["init"] != "scratch"], "listops", ARMS) is None
    assert figures.learning_curves({}) is None
    assert figures.learning_curves({"a": pd.DataFrame({"step": [], "value": []})}) is None
    assert figures.kernel_decay({}) is None
    assert figures.kernel_decay({"scratch": []}) is None


def test_heatmap_shows_one_value_per_result(table):
    """A grid whose only result changes draws different bytes: the value is on the figure."""
    other = table.copy()
    other.loc[(other["arch"] == "las") & (other["init"] == "scratch"), "acc_mean"] += 5.0
    assert figures.heatmap(other, "listops") != figures.heatmap(table, "listops")


# kernel-decay curves ----------------------------------------------------------------------------


def _s4d(n_layers: int = 2, d_state: int = 4, bidirectional: bool = True) -> torch.nn.Module:
    cfg = S4DCfg(d_model=6, n_layers=n_layers, d_state=d_state, bidirectional=bidirectional)
    return build_backbone(cfg, vocab_size=10, pad_id=0, seed=0)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_kernel_curves_are_each_layers_max_abs_kernel(bidirectional):
    backbone, L = _s4d(n_layers=3, bidirectional=bidirectional), 32
    curves = figures.kernel_decay_curves(backbone, L)
    layers = [m for m in backbone.modules() if isinstance(m, S4D)]
    assert len(curves) == len(layers) == 3
    for curve, layer in zip(curves, layers):
        k = layer.kernels(L).detach()  # (C, D, L)
        expected = torch.stack([k[..., l].abs().max() for l in range(L)])  # (L,)
        assert curve.shape == (L,) and np.isfinite(curve).all() and (curve >= 0).all()
        np.testing.assert_allclose(curve, expected.numpy(), rtol=1e-6)


def test_kernel_curve_of_a_hand_set_kernel():
    """One real mode per channel (A = -a, no oscillation): K[c, d, l] = 2 C[c, d] (1 - e^{-a dt_d}) / a
    * e^{-a dt_d l}, so the curve is known in closed form."""
    backbone, L, a = _s4d(n_layers=1, d_state=2), 16, 0.5
    layer = next(m for m in backbone.modules() if isinstance(m, S4D))
    dt = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.5])  # (D,)
    C = np.arange(12, dtype=float).reshape(2, 6) - 5.5  # (C, D)
    with torch.no_grad():
        layer.kernel.log_dt.copy_(torch.tensor(np.log(dt)))
        layer.kernel.log_A_real.fill_(math.log(a))
        layer.kernel.A_imag.zero_()
        layer.kernel.C.zero_()
        layer.kernel.C[..., 0, 0] = torch.tensor(C)
    decay = np.exp(-a * dt[None, :, None] * np.arange(L))  # (1, D, L)
    expected = np.abs(2 * C[..., None] * (1 - np.exp(-a * dt))[None, :, None] / a * decay).max(axis=(0, 1))  # (L,)
    np.testing.assert_allclose(figures.kernel_decay_curves(backbone, L)[0], expected, rtol=1e-5)


def test_kernel_curves_need_ssm_layers():
    cfg = TransformerCfg(d_model=8, n_layers=1, n_heads=2)
    assert figures.kernel_decay_curves(build_backbone(cfg, vocab_size=10, pad_id=0, seed=0), 16) == []


def test_kernel_curves_draw():
    curves = figures.kernel_decay_curves(_s4d(), 32)
    assert _image(figures.kernel_decay({"scratch": curves, "rescaled": [10 * c for c in curves]})).width > 300


def test_learning_curves_draw_every_seed_as_a_mean_and_band():
    two = pd.DataFrame({"step": [10, 20, 10, 20], "value": [0.2, 0.4, 0.3, 0.6], "seed": [0, 0, 1, 1]})
    one = two[two["seed"] == 0]
    png_two, png_one = figures.learning_curves({"a": two}), figures.learning_curves({"a": one})
    assert png_two.startswith(b"\x89PNG") and png_one.startswith(b"\x89PNG") and png_two != png_one
    again = pd.concat([two, pd.DataFrame({"step": [20], "value": [0.6], "seed": [1]})])  # a resumed seed's repeat
    assert figures.learning_curves({"a": again}) == png_two
