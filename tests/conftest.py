"""Shared fixtures. Every test is hermetic: MLflow, Prefect and DVC get temp homes, telemetry is
off, and all files are written under a temp working directory."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before anything imports mlflow or prefect (telemetry starts at import; PREFECT_HOME is read once).
_HOME = Path(tempfile.mkdtemp(prefix="arena-tests-"))
os.environ.update({
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "DVC_SITE_CACHE_DIR": str(_HOME / "dvc-site"),
    "DVC_GLOBAL_CONFIG_DIR": str(_HOME / "dvc-global"),
    "DVC_SYSTEM_CONFIG_DIR": str(_HOME / "dvc-system"),
    "PREFECT_HOME": str(_HOME / "prefect"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_TO_API_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "MLFLOW_TRACKING_URI": f"sqlite:///{_HOME / 'mlflow.db'}",  # one store per session (migrations cost ~2 s)
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost",
    "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@localhost",
})
os.environ.pop("PREFECT_API_URL", None)

import pytest  # noqa: E402
import yaml  # noqa: E402

from components.config import Params, parse_params  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def shrink(raw: dict) -> dict:
    """The real params.yaml, cut down to seconds-long runs."""
    raw["tasks"]["listops"].update(max_depth=4, min_length=8, max_length=48, n_train=240, n_val=48, n_test=48)
    for name, task in raw["tasks"].items():  # the tasks outside the grid: a few rows each
        if name != "listops":
            task.update(n_train=12, n_val=4, n_test=4, **({"min_length": 100, "max_length": 200}
                                                          if task["kind"] == "listops" else {}))
    for arch in raw["archs"].values():
        kind = arch["kind"]
        if kind == "fpt":
            arch["n_layers"] = 1  # the first block of the pretrained network
            continue
        arch.update(d_model=16, n_layers=1)
        if kind in ("transformer", "las", "las_chunk"):
            arch["n_heads"] = 2
        if kind in ("s4d", "dlr"):
            arch["d_state"] = 8
        if "block_size" in arch or "chunk" in arch:
            arch.update({k: 8 for k in ("block_size", "chunk") if k in arch})
    for init in raw["inits"].values():
        if init.get("total_steps"):
            init["total_steps"] = 6  # compute-tied arms: the shrunk scratch budget
    for phase in ("pretrain", "finetune"):
        raw[phase].update(steps=6, steps_by_arch={}, steps_by_task={}, steps_by_task_arch={}, batch_size=8,
                          warmup_steps=2, eval_every=3, log_every=2, checkpoint_every=3)
    # the grid of the cpu_wide profile (every arm once, ListOps, no tuning); tests narrow it as they need
    wide = raw["profiles"]["cpu_wide"]
    raw["grid"].update({key: wide[f"grid.{key}"] for key in ("tasks", "archs", "inits", "seeds", "fractions", "exclude")})
    raw["tuning"]["trials"] = 1
    return raw


@pytest.fixture
def raw_params(request) -> dict:
    raw = shrink(yaml.safe_load((ROOT / "params.yaml").read_text()))
    raw["tracking"]["experiment"] = f"test-{request.node.name}"  # one MLflow experiment per test
    return raw


@pytest.fixture
def tiny_params(raw_params) -> Params:
    return parse_params(raw_params)


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for the session (each start costs ~15 s on 2 cores)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
