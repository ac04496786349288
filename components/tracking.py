"""The MLflow adapter: one run per grid cell (and per pretraining), addressed by explicit run ids.

The tracking store is `MLFLOW_TRACKING_URI` when set, else a SQLite file `mlflow.db` in the
project root. It uses `MlflowClient` with explicit run ids rather than mlflow's global
"active run", so concurrent cells in one process cannot log into each other's runs; a grid run
is the parent of its cells' runs through an explicit `parent_run_id`, never an environment variable.
Each cell's finetune run carries its result as the tag `result` (JSON), so the record lives in
MLflow, where a controller on another machine can read it.
"""
from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # outbound traffic; before importing mlflow
# An unreachable server fails within seconds, not after MLflow's default retries (minutes).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

_BATCH = 900  # MLflow accepts at most 1000 metrics and 100 params per log_batch call
RETRIES = (1.0, 2.0, 4.0)  # seconds between tries of a write (a SQLite store locked by another writer)


class StoreError(RuntimeError):
    """The MLflow store cannot be reached or written; one line naming it."""


def _busy(err: MlflowException) -> bool:
    """A refusal worth waiting out: another writer holds the SQLite lock, or the server is busy."""
    return "locked" in str(err).lower() or getattr(err, "error_code", "") == "TEMPORARILY_UNAVAILABLE"


def _retry(call, *args, **kwargs):
    """`call`, again after each pause in RETRIES while the store is busy; then a StoreError."""
    for pause in (*RETRIES, None):
        try:
            return call(*args, **kwargs)
        except MlflowException as err:
            if not _busy(err):
                raise
            if pause is None:
                raise StoreError(f"MLflow store {tracking_uri()}: still busy after {len(RETRIES)} retries "
                                 f"({_first_line(err)})") from None
            time.sleep(pause)


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return (lines[0] if lines else type(err).__name__)[:300]


def check_store() -> None:
    """Fail at once, in one line naming the store, when it cannot be reached."""
    try:
        _client().search_experiments(max_results=1)
    except Exception as err:  # noqa: BLE001 (connection errors, locked or corrupt databases, bad URIs)
        raise StoreError(f"MLflow store {tracking_uri()}: unreachable ({_first_line(err)})") from None


def _owner() -> dict[str, str]:
    """Which process holds a run open: a later run closes the runs whose process is gone."""
    return {"host": socket.gethostname(), "pid": str(os.getpid())}


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = str(v)
    return out


class Tracker:
    def __init__(self, client: MlflowClient, run_id: str, reopened: bool = False):
        self.client, self.run_id, self.reopened = client, run_id, reopened

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()]
        for i in range(0, len(items), _BATCH):
            _retry(self.client.log_batch, self.run_id, metrics=items[i : i + _BATCH])

    def log_params(self, params: dict) -> None:
        items = [Param(k, v[:6000]) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):
            _retry(self.client.log_batch, self.run_id, params=items[i : i + 100])

    def set_tags(self, tags: dict[str, str]) -> None:
        _retry(self.client.log_batch, self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


@functools.lru_cache(maxsize=None)
def git_commit(cwd: str | None = None) -> str:
    """HEAD of the git checkout the code runs in, with `-dirty` if tracked files differ (other than
    what a run itself writes: dvc.lock and reports/); `unknown` outside git."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=cwd or Path.cwd(), capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise OSError(done.stderr.strip())
        return done.stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)dvc.lock",
                      ":(top,exclude)reports")
        return head + ("-dirty" if changed else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _client() -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri())


def _experiment_id(client: MlflowClient, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # created concurrently by another cell
        return client.get_experiment_by_name(name).experiment_id


@contextmanager
def start_run(experiment: str, run_name: str, tags: dict[str, str], run_id: str | None = None,
              parent_run_id: str | None = None) -> Iterator[Tracker]:
    """A new run (a child of `parent_run_id` if given), or the existing `run_id` reopened (a resumed
    training); it ends FINISHED, or FAILED (and the error propagates) if the body raises. An error
    with a `step` attribute (a diverged loss) also records `failed_at_step`."""
    client = _client()
    tags = {**tags, "git_commit": git_commit(), **_owner()}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    reopened = False
    if run_id is not None:
        try:
            run = client.get_run(run_id)
            client.update_run(run_id, status="RUNNING")
            if "error" in run.data.tags:  # an earlier interruption (Ctrl-C) is history now
                client.delete_tag(run_id, "error")
            Tracker(client, run_id).set_tags(_owner())
            reopened = True
        except MlflowException:  # not in this store (another tracking URI): record a new run
            run_id = None
    if run_id is None:
        run_id = client.create_run(_experiment_id(client, experiment), run_name=run_name, tags=tags).info.run_id
    tracker = Tracker(client, run_id, reopened)
    try:
        yield tracker
    except BaseException as err:
        abort(run_id, err, client)
        raise
    _retry(client.set_terminated, run_id, "FINISHED")


def abort(run_id: str, err: BaseException, client: MlflowClient | None = None) -> None:
    """End a run KILLED or FAILED (`ending`) because of `err`, recorded as its `error` tag (and
    `failed_at_step`), while `err` propagates. Never raises: the original error says more than a
    store that also failed, which only gets one line on stderr.

    An interrupt (SIGTERM, Ctrl-C) that lands inside an MLflow write leaves that statement's SQLite
    cursor referenced from the traceback's frames, and with it the database lock: every later write
    of this process would wait out the busy timeout and give up. For interrupts the frames' locals
    are cleared first (the traceback still prints), which frees the cursor and the lock; an error's
    locals stay for debuggers."""
    status = ending(err)
    if status == "KILLED":
        traceback.clear_frames(err.__traceback__)
    failure = {"error": f"{type(err).__name__}: {err}"[:5000]}
    if getattr(err, "step", None) is not None:
        failure["failed_at_step"] = str(err.step)
    try:
        client = client or _client()
        terminate = functools.partial(_retry, client.set_terminated)
        try:
            Tracker(client, run_id).set_tags(failure)
        except StoreError:  # the retries were waited out once: the status gets one try, not another round
            terminate = client.set_terminated
        except MlflowException:
            pass  # the status matters more
        terminate(run_id, status)
    except Exception as store_err:  # noqa: BLE001 (never mask err: a store error, an unreachable server)
        print(f"MLflow run {run_id} left RUNNING ({_first_line(store_err)}); a later launch on this host "
              "closes or resumes it", file=sys.stderr)


def ending(err: BaseException | None) -> str:
    """The MLflow status a run ends with: KILLED for Ctrl-C and SIGTERM, FAILED for an error."""
    if err is None:
        return "FINISHED"
    return "KILLED" if isinstance(err, (KeyboardInterrupt, SystemExit)) else "FAILED"


def resume_run(run_id: str) -> Tracker:
    """Log more into an existing run (evaluation adds the test metric to its finetune run)."""
    return Tracker(_client(), run_id)


def start_grid(experiment: str, run_name: str, tags: dict[str, str], parent_run_id: str | None = None,
               stage: str = "grid") -> str:
    """A parent run left open while its children run: one grid launch (its cells' runs name it as
    `parent_run_id`), or one arm's tuning (stage=tune, the parent of its trials' runs)."""
    client = _client()
    tags = {**tags, "stage": stage, "git_commit": git_commit(), **_owner()}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    return client.create_run(_experiment_id(client, experiment), run_name=run_name, tags=tags).info.run_id


def end_grid(run_id: str, failed: bool, tags: dict[str, str]) -> None:
    """Close a parent run whose children all ended: FAILED or FINISHED (interrupted: `abort`)."""
    client = _client()
    Tracker(client, run_id).set_tags(tags)
    _retry(client.set_terminated, run_id, "FAILED" if failed else "FINISHED")


def close_stale(experiment: str) -> list[str]:
    """End as KILLED the runs of `experiment` still RUNNING on this host whose process is gone (a
    SIGKILL, a lost machine); returns their ids. Runs of live processes are left alone."""
    from components.atomic import alive

    client = _client()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    closed = []
    for run in client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        if tags.get("host") == socket.gethostname() and tags.get("pid", "").isdigit() and not alive(int(tags["pid"])):
            Tracker(client, run.info.run_id).set_tags({"error": f"its process (pid {tags['pid']}) ended without "
                                                                "closing it; closed by a later run"})
            _retry(client.set_terminated, run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    return closed


def recorded(experiment: str) -> dict[str, dict]:
    """The results already in the store, by config hash: {hash: {record (a CellRecord),
    data_sha256, run_id}}, the newest run's where several share a hash. Only finetune runs that
    carry a `result`; a result written by code whose records differ is not this code's, so left out."""
    from pydantic import ValidationError

    from components.records import CellRecord

    client = _client()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return {}
    found: dict[str, dict] = {}
    token = None
    while True:
        page = client.search_runs([exp.experiment_id], "tags.stage = 'finetune'", max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        for run in page:
            tags = run.data.tags
            if "result" in tags and "config_hash" in tags:
                try:
                    record = CellRecord.model_validate_json(tags["result"])
                except ValidationError:
                    continue
                found[tags["config_hash"]] = {"record": record, "run_id": run.info.run_id,
                                              "data_sha256": tags.get("data_sha256", "")}
        token = page.token
        if not token:
            return found


def history(run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of one metric of a run, by step; [] when the store does not have the run."""
    try:
        return sorted((m.step, m.value) for m in _client().get_metric_history(run_id, key))
    except MlflowException:
        return []
