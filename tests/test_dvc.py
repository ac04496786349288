"""dvc.yaml wiring: paths agree with components/paths.py, stage deps cover what stages import,
and `dvc repro` runs the pipeline, then re-runs nothing, then only what a param change touches."""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components import paths
from components.grid import Cell
from tests import official_files as of
from tests.conftest import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
DVC["materialize"] = DVC["materialize"]["do"]  # foreach over params `tasks`: ${key} is the task name
ITEM = {"task": "listops", "arch": "s4d", "init": "masked_spt", "seed": 3, "fraction": 0.25}


def render(template: str) -> str:
    template = template.replace("${key}", ITEM["task"])
    return re.sub(r"\$\{item\.(\w+)\}", lambda m: str(ITEM[m.group(1)]), template)


def outs(stage: str) -> list[str]:
    entries = DVC[stage].get("outs", []) + DVC[stage].get("metrics", [])
    return [render(next(iter(e)) if isinstance(e, dict) else e) for e in entries]


def test_dvc_paths_match_components_paths():
    cell = Cell(**ITEM)
    assert outs("materialize") == [str(paths.data_dir("listops")), *map(str, paths.card_paths("listops"))]
    assert outs("pretrain") == [str(paths.init_dir(cell))]
    assert outs("finetune") == [str(paths.finetune_dir(cell))]
    assert outs("evaluate") == [str(paths.metrics_path(cell))]
    assert str(paths.init_dir(cell)) in [render(d) for d in DVC["finetune"]["deps"]]
    assert str(paths.finetune_dir(cell)) in [render(d) for d in DVC["evaluate"]["deps"]]
    report = paths.report_dir()
    assert outs("report") == [str(report / n) for n in ("grid.csv", "grid.md", "grid.html", "claims.csv", "budget.csv",
                                                         "figures", "metrics.json")]
    arm = (cell.task, cell.arch, cell.init)
    assert outs("tune") == [str(paths.tuning_dir(*arm))]
    assert paths.selection_path(*arm).parent == paths.tuning_dir(*arm)
    trial = Cell(**ITEM, trial=0)
    for p in (paths.init_dir(trial), paths.finetune_dir(trial), paths.metrics_path(trial)):
        assert paths.tuning_dir(*arm) in p.parents  # a trial's files live in its arm's tune output
    for stage in ("pretrain", "finetune", "evaluate"):  # the selected values, not the trials' files and scores
        deps = [render(d) for d in DVC[stage]["deps"]]
        assert str(paths.selected_path(*arm)) in deps and str(paths.tuning_dir(*arm)) not in deps
        assert "tuning" not in DVC[stage]["params"]
    assert [next(iter(e)) for e in DVC["report"]["plots"]] == [str(report / "plots" / "learning_curves.csv")]


def component_imports(path: Path, seen: set[Path]) -> set[str]:
    """components.* modules a file imports, transitively."""
    found = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # imports for type checkers only do not run
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("components"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                for candidate in (ROOT / (name.replace(".", "/") + ".py"), ROOT / name.replace(".", "/") / "__init__.py"):
                    if candidate.exists() and candidate not in seen:
                        seen.add(candidate)
                        found.add(str(candidate.relative_to(ROOT)))
                        found |= component_imports(candidate, seen)
    return found


@pytest.mark.parametrize("stage", ["materialize", "tune", "pretrain", "finetune", "evaluate", "report"])
def test_stage_deps_cover_the_code_it_runs(stage):
    deps = [render(d) for d in DVC[stage]["deps"]]
    # plumbing whose changes cannot alter results is exempt (paths, file and MLflow I/O); config.py is
    # not: it holds the defaults of keys that params.yaml leaves out
    exempt = {"components/__init__.py", "components/paths.py", "components/atomic.py", "components/tracking.py", "components/stages/__init__.py"}
    module = ROOT / "components" / "stages" / f"{stage}.py"
    needed = component_imports(module, set()) - exempt
    for f in sorted(needed):
        assert any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps), f"{stage}: {f} not in deps"


@pytest.mark.parametrize("stage", ["tune", "pretrain", "finetune", "evaluate"])
def test_stages_that_record_a_config_hash_depend_on_all_the_code_it_hashes(stage):
    from components.versioning import CODE

    deps = [render(d) for d in DVC[stage]["deps"]]
    for entry in CODE:  # else an edit would re-run the stage without its records' hash noticing, or vice versa
        assert f"components/{entry}" in deps, f"{stage}: components/{entry} not in deps"


@pytest.mark.slow
def test_dvc_repro_reruns_only_what_changed(tmp_path, raw_params):
    shutil.copytree(ROOT / "components", tmp_path / "components", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", tmp_path)
    raw_params["grid"].update(archs=["s4d"], inits=["scratch", "masked_spt"], exclude=[])
    official = tmp_path / "official"  # file-based tasks read fixtures in the official formats
    of.write_pathfinder(official / "lra_release")
    raw_params["tasks"].update(
        listops_release={"kind": "listops", "source": str(of.write_listops(official / "lra_release"))},
        retrieval={"kind": "aan", "source": str(of.write_aan(official / "lra_release")), "max_length": 64},
        pathfinder32_release={"kind": "pathfinder", "source": str(official / "lra_release"), "resolution": 32},
        text={"kind": "imdb", "source": str(of.write_imdb(official)), "n_val": 2, "max_length": 16},
        image={"kind": "cifar10", "source": str(of.write_cifar(official)), "n_val": 5},
        mnist={"kind": "mnist", "source": str(of.write_mnist(official / "mnist", gz=True)), "n_val": 2},
        homology={"kind": "remote_homology", "source": str(of.write_homology(official / "homology"))},
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}

    def sh(*cmd: str) -> str:
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def ran(out: str) -> set[str]:
        return set(re.findall(r"Running stage '([^']+)'", out))

    sh("git", "init", "-q")
    sh("dvc", "init", "-q")
    sh("dvc", "config", "core.analytics", "false")
    first = ran(sh("dvc", "repro"))
    tasks = raw_params["tasks"]  # every task in params materializes, generated or read from `source`
    assert {f"materialize@{t}" for t in tasks} <= first and "report" in first
    assert len(first) == len(tasks) + 4 * 2 + 1  # tune, pretrain, finetune, evaluate per cell
    for task in tasks:
        assert (tmp_path / "data" / task / "meta.json").exists()
        assert all((tmp_path / p).stat().st_size > 0 for p in paths.card_paths(task))
        if "source" in tasks[task]:  # readers record the files they read, each with its sha256
            files = json.loads((tmp_path / "data" / task / "meta.json").read_text())["source"]["files"]
            assert files and all(len(digest) == 64 for digest in files.values())
    assert (tmp_path / "reports" / "grid.csv").exists()
    shown = sh("dvc", "metrics", "show", "reports/metrics.json")  # the report's outputs work with DVC's views
    assert "listops.s4d/masked_spt/1" in shown
    assert "dvc_plots" in sh("dvc", "plots", "show", "-o", str(tmp_path / "dvc_plots"))
    assert (tmp_path / "dvc_plots" / "index.html").exists()
    assert ran(sh("dvc", "repro")) == set()
    dag = sh("dvc", "dag", "--dot")  # each finetune hangs off its own pretraining
    assert '"pretrain@listops-s4d-masked_spt-0" -> "finetune@listops-s4d-masked_spt-0-1.0"' in dag
    assert '"pretrain@listops-s4d-scratch-0" -> "finetune@listops-s4d-masked_spt-0-1.0"' not in dag

    raw_params["finetune"]["steps"] = 4
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params))
    third = ran(sh("dvc", "repro"))
    assert third == {"finetune@listops-s4d-scratch-0-1.0", "finetune@listops-s4d-masked_spt-0-1.0",
                     "evaluate@listops-s4d-scratch-0-1.0", "evaluate@listops-s4d-masked_spt-0-1.0", "report",
                     "tune@listops-s4d-scratch", "tune@listops-s4d-masked_spt"}  # no-ops without tuning

    # tuning on: the tune stages train their trials, and the cells run what each arm selected
    raw_params["tuning"] = {"trials": 2, "seed": 1000, "space": {"finetune.lr": {"low": 1e-3, "high": 1e-2, "log": True},
                                                                 "pretrain.lr": {"low": 1e-3, "high": 1e-2, "log": True}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params))
    fourth = ran(sh("dvc", "repro"))
    assert {"tune@listops-s4d-scratch", "tune@listops-s4d-masked_spt", "pretrain@listops-s4d-masked_spt-0",
            "evaluate@listops-s4d-masked_spt-0-1.0", "report"} <= fourth
    sel = json.loads((tmp_path / paths.selection_path("listops", "s4d", "masked_spt")).read_text())
    assert sel["status"] == "ok" and sel["selected"] in (0, 1) and len(sel["candidates"]) == 2
    record = json.loads((tmp_path / paths.metrics_path(Cell("listops", "s4d", "masked_spt", 0))).read_text())
    assert record["status"] == "ok" and record["selection"]["values"] == sel["values"]
    chosen = json.loads((tmp_path / paths.selected_path("listops", "s4d", "masked_spt")).read_text())
    assert chosen["values"] == sel["values"] and not {"scores", "settings", "tune_run_id"} & set(chosen)
    assert "| 2/2 |" in (tmp_path / "reports" / "grid.md").read_text()  # the budget table
    # re-tuning to the same choice (new MLflow run, same selected.json) leaves the arm's cells alone
    sh("dvc", "repro", "--force", "--single-item", "tune@listops-s4d-masked_spt")
    assert json.loads((tmp_path / paths.selection_path("listops", "s4d", "masked_spt")).read_text())["tune_run_id"] \
        != sel["tune_run_id"]
    assert ran(sh("dvc", "repro")) == {"report"}
