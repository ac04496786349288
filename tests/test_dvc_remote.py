"""A DVC remote in a local folder: the machine that ran `dvc repro` pushes the datasets and
checkpoints, a fresh clone pulls them byte for byte, and its `dvc repro` then runs no stage."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

GRID = {"tasks": ["listops"], "archs": ["s4d"], "inits": ["scratch", "masked_spt"], "seeds": [0],
        "fractions": [1.0], "exclude": []}


def digests(root: Path, *dirs: str) -> dict[str, str]:
    """sha256 of every file under the given directories (but DVC's .gitignore files, which git
    carries), by path relative to root."""
    found = {}
    for d in dirs:
        for f in sorted((root / d).rglob("*")):
            if f.is_file() and f.name != ".gitignore":
                found[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return found


@pytest.mark.slow
def test_clone_pulls_data_and_checkpoints_from_a_local_remote(tmp_path, raw_params):
    origin, clone, remote, home = (tmp_path / n for n in ("origin", "clone", "remote", "home"))
    origin.mkdir()
    home.mkdir()
    for code in ("components", "flows"):
        shutil.copytree(ROOT / code, origin / code, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", origin)
    shutil.copy(ROOT / ".gitignore", origin)  # as shipped: data, artifacts and metrics stay out of git
    raw_params["grid"].update(GRID)
    raw_params["tasks"] = {"listops": raw_params["tasks"]["listops"]}
    (origin / "params.yaml").write_text(yaml.safe_dump(raw_params))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "DO_NOT_TRACK": "true",
           "HOME": str(home), "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"), "GIT_CONFIG_NOSYSTEM": "1"}

    def sh(cwd: Path, *cmd: str) -> str:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}{done.stderr}"
        return done.stdout

    def ran(out: str) -> set[str]:
        return set(re.findall(r"Running stage '([^']+)'", out))

    # the machine that builds: run the pipeline, push to the shared folder, commit code + dvc.lock
    sh(origin, "git", "init", "-q")
    sh(origin, "dvc", "init", "-q")
    sh(origin, "dvc", "config", "core.analytics", "false")
    built = ran(sh(origin, "dvc", "repro"))
    assert built == {"materialize@listops", "grid", "report"}
    sh(origin, "dvc", "remote", "add", "-d", "shared", str(remote))  # written to .dvc/config, committed
    sh(origin, "dvc", "push")
    assert "in sync" in sh(origin, "dvc", "status", "--cloud")
    sh(origin, "git", "add", "-A")
    sh(origin, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "grid")

    tracked = ["data/listops", "artifacts/init", "artifacts/finetune", "metrics"]
    before = digests(origin, *tracked)
    init = "artifacts/init/listops/s4d/masked_spt/seed0"
    assert {f"data/listops/{f}" for f in ("train.parquet", "val.parquet", "test.parquet", "meta.json")} <= set(before)
    assert f"{init}/backbone.pt" in before

    # a worker: a fresh clone gets the remote from the committed .dvc/config and nothing else
    sh(tmp_path, "git", "clone", "-q", str(origin), str(clone))
    assert "shared" in sh(clone, "dvc", "remote", "list") and sh(clone, "dvc", "remote", "default").strip() == "shared"
    assert digests(clone, *tracked) == {} and not (clone / ".dvc" / "cache").exists()

    sh(clone, "dvc", "pull", "data/listops")  # one task's data only
    assert digests(clone, *tracked) == {k: v for k, v in before.items() if k.startswith("data/listops/")}

    sh(clone, "dvc", "pull")
    assert digests(clone, *tracked) == before  # datasets and checkpoints byte-identical, none regenerated
    assert "up to date" in sh(clone, "dvc", "status")
    again = sh(clone, "dvc", "repro")
    assert "Running stage" not in again and ran(again) == set()
