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
from tests.conftest import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
DVC["materialize"] = DVC["materialize"]["do"]  # foreach over params `grid.tasks`: ${item} is the task name
CELL = Cell("listops", "s4d", "masked_spt", 3, 0.25)


def outs(stage: str) -> list[str]:
    entries = DVC[stage].get("outs", []) + DVC[stage].get("metrics", [])
    return [(next(iter(e)) if isinstance(e, dict) else e).replace("${item}", CELL.task) for e in entries]


def test_the_committed_lock_names_only_this_pipelines_stages():
    """DVC keeps lock entries of stages that no longer exist; a lock grown by old pipeline designs
    (hundreds of stale entries) made a no-op `dvc repro` spend most of its 3-4 s parsing YAML."""
    lock = ROOT / "dvc.lock"  # committed with the report of the committed run
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    tasks = yaml.safe_load((ROOT / "params.yaml").read_text())["grid"]["tasks"]
    allowed = {f"{name}@{t}" for name, s in stages.items() if "foreach" in s for t in tasks}
    allowed |= {name for name, s in stages.items() if "foreach" not in s}
    stale = set(yaml.safe_load(lock.read_text())["stages"]) - allowed
    assert not stale, f"dvc.lock has entries of stages dvc.yaml does not define: {sorted(stale)[:5]}"


def test_dvc_paths_match_components_paths():
    assert outs("materialize") == [str(paths.data_dir("listops")), *map(str, paths.card_paths("listops"))]
    grid = [Path(o) for o in outs("grid")]
    arm = (CELL.task, CELL.arch, CELL.init)
    trial = Cell(*arm, 1000, 0.25, trial=0)
    for p in (paths.init_dir(CELL), paths.finetune_dir(CELL), paths.metrics_path(CELL), paths.tuning_dir(*arm),
              paths.init_dir(trial), paths.finetune_dir(trial), paths.metrics_path(trial)):
        assert sum(o == p or o in p.parents for o in grid) == 1, p  # every result the grid writes is its output
    for p in (paths.lock_path(CELL), paths.resume_dir("finetune", CELL)):  # never DVC's: it would cache them
        assert not any(o in p.parents for o in grid)
    assert all(next(iter(e.values())).get("persist") for e in DVC["grid"]["outs"])  # a re-run keeps finished cells
    assert paths.data_dir("listops").parent == Path("data") and "data" in DVC["grid"]["deps"]
    report = paths.report_dir()
    assert outs("report") == [str(report / n) for n in ("grid.csv", "grid.md", "grid.html", "claims.csv", "budget.csv",
                                                         "figures", "metrics.json")]
    assert [next(iter(e)) for e in DVC["report"]["plots"]] == [str(report / "plots" / "learning_curves.csv")]


def test_grid_stage_depends_on_every_setting_a_cell_reads():
    from components.config import Params

    settings = set(Params.model_fields) - {"profile", "profiles"}  # profiles are applied into the file first
    assert settings == set(DVC["grid"]["params"])
    assert DVC["grid"]["cmd"].startswith("arena grid")


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


MODULES = {"materialize": ROOT / "components" / "stages" / "materialize.py", "grid": ROOT / "flows" / "grid.py",
           "report": ROOT / "components" / "stages" / "report.py"}


@pytest.mark.parametrize("stage", sorted(MODULES))
def test_stage_deps_cover_the_code_it_runs(stage):
    deps = DVC[stage]["deps"]
    # plumbing whose changes cannot alter results is exempt (paths, file and MLflow I/O); config is
    # not: it holds the defaults of keys that params.yaml leaves out
    exempt = {"components/__init__.py", "components/paths.py", "components/atomic.py", "components/tracking.py", "components/stages/__init__.py"}
    needed = component_imports(MODULES[stage], set()) - exempt
    assert needed
    for f in sorted(needed):
        assert any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps), f"{stage}: {f} not in deps"


def test_the_grid_stage_depends_on_all_the_code_a_config_hash_covers():
    from components.versioning import CODE

    for entry in CODE:  # else an edit would change cells' hashes without DVC re-running the grid, or vice versa
        assert any(f"components/{entry}".startswith(d.rstrip("/") + "/") or f"components/{entry}" == d
                   for d in DVC["grid"]["deps"]), entry


@pytest.mark.slow
def test_dvc_repro_runs_the_grid_then_nothing_then_only_the_cells_that_changed(tmp_path, raw_params):
    from mlflow.tracking import MlflowClient

    for code in ("components", "flows"):
        shutil.copytree(ROOT / code, tmp_path / code, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", tmp_path)
    raw_params["grid"].update(tasks=["listops"], archs=["s4d"], inits=["scratch", "masked_spt"], seeds=[0],
                              fractions=[1.0], exclude=[])
    raw_params["prefect"]["concurrency"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params))
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": store}

    def sh(*cmd: str) -> str:
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def ran(out: str) -> set[str]:
        return set(re.findall(r"Running stage '([^']+)'", out))

    def runs(stage: str) -> int:
        client = MlflowClient(store)
        exp = client.get_experiment_by_name(raw_params["tracking"]["experiment"])
        return len(client.search_runs([exp.experiment_id], f"tags.stage = '{stage}'"))

    sh("git", "init", "-q")
    sh("dvc", "init", "-q")
    sh("dvc", "config", "core.analytics", "false")
    assert ran(sh("dvc", "repro")) == {"materialize@listops", "grid", "report"}  # the grid's tasks only
    assert (tmp_path / "data" / "listops" / "meta.json").exists() and not (tmp_path / "data" / "digits").exists()
    assert (runs("pretrain"), runs("finetune")) == (1, 2)
    shown = sh("dvc", "metrics", "show", "reports/metrics.json")  # the report's outputs work with DVC's views
    assert "listops.s4d/masked_spt/1" in shown
    assert "dvc_plots" in sh("dvc", "plots", "show", "-o", str(tmp_path / "dvc_plots"))
    assert (tmp_path / "dvc_plots" / "index.html").exists()
    assert ran(sh("dvc", "repro")) == set()
    dag = sh("dvc", "dag", "--dot")
    assert '"materialize@listops" -> "grid"' in dag and '"grid" -> "report"' in dag

    # a finetuning setting: the grid stage re-runs, both cells finetune again from the kept pretraining
    scratch = tmp_path / paths.metrics_path(Cell("listops", "s4d", "scratch", 0))
    raw_params["finetune"]["steps"] = 4
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params))
    assert ran(sh("dvc", "repro")) == {"grid", "report"}
    assert (runs("pretrain"), runs("finetune")) == (1, 4)
    assert json.loads(scratch.read_text())["finetune_steps"] == 4

    # one more seed: only its cells train; the finished ones are taken from the record, not re-run
    before = scratch.read_bytes()
    raw_params["grid"]["seeds"] = [0, 1]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params))
    assert ran(sh("dvc", "repro")) == {"grid", "report"}
    assert (runs("pretrain"), runs("finetune")) == (2, 6)
    assert scratch.read_bytes() == before
    assert ran(sh("dvc", "repro")) == set()

    # tuning on: each arm's trials train, and the cells run what each arm selected
    raw_params["tuning"] = {"trials": 2, "seed": 1000, "space": {"finetune.lr": {"low": 1e-3, "high": 1e-2, "log": True},
                                                                 "pretrain.lr": {"low": 1e-3, "high": 1e-2, "log": True}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params))
    assert ran(sh("dvc", "repro")) == {"grid", "report"}
    sel = json.loads((tmp_path / paths.selection_path("listops", "s4d", "masked_spt")).read_text())
    assert sel["status"] == "ok" and sel["selected"] in (0, 1) and len(sel["candidates"]) == 2
    record = json.loads((tmp_path / paths.metrics_path(Cell("listops", "s4d", "masked_spt", 0))).read_text())
    assert record["status"] == "ok" and record["selection"]["values"] == sel["values"]
    assert "| 2/2 |" in (tmp_path / "reports" / "grid.md").read_text()  # the budget table
