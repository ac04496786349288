"""Label fractions follow the SPT paper: at fraction F both phases see the same labelled subset,
so a self-pretraining cell has a pretraining start of its own per fraction, while random and
language-pretrained starts are shared; `pretrain_rows: all` is the declared semi-supervised option."""
import numpy as np
import pandas as pd

from components import paths
from components.config import parse_params
from components.grid import Cell
from components.report.claims import check
from components.spec import resolve
from components.stages import finetune, materialize, pretrain
from components.stages.unit import run_unit


def _rows_seen(monkeypatch) -> dict[str, list[set]]:
    """{stage module: [the training rows (as token tuples) of each batch stream it built]}."""
    seen: dict[str, list[set]] = {}
    for module in (pretrain, finetune):
        real = module.batches_from

        def spy(split, *args, _real=real, _name=module.__name__, **kwargs):
            rows = {tuple(split.values[split.offsets[r]:split.offsets[r + 1]]) for r in range(len(split))}
            seen.setdefault(_name.rsplit(".", 1)[-1], []).append(rows)
            return _real(split, *args, **kwargs)

        monkeypatch.setattr(module, "batches_from", spy)
    return seen


def test_self_pretraining_sees_exactly_the_cells_labelled_rows(workdir, raw_params, monkeypatch):
    raw_params["grid"].update(archs=["s4d"], inits=["masked_spt"], fractions=[0.5, 1.0], exclude=[])
    params = parse_params(raw_params)
    materialize.run(params, "listops")
    seen = _rows_seen(monkeypatch)
    half = resolve(params, Cell("listops", "s4d", "masked_spt", 0, 0.5))
    full = resolve(params, Cell("listops", "s4d", "masked_spt", 0, 1.0))
    assert half.start != full.start and half.init_hash != full.init_hash
    run_unit([half])
    run_unit([full])
    pre_half, pre_full = seen["pretrain"]
    fine_half, fine_full = seen["finetune"]
    n_train = raw_params["tasks"]["listops"]["n_train"]
    assert pre_half == fine_half and len(pre_half) == round(0.5 * n_train)  # rows are distinct token strings
    assert pre_full == fine_full and len(pre_full) == n_train and pre_half < pre_full  # nested subsets
    assert paths.init_dir(half.start).name == "seed0-frac0.5" and (paths.init_dir(half.start) / "backbone.pt").exists()


def test_random_starts_are_shared_and_all_rows_is_a_declared_option(raw_params):
    raw_params["inits"]["masked_spt_all"] = {"kind": "masked_spt", "pretrain_rows": "all"}
    raw_params["grid"].update(archs=["s4d"], inits=["scratch", "masked_spt", "masked_spt_all"], fractions=[0.1, 1.0],
                              exclude=[])
    params = parse_params(raw_params)
    starts = {init: {resolve(params, Cell("listops", "s4d", init, 0, f)).start for f in (0.1, 1.0)}
              for init in ("scratch", "masked_spt", "masked_spt_all")}
    assert len(starts["scratch"]) == 1 and len(starts["masked_spt_all"]) == 1 and len(starts["masked_spt"]) == 2
    # the steps of an epoch budget follow the rows pretraining sees
    raw_params["pretrain"].update(steps=None, epochs=1)
    params = parse_params(raw_params)
    n_train = raw_params["tasks"]["listops"]["n_train"]
    tenth, every = (resolve(params, Cell("listops", "s4d", i, 0, 0.1)).budgets(n_train)[0]
                    for i in ("masked_spt", "masked_spt_all"))
    assert tenth < every


def test_an_init_pretraining_on_all_rows_makes_no_spt_claim(raw_params):
    raw_params["inits"]["masked_spt_all"] = {"kind": "masked_spt", "pretrain_rows": "all"}
    params = parse_params(raw_params)
    rng = np.random.default_rng(0)
    rows = [{"task": "digits", "arch": "transformer", "init": init, "seed": s, "fraction": 0.1, "status": "ok",
             "test_accuracy": base + rng.normal(0, 0.01), "finetune_steps": 100, "pretrain_steps": 0,
             "val_rising": False, "majority_accuracy": 0.1}
            for init, base in (("scratch", 0.4), ("masked_spt_all", 0.7)) for s in range(5)]
    verdicts = check(pd.DataFrame(rows), params.archs, {k: params.inits[k] for k in ("scratch", "masked_spt_all")})
    assert not [v for v in verdicts if v.claim.startswith("SPT") and v.verdict != "not run"]


def test_a_rule_can_exclude_one_label_fraction_of_a_task(raw_params):
    raw_params["grid"].update(tasks=["listops", "digits"], archs=["s4d"], inits=["scratch"], fractions=[0.1, 1.0],
                              exclude=[{"task": "listops", "fraction": 0.1}])
    params = parse_params(raw_params)
    from components.grid import arm_skip_reason, excluded

    assert excluded(params, Cell("listops", "s4d", "scratch", 0, 0.1))
    assert not excluded(params, Cell("listops", "s4d", "scratch", 0, 1.0))
    assert not excluded(params, Cell("digits", "s4d", "scratch", 0, 0.1))
    assert arm_skip_reason(params, "listops", "s4d", "scratch") is None  # the arm still runs at full labels
