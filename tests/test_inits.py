"""The initialization axis: which inits apply to which architectures, budgets (separate,
compute-tied, epochs, per-arch), label fractions, and cells that diverge or are skipped."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from components import paths, tracking
from components.config import FPTCfg, InitCfg, LSTMCfg, S4DCfg, TransformerCfg, parse_params
from components.grid import Cell, cells, init_skip_reason, is_causal, skip_reason
from components.spec import resolve
from components.stages import evaluate, finetune, materialize, pretrain, report
from components.stages.common import label_rows
from flows.cli import main


@pytest.mark.parametrize("arch, causal", [
    (TransformerCfg(), False), (TransformerCfg(causal=True), True), (S4DCfg(), False),
    (S4DCfg(bidirectional=False), True), (LSTMCfg(), True), (FPTCfg(), False),
    (FPTCfg(backbone="gpt2", path="/x"), True),
])
def test_objective_follows_directionality(arch, causal):
    assert is_causal(arch) == causal
    masked, next_token = init_skip_reason(arch, InitCfg(kind="masked_spt")), init_skip_reason(arch, InitCfg(kind="causal_spt"))
    assert (masked is None) != causal and (next_token is None) == causal


@pytest.mark.parametrize("kind", ["fpt_frozen", "fpt_random", "pretrained_full"])
def test_language_model_inits_need_a_language_model(kind):
    assert "needs a language-pretrained backbone" in init_skip_reason(TransformerCfg(), InitCfg(kind=kind))
    assert init_skip_reason(FPTCfg(), InitCfg(kind=kind)) is None


def test_exclude_rules_match_every_given_field(tiny_params):
    c = Cell("listops", "fpt", "scratch", 0)
    assert skip_reason(tiny_params, c) == "excluded by grid.exclude.0"
    assert skip_reason(tiny_params, Cell("listops", "fpt", "fpt_frozen", 0)) is None


def test_budgets_separate_tied_epochs_and_per_arch(raw_params):
    raw_params["inits"]["tied"] = {"kind": "masked_spt", "pretrain_share": 0.4, "total_steps": 100}
    raw_params["finetune"].update(steps=100, steps_by_arch={"fpt": 7})
    raw_params["pretrain"].update(steps=None, epochs=2, batch_size=10)
    p = parse_params(raw_params)

    def budgets(params, cell, n_train):
        return resolve(params, cell).budgets(n_train)

    assert budgets(p, Cell("listops", "s4d", "scratch", 0), 240) == (0, 100)
    assert budgets(p, Cell("listops", "s4d", "masked_spt", 0), 240) == (48, 100)  # 2 epochs of 240 rows / 10
    assert budgets(p, Cell("listops", "s4d", "tied", 0), 240) == (40, 60)  # same total as scratch
    assert budgets(p, Cell("listops", "s4d", "tied", 0, fraction=0.5), 240) == (40, 60)  # whatever the labels
    assert budgets(p, Cell("listops", "fpt", "fpt_frozen", 0), 240) == (0, 7)


def test_label_fractions_are_nested_subsets():
    subsets = [set(label_rows(1000, f, seed=5)) for f in (0.01, 0.1, 0.5, 1.0)]
    assert [len(s) for s in subsets] == [10, 100, 500, 1000]
    assert all(a < b for a, b in zip(subsets, subsets[1:]))
    assert np.array_equal(label_rows(1000, 0.1, seed=5), label_rows(1000, 0.1, seed=5))


def run_cells(params, cell_list):
    materialize.run(params, "listops")
    for c in cell_list:
        for stage in (pretrain, finetune, evaluate):
            stage.run(resolve(params, c))
    return report.run(params)


def test_every_init_runs_and_frozen_inits_train_fewer_weights(workdir, raw_params):
    raw_params["archs"]["transformer_causal"] = {**raw_params["archs"]["transformer"], "causal": True}
    raw_params["pretrain"]["lr"]["transformer_causal"] = raw_params["finetune"]["lr"]["transformer_causal"] = 1e-3
    raw_params["inits"]["tied"] = {"kind": "causal_spt", "pretrain_share": 0.5, "total_steps": 6}
    raw_params["grid"].update(archs=["transformer_causal", "fpt"], exclude=[],
                              inits=["scratch", "causal_spt", "tied", "fpt_frozen", "fpt_random", "pretrained_full"])
    params = parse_params(raw_params)
    run_cells(params, cells(params))
    grid = pd.read_csv(paths.report_dir() / "grid.csv").set_index(["arch", "init"])
    ok = grid[grid["status"] == "ok"]
    assert set(ok.index) == {("transformer_causal", "scratch"), ("transformer_causal", "causal_spt"),
                             ("transformer_causal", "tied"), ("fpt", "scratch"), ("fpt", "fpt_frozen"),
                             ("fpt", "fpt_random"), ("fpt", "pretrained_full")}
    assert ok.loc[("transformer_causal", "causal_spt"), "pretrain_steps"] == 6
    assert ok.loc[("transformer_causal", "tied"), ["pretrain_steps", "finetune_steps"]].tolist() == [3, 3]
    fpt = ok.loc["fpt"]
    assert fpt.loc["fpt_frozen", "params_trainable"] == fpt.loc["fpt_random", "params_trainable"]
    assert fpt.loc["fpt_frozen", "params_trainable"] < fpt.loc["pretrained_full", "params_trainable"]
    assert fpt.loc["pretrained_full", "params_trainable"] == fpt.loc["scratch", "params_trainable"]
    assert "fpt_frozen needs a language-pretrained backbone" in grid.loc[("transformer_causal", "fpt_frozen"), "note"]

    def weights(init):
        state, _ = torch.load(paths.init_dir(Cell("listops", "fpt", init, 0)) / "backbone.pt",
                              weights_only=True).values()
        return state["lm.encoder.layer.0.attention.self.query.weight"]

    assert torch.equal(weights("fpt_frozen"), weights("pretrained_full"))  # both language-pretrained
    assert torch.equal(weights("fpt_random"), weights("scratch"))  # same seed, same random network
    assert not torch.equal(weights("fpt_frozen"), weights("fpt_random"))
    final, _ = torch.load(paths.finetune_dir(Cell("listops", "fpt", "fpt_frozen", 0)) / "model.pt",
                          weights_only=True).values()
    key = "backbone.lm.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(final[key], weights("fpt_frozen"))  # frozen through finetuning


def test_a_diverged_cell_is_recorded_and_the_grid_goes_on(workdir, tiny_params, monkeypatch):
    from components.stages import finetune as ft

    real = ft.classification_loss
    calls = {"n": 0}

    def nan_in_s4d_scratch(logits, labels):
        loss, c, n = real(logits, labels)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 4 else loss), c, n

    monkeypatch.setattr(ft, "classification_loss", nan_in_s4d_scratch)
    first = Cell("listops", "s4d", "scratch", 0)
    later = [Cell("listops", "transformer", "scratch", 0)]
    materialize.run(tiny_params, "listops")
    for stage in (pretrain, finetune, evaluate):
        stage.run(resolve(tiny_params, first))
    monkeypatch.setattr(ft, "classification_loss", real)
    for c in later:
        for stage in (pretrain, finetune, evaluate):
            stage.run(resolve(tiny_params, c))
    record = json.loads(paths.metrics_path(first).read_text())
    assert record["status"] == "diverged" and record["diverged_at_step"] == 4 and "test_accuracy" not in record
    run = MlflowClient(tracking.tracking_uri()).get_run(record["run_id"])
    assert run.info.status == "FAILED" and run.data.tags["failed_at_step"] == "4"
    assert json.loads(paths.metrics_path(later[0]).read_text())["status"] == "ok"
    assert not paths.resume_dir("finetune", first).exists()


def test_cli_writes_skip_records_without_training(workdir, raw_params, capsys):
    import yaml

    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    args = ["--task", "listops", "--arch", "s4d", "--init", "causal_spt", "--seed", "0"]
    for stage in ("pretrain", "finetune", "evaluate"):
        assert main([stage, *args]) == 0  # no data materialized: a skipped cell never reads any
    cell = Cell("listops", "s4d", "causal_spt", 0)
    record = json.loads(paths.metrics_path(cell).read_text())
    assert record["status"] == "skipped" and "needs a causal model" in record["reason"]
    assert [p.name for p in paths.init_dir(cell).iterdir()] == ["info.json"]
