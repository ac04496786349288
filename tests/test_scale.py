"""Profiles (one command switches the grid's scale), the config hash that names a cell's
settings, and the plan a grid launch makes."""
import pytest
import yaml

from components import paths, records
from components.config import ConfigError, load_params, parse_params
from components.grid import Cell, cells
from components.records import CellRecord, DataMeta
from components.spec import config_hash
from components.stages import plan
from flows import profiles
from flows.cli import main
from tests.conftest import ROOT


def test_profiles_switch_and_switch_back_byte_for_byte(tmp_path, capsys):
    path = tmp_path / "params.yaml"
    original = (ROOT / "params.yaml").read_text()
    path.write_text(original)
    assert load_params(path).profile == "cpu"
    assert profiles.apply(path, "cpu") == []  # the file is the cpu profile as shipped

    assert main(["--params", str(path), "profile", "smoke"]) == 0
    assert "changed: grid.tasks, grid.archs, grid.inits, grid.seeds, grid.fractions, grid.exclude" in capsys.readouterr().out
    smoke = load_params(path)
    assert smoke.profile == "smoke" and smoke.grid.tasks == ["listops_smoke"] and smoke.pretrain.steps == 6
    assert smoke.finetune.steps_by_arch == {} and smoke.grid.exclude == []
    assert len([c for c in cells(smoke)]) == 4
    text = path.read_text()
    assert "# Profiles: `arena profile NAME`" in text  # comments survive
    assert "steps: 6                 # or `epochs:` over the (label-fraction) training rows" in text

    profiles.apply(path, "paper")
    paper = load_params(path)
    assert paper.archs["transformer"].d_model == 512 and paper.pretrain.epochs == 100 and paper.pretrain.steps is None
    profiles.apply(path, "cpu_wide")
    wide = load_params(path)
    assert "fpt" in wide.grid.archs and wide.tuning.trials == 1 and wide.finetune.steps_by_arch == {"fpt": 300}
    profiles.apply(path, "cpu")
    assert path.read_text() == original
    shipped = load_params(path)  # the default grid is the fair one: tuned, several seeds, every paper's task
    assert shipped.tuning.trials >= 2 and len(shipped.grid.seeds) >= 3 and len(shipped.grid.tasks) >= 3


def test_profile_errors_name_the_key(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["profiles"]["smoke"]["grid.sedes"] = [0]
    with pytest.raises(ConfigError, match="profiles.cpu: sets no 'grid.sedes' unlike profiles.smoke|"
                                          "profiles.smoke: sets 'grid.sedes'"):
        parse_params(raw)
    for p in raw["profiles"].values():
        p["grid.sedes"] = [0]
    with pytest.raises(ConfigError, match="profiles.cpu: 'grid.sedes' names no setting"):
        parse_params(raw)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["profile"] = "laptop"
    with pytest.raises(ConfigError, match="profile: 'laptop' is not one of profiles"):
        parse_params(raw)

    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    with pytest.raises(ConfigError, match="profiles.huge: not defined"):
        profiles.apply(path, "huge")
    assert main(["--params", str(path), "profile", "huge"]) == 2
    text = path.read_text().replace("  epochs: null             # or a budget", "  # epochs: null           # or a budget")
    path.write_text(text)  # a key the profiles set is missing from the file: nothing is written
    with pytest.raises(ConfigError, match="'pretrain.epochs' is not written in block style"):
        profiles.apply(path, "smoke")
    assert path.read_text() == text


def test_config_hash_follows_what_a_cell_depends_on(tiny_params):
    cell = Cell("listops", "s4d", "masked_spt", 0)
    h = config_hash(tiny_params, cell)
    assert h == config_hash(tiny_params, Cell("listops", "s4d", "masked_spt", 0, 1.0))
    assert h != config_hash(tiny_params, Cell("listops", "s4d", "masked_spt", 1))
    assert h != config_hash(tiny_params, Cell("listops", "s4d", "masked_spt", 0, 0.5))

    def changed(**update):
        raw = tiny_params.model_dump()
        for dotted, value in update.items():
            node, *parts = [raw, *dotted.split("__")]
            for part in parts[:-1]:
                node = node[part]
            node[parts[-1]] = value
        return config_hash(parse_params(raw), cell)

    assert changed(finetune__lr__s4d=0.01) != h
    assert changed(pretrain__steps=7) != h
    assert changed(tasks__listops__seed=5) != h
    assert changed(archs__s4d__d_state=4) != h
    assert changed(finetune__lr__transformer=0.5) == h  # another arch's learning rate
    assert changed(grid__seeds=[0, 1, 2]) == h and changed(prefect__concurrency=4) == h


def test_plan_skips_by_rule_and_takes_recorded_results(workdir, raw_params, monkeypatch):
    raw_params["grid"].update(archs=["s4d", "transformer_causal"], inits=["scratch", "masked_spt"])
    params = parse_params(raw_params)
    recorded_cell = Cell("listops", "s4d", "scratch", 0)
    record = CellRecord(task="listops", arch="s4d", init="scratch", seed=0, test_accuracy=0.25, run_id="abc")
    store = {config_hash(params, recorded_cell): {"record": record, "data_sha256": "", "run_id": "abc"}}
    monkeypatch.setattr(plan.tracking, "recorded", lambda experiment: store)
    todo = plan.make(params)
    assert todo.done == {recorded_cell: record}
    assert set(todo.skipped) == {Cell("listops", "transformer_causal", "masked_spt", 0)}
    assert [s.cell for s in todo.run] == [Cell("listops", "s4d", "masked_spt", 0),
                                          Cell("listops", "transformer_causal", "scratch", 0)]
    assert [s.config_hash for s in todo.run] == [config_hash(params, s.cell) for s in todo.run]
    text = plan.describe(params)
    assert "done  listops-s4d-scratch-s0  (test accuracy 25.00%; run abc)" in text
    assert "skip  listops-transformer_causal-masked_spt-s0  (masked_spt is for bidirectional models" in text
    assert "\n2 to run, 1 already recorded, 1 skipped " in text
    assert "tuning:" not in text  # no tuning: no trial lines

    records.save(DataMeta(task="listops", kind="tokens", n_classes=10, source={}, rows={}, length={},
                          sha256={"train": "0000"}), paths.meta_path("listops"))  # this machine's data differs
    store[config_hash(params, recorded_cell)]["data_sha256"] = "ffff"
    assert recorded_cell in [s.cell for s in plan.make(params).run]


def test_grid_cli_rejects_what_cannot_run(workdir, tmp_path, capsys):
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    assert main(["--params", str(path), "grid", "--concurrency", "0"]) == 2
    assert "--concurrency 0: must be at least 1" in capsys.readouterr().err
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # no server (even if a test harness runs)
        assert main(["--params", str(path), "grid", "--deployment", "arena-cell/gpu"]) == 2
    assert "needs a Prefect server: set PREFECT_API_URL" in capsys.readouterr().err


def test_step_budgets_by_task_by_arch_and_a_tuning_trials_share(raw_params):
    from components.spec import resolve

    raw_params["tasks"]["digits"] = {"kind": "digits"}
    raw_params["finetune"].update(steps=10, warmup_steps=4, eval_every=4, steps_by_task={"listops": 40},
                                  steps_by_arch={"s4d": 70}, steps_by_task_arch={"digits": {"s4d": 25}})
    raw_params["tuning"].update(trials=2, budget_share=0.5, space={"finetune.lr": {"low": 1e-4, "high": 1e-2, "log": True}})
    params = parse_params(raw_params)
    from components.selection import defaults

    steps = lambda cell: resolve(params, cell, None if cell.trial is not None else defaults()).finetune  # noqa: E731
    assert steps(Cell("listops", "transformer", "scratch", 0)).steps == 40  # the task's budget
    assert steps(Cell("digits", "transformer", "scratch", 0)).steps == 10  # the default
    assert steps(Cell("listops", "s4d", "scratch", 0)).steps == 70  # the arch's, before the task's
    assert steps(Cell("digits", "s4d", "scratch", 0)).steps == 25  # the (task, arch) pair's, first of all
    trial = steps(Cell("listops", "transformer", "scratch", 1000, trial=0))
    assert (trial.steps, trial.warmup_steps, trial.eval_every) == (20, 2, 2)  # a trial trains on half of it
    raw_params["finetune"]["steps_by_task"] = {"nope": 5}
    with pytest.raises(ConfigError, match="finetune.steps_by_task: 'nope' is not defined"):
        parse_params(raw_params)
    raw_params["finetune"].update(steps_by_task={}, steps_by_task_arch={"digits": {"gru": 5}})
    with pytest.raises(ConfigError, match="finetune.steps_by_task_arch.digits: 'gru' is not defined"):
        parse_params(raw_params)
    raw_params["finetune"]["steps_by_task_arch"] = {"nope": {"s4d": 5}}
    with pytest.raises(ConfigError, match="finetune.steps_by_task_arch: 'nope' is not defined"):
        parse_params(raw_params)


def test_an_exclude_rule_on_seeds_runs_more_seeds_for_one_arm_only(raw_params):
    from components.grid import arm_skip_reason, cells, skip_reason

    raw_params["grid"].update(tasks=["listops"], archs=["transformer", "s4d"], inits=["scratch"], seeds=[0, 1, 2],
                              fractions=[1.0], exclude=[{"arch": "transformer", "seed": [1, 2]}])
    params = parse_params(raw_params)
    run = sorted((c.arch, c.seed) for c in cells(params) if skip_reason(params, c) is None)
    assert run == [("s4d", 0), ("s4d", 1), ("s4d", 2), ("transformer", 0)]
    assert arm_skip_reason(params, "listops", "transformer", "scratch") is None  # the arm still runs
    raw_params["grid"]["exclude"] = [{"arch": "transformer", "seed": [0]}]  # its first seed out, the others in
    assert arm_skip_reason(parse_params(raw_params), "listops", "transformer", "scratch") is None
    raw_params["grid"]["exclude"] = [{"seed": [7]}]
    with pytest.raises(ConfigError, match=r"grid.exclude.0.seed: 7 is not one of grid.seeds \[0, 1, 2\]"):
        parse_params(raw_params)


def test_a_compute_tied_trial_trains_its_share_of_the_total(raw_params):
    from components.spec import resolve

    raw_params["inits"]["tied"] = {"kind": "masked_spt", "pretrain_share": 0.4, "total_steps": 100}
    raw_params["tuning"].update(trials=2, budget_share=0.5, space={"finetune.lr": {"low": 1e-4, "high": 1e-2, "log": True}})
    params = parse_params(raw_params)
    assert resolve(params, Cell("listops", "s4d", "tied", 1000, trial=0)).budgets(240) == (20, 30)  # half of 40 + 60
    raw_params["grid"]["exclude"] = [{"task": "listops", "fraction": 0.3}]
    with pytest.raises(ConfigError, match=r"grid.exclude.0.fraction: 0.3 is not one of grid.fractions"):
        parse_params(raw_params)
