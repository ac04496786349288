"""The Prefect flow runs the whole chain in local mode (a temporary Prefect server)."""
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from components import paths, tracking


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.mark.slow
def test_grid_flow_end_to_end(workdir, raw_params, prefect_harness):
    from flows.grid import grid_flow

    raw_params["grid"].update(archs=["s4d"], inits=["scratch", "masked_spt", "causal_spt"])
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    state = grid_flow("params.yaml", return_state=True)
    assert state.is_completed()
    grid = pd.read_csv(paths.report_dir() / "grid.csv").set_index("init")
    assert sorted(grid.index) == ["causal_spt", "masked_spt", "scratch"]
    assert grid.loc["causal_spt", "status"] == "skipped 1/1" and grid.loc["scratch", "status"] == "ok"
    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(raw_params["tracking"]["experiment"])
    runs = client.search_runs([exp.experiment_id], "tags.stage = 'finetune'")
    assert sorted(r.data.tags["init"] for r in runs) == ["masked_spt", "scratch"]
    assert all("test_accuracy" in r.data.metrics for r in runs)
