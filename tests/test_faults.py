"""Fault injection: bad settings, corrupt data and checkpoints, an unreachable or busy MLflow
store, signals, two processes on one cell, leftovers of a killed run. Each case asserts what a
user sees and what is left: exit status 2 (or the signal's), exactly one line on stderr naming
the culprit, no traceback, no temp file, no MLflow run left RUNNING."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from components import paths, records, tracking
from components.atomic import file_sha256
from components.grid import Cell
from components.records import DataMeta
from flows.cli import main
from tests.conftest import ROOT
from tests.official_files import write_listops

CELL = ["--task", "listops", "--arch", "s4d", "--init", "scratch", "--seed", "0"]


def arena(*argv: str) -> tuple[int, str, str]:
    """`arena ARGV` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["--params", "params.yaml", *argv])
    return rc, out.getvalue(), err.getvalue()


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.name.split(".")[-2:]]


def running(experiment: str) -> list[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return [r.info.run_id for r in client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")]


def one_line_error(rc: int, err: str, *culprits: str, status: int = 2) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == status, (rc, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for culprit in culprits:
        assert culprit in lines[0], (culprit, lines[0])


# ----------------------------------------------------------------------------------------------
# settings: one line naming the key, nothing written


def _set(raw: dict, dotted: str, value) -> dict:
    node = raw
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return raw


SETTINGS = {
    "negative lr": ("finetune.lr.s4d", -0.001, "finetune.lr.s4d"),
    "zero lr": ("finetune.lr.s4d", 0.0, "finetune.lr.s4d"),
    "NaN lr": ("pretrain.lr.s4d", float("nan"), "pretrain.lr.s4d"),
    "infinite lr": ("finetune.lr.s4d", float("inf"), "finetune.lr.s4d"),
    "beta of 1": ("finetune.betas", [0.9, 1.0], "finetune.betas"),
    "negative beta": ("pretrain.betas", [-0.1, 0.9], "pretrain.betas"),
    "boolean steps": ("finetune.steps", True, "steps: true is a boolean"),
    "boolean batch size": ("pretrain.batch_size", True, "batch_size: true is a boolean"),
    "boolean d_model": ("archs.s4d.d_model", False, "d_model: false is a boolean"),
    "fractional warmup": ("finetune.warmup_steps", 2.5, "finetune.warmup_steps"),
    "zero eval interval": ("finetune.eval_every", 0, "finetune.eval_every"),
    "negative weight decay": ("finetune.weight_decay", -0.1, "finetune.weight_decay"),
    "empty experiment name": ("tracking.experiment", "", "tracking.experiment"),
    "blank experiment name": ("tracking.experiment", "   ", "tracking.experiment"),
    "unknown key": ("finetune.learning_rate", 0.1, "finetune.learning_rate: unknown key"),
    "undefined grid task": ("grid.tasks", ["nope"], "grid.tasks: 'nope' is not defined"),
    "fraction written as 1": ("grid.fractions", [1], "grid.fractions"),
    "zero-step budget by arch": ("finetune.steps_by_arch", {"s4d": 0}, "finetune.steps_by_arch.s4d"),
}


@pytest.mark.parametrize("case", SETTINGS)
def test_a_bad_setting_is_one_line_naming_its_key(case, workdir, raw_params):
    key, value, culprit = SETTINGS[case]
    (workdir / "params.yaml").write_text(yaml.safe_dump(_set(raw_params, key, value)))
    rc, out, err = arena("pretrain", *CELL)
    one_line_error(rc, err, "params.yaml", culprit)
    assert not (workdir / "data").exists() and not (workdir / "artifacts").exists()


@pytest.mark.parametrize("name", ["../x", "/tmp/elsewhere", "two words", "9lives", ""])
def test_names_that_are_not_plain_identifiers_are_refused_before_any_write(name, workdir, raw_params, tmp_path):
    outside = tmp_path.parent / "x"
    outside.mkdir(exist_ok=True)
    (outside / "keep.txt").write_text("a folder outside the project")
    raw_params["tasks"][name] = raw_params["tasks"]["listops"]
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    rc, out, err = arena("materialize", "--task", name)
    one_line_error(rc, err, "tasks:", "is not a plain name")
    assert (outside / "keep.txt").read_text() == "a folder outside the project"  # nothing outside removed
    assert not (workdir / "data").exists()


@pytest.mark.parametrize("text, culprit", [
    ("tasks: {}\ntasks: {}\n", "line 2: key 'tasks' given twice (first on line 1)"),
    ("grid:\n  seeds: [0, 1\n", "not valid YAML: line 3"),
    ("grid: [a: b\n", "not valid YAML: line"),
    ("", "<root>"),
    ("\tgrid: 1\n", "not valid YAML: line 1"),
])
def test_broken_yaml_is_one_line_with_its_line_number(text, culprit, workdir):
    (workdir / "params.yaml").write_text(text)
    rc, out, err = arena("report")
    one_line_error(rc, err, "params.yaml", culprit)


def test_a_duplicate_key_deep_in_the_file_names_its_line(workdir):
    text = (ROOT / "params.yaml").read_text().replace("    seed: 0\n", "    seed: 0\n    seed: 1\n", 1)
    (workdir / "params.yaml").write_text(text)
    rc, out, err = arena("report")
    line = text.splitlines().index("    seed: 1") + 1
    one_line_error(rc, err, f"line {line}: key 'seed' given twice")


@pytest.mark.parametrize("argv, culprit", [
    (["finetune", *CELL, "--fraction", "1.5"], "--fraction 1.5"),
    (["pretrain", "--task", "nope", "--arch", "s4d", "--init", "scratch", "--seed", "0"], "--task nope"),
    (["--params", "missing.yaml", "report"], "missing.yaml: file not found"),
])
def test_bad_command_lines_are_one_line(argv, culprit, workdir, raw_params):
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(argv if argv[0] == "--params" else ["--params", "params.yaml", *argv])
    one_line_error(rc, err.getvalue(), culprit)


# ----------------------------------------------------------------------------------------------
# data: caught when the split loads (every row), one line naming file, row and column


@pytest.fixture
def ready(workdir, raw_params):
    """A materialized listops, the s4d scratch initialization, and the params file."""
    raw_params["grid"].update(archs=["s4d"], inits=["scratch"])
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    assert arena("materialize", "--task", "listops")[0] == 0
    assert arena("pretrain", *CELL)[0] == 0
    return workdir


def rewrite(split: str, table: pa.Table | bytes, fingerprint: bool = True) -> Path:
    """Replace a split's file; with `fingerprint`, meta.json records its new sha256 (a corrupt
    materialization), else it is an edit in place."""
    path = paths.split_path("listops", split)
    if isinstance(table, bytes):
        path.write_bytes(table)
    else:
        pq.write_table(table, path)
    if fingerprint:
        meta = records.load(DataMeta, paths.meta_path("listops"))
        records.save(meta.model_copy(update={"sha256": {**meta.sha256, split: file_sha256(path)}}),
                     paths.meta_path("listops"))
    return path


def tokens_table(inputs: list, labels: list, input_type=pa.list_(pa.int16())) -> pa.Table:
    return pa.table({"input": pa.array(inputs, type=input_type), "label": pa.array(labels, type=pa.int64())})


def good_rows(n: int = 8) -> tuple[list, list]:
    return [[5, 6, 7]] * n, [1] * n


DATA = {
    "label out of range": (lambda: tokens_table(good_rows()[0], [1, 2, 3, 99, 1, 1, 1, 1]), "train",
                           "row 3, column 'label': 99 is outside the 10 classes"),
    "negative label": (lambda: tokens_table(good_rows()[0], [1, 1, 1, 1, 1, -1, 1, 1]), "train",
                       "row 5, column 'label': -1"),
    "null label": (lambda: tokens_table(good_rows()[0], [1, None, 1, 1, 1, 1, 1, 1]), "train",
                   "row 1, column 'label': null"),
    "token outside the vocabulary": (lambda: tokens_table([[5, 6], [5, 600], *good_rows(6)[0]], [1] * 8), "val",
                                     "row 1, column 'input': 600 is outside the vocabulary"),
    "negative token": (lambda: tokens_table([*good_rows(6)[0], [5, -3], [5]], [1] * 8), "train",
                       "row 6, column 'input': -3"),
    "null input": (lambda: tokens_table([[5], None, [6]], [1, 1, 1]), "train", "row 1, column 'input': null"),
    "null token inside a row": (lambda: tokens_table([[5], [6, None]], [1, 1]), "val",
                                "row 1, column 'input': a null element"),
    "NaN inputs": (lambda: tokens_table([[5.0, float("nan")], [6.0]], [1, 1], pa.list_(pa.float64())), "train",
                   "column 'input' is list<element: double>"),
    "missing label column": (lambda: pa.table({"input": pa.array(good_rows()[0], type=pa.list_(pa.int16()))}),
                             "train", "column 'label' is missing"),
    "empty train split": (lambda: tokens_table([], []), "train", "the train split has no rows"),
    "empty val split": (lambda: tokens_table([], []), "val", "the val split has no rows"),
    "an empty sequence": (lambda: tokens_table([[5], [], [6]], [1, 1, 1]), "train",
                          "row 1, column 'input': an empty sequence"),
    "truncated parquet": (lambda: paths.split_path("listops", "train").read_bytes()[:200], "train",
                          "not a readable Parquet file"),
    "not parquet at all": (lambda: b"label,input\n1,2 3\n", "val", "not a readable Parquet file"),
}


@pytest.mark.parametrize("case", DATA)
def test_corrupt_data_is_caught_at_load_naming_file_row_and_column(case, ready):
    make, split, culprit = DATA[case]
    rewrite(split, make())
    rc, out, err = arena("finetune", *CELL)
    one_line_error(rc, err, f"data/listops/{split}.parquet", culprit)
    assert not paths.finetune_dir(Cell("listops", "s4d", "scratch", 0)).exists()
    assert leftovers(ready) == [] and running(yaml.safe_load(Path("params.yaml").read_text())["tracking"]["experiment"]) == []


def test_an_empty_test_split_stops_evaluate_in_one_line(ready):
    assert arena("finetune", *CELL)[0] == 0
    rewrite("test", tokens_table([], []))
    rc, out, err = arena("evaluate", *CELL)
    one_line_error(rc, err, "data/listops/test.parquet", "the test split has no rows")
    assert not paths.metrics_path(Cell("listops", "s4d", "scratch", 0)).exists()


def test_a_split_edited_in_place_is_refused_by_the_stages_and_the_grid(ready):
    rows, labels = good_rows()
    rewrite("train", tokens_table(rows, labels), fingerprint=False)
    rc, out, err = arena("finetune", *CELL)
    one_line_error(rc, err, "data/listops/train.parquet", "sha256 differs from data/listops/meta.json")
    rc, out, err = arena("grid", "--dry-run")  # never reported as recorded
    one_line_error(rc, err, "data/listops/train.parquet", "sha256 differs")


@pytest.mark.parametrize("content, culprit", [
    ("{not json", "not a valid DataMeta record"),
    ('{"task": "listops", "kind": "tokens"}', "not a valid DataMeta record (n_classes: Field required)"),
    ('{"task": "listops", "kind": "strings", "n_classes": 2, "source": {}, "rows": {}, "length": {}, "sha256": {}}',
     "kind: Input should be"),
])
def test_a_malformed_meta_json_is_one_line(content, culprit, ready):
    paths.meta_path("listops").write_text(content)
    rc, out, err = arena("finetune", *CELL)
    one_line_error(rc, err, "data/listops/meta.json", culprit)


def test_sequences_longer_than_the_models_positions_are_caught_at_load(workdir, raw_params):
    raw_params["grid"].update(archs=["fpt"], inits=["fpt_frozen"], exclude=[])
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    assert arena("materialize", "--task", "listops")[0] == 0
    fpt = ["--task", "listops", "--arch", "fpt", "--init", "fpt_frozen", "--seed", "0"]
    assert arena("pretrain", *fpt)[0] == 0
    rewrite("train", tokens_table([[5] * 700, *good_rows(3)[0]], [1] * 4))
    rc, out, err = arena("finetune", *fpt)
    one_line_error(rc, err, "data/listops/train.parquet", "row 0, column 'input': 700 tokens, more than the model's 512")


def test_a_header_only_release_file_is_one_line(workdir, raw_params, tmp_path):
    release = write_listops(tmp_path / "release", {"train": [], "val": [("( [MAX 2 ] )", 2)],
                                                   "test": [("( [MAX 2 ] )", 2)]})
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    rc, out, err = arena("materialize", "--task", "listops", "--from", str(release))
    one_line_error(rc, err, "basic_train.tsv", "no data rows after the header")
    assert not (workdir / "data" / "listops").exists() and leftovers(workdir) == []


# ----------------------------------------------------------------------------------------------
# checkpoints


def test_a_corrupt_initial_checkpoint_is_one_line(ready):
    (paths.init_dir(Cell("listops", "s4d", "scratch", 0)) / "backbone.pt").write_bytes(b"PK\x03\x04 truncated")
    rc, out, err = arena("finetune", *CELL)
    one_line_error(rc, err, "backbone.pt", "unreadable checkpoint")


def test_a_malformed_info_json_is_one_line(ready):
    (paths.init_dir(Cell("listops", "s4d", "scratch", 0)) / "info.json").write_text('{"status": "ok"}')
    rc, out, err = arena("finetune", *CELL)
    one_line_error(rc, err, "info.json", "not a valid InitInfo record")


def test_finetuning_without_its_initialization_is_one_line(workdir, raw_params):
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    assert arena("materialize", "--task", "listops")[0] == 0
    rc, out, err = arena("finetune", *CELL)
    one_line_error(rc, err, "artifacts/init/listops/s4d/scratch/seed0", "missing")


def test_a_corrupt_resume_checkpoint_is_named_moved_aside_and_training_restarts(ready, capsys):
    from components.spec import resolve
    from components.config import load_params
    from components.stages import common

    spec = resolve(load_params("params.yaml"), Cell("listops", "s4d", "scratch", 0))
    resume = common.resume_file("finetune", spec.cell, {"probe": 1})
    resume.parent.mkdir(parents=True, exist_ok=True)
    resume.write_bytes(b"not a checkpoint")
    from components.training.loop import read_meta

    assert read_meta(resume) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreadable resume checkpoint" in err and str(resume) in err
    assert not resume.exists() and resume.with_suffix(".corrupt").read_bytes() == b"not a checkpoint"
    assert arena("finetune", *CELL)[0] == 0  # and the stage itself trains from step 0


# ----------------------------------------------------------------------------------------------
# MLflow: unreachable in one line within 30 s; a busy store retried, then one line


@pytest.mark.parametrize("uri, culprit", [
    ("http://127.0.0.1:9", "MLflow store http://127.0.0.1:9: unreachable"),
    ("sqlite:////proc/no-such-dir/mlflow.db", "MLflow store sqlite:////proc/no-such-dir/mlflow.db: unreachable"),
    ("bogus-scheme://somewhere", "MLflow store bogus-scheme://somewhere: unreachable"),
])
def test_an_unreachable_store_is_one_line_within_30_seconds(uri, culprit, ready, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    began = time.monotonic()
    rc, out, err = arena("finetune", *CELL)
    assert time.monotonic() - began < 30
    one_line_error(rc, err, culprit)
    assert not paths.finetune_dir(Cell("listops", "s4d", "scratch", 0)).exists()


def test_a_locked_store_is_retried_then_fails_in_one_line(monkeypatch):
    from mlflow.exceptions import MlflowException

    calls = []

    def locked(*args, **kwargs):
        calls.append(1)
        if len(calls) < 3:
            raise MlflowException("(sqlite3.OperationalError) database is locked")
        return "written"

    monkeypatch.setattr(tracking, "RETRIES", (0.0, 0.0, 0.0))
    assert tracking._retry(locked) == "written" and len(calls) == 3  # waited out
    calls.clear()
    with pytest.raises(tracking.StoreError, match="still busy after 3 retries"):
        tracking._retry(lambda: (_ for _ in ()).throw(MlflowException("database is locked")))
    with pytest.raises(MlflowException, match="bad parameter"):  # other errors are not retried
        tracking._retry(lambda: (_ for _ in ()).throw(MlflowException("bad parameter")))


# ----------------------------------------------------------------------------------------------
# processes: SIGTERM, stale runs, one cell at a time, leftovers


def test_sigterm_ends_the_run_killed_and_a_rerun_finishes(ready, raw_params):
    experiment = yaml.safe_load(Path("params.yaml").read_text())["tracking"]["experiment"]
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["finetune"].update(steps=400, eval_every=100, checkpoint_every=50)
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "--params", "params.yaml", "finetune", *CELL],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ready)
    deadline = time.monotonic() + 120
    while not running(experiment) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # into training
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip() and "it/s" not in line and "%|" not in line]
    assert proc.returncode == 143 and len(lines) == 1 and "stopped (signal SIGTERM)" in lines[0], err
    assert running(experiment) == [] and leftovers(ready) == []
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    (killed,) = client.search_runs([exp.experiment_id], "tags.stage = 'finetune'")
    assert killed.info.status == "KILLED"
    assert arena("finetune", *CELL)[0] == 0  # resumes and finishes the same run
    (done,) = client.search_runs([exp.experiment_id], "tags.stage = 'finetune'")
    assert done.info.run_id == killed.info.run_id and done.info.status == "FINISHED"


@pytest.mark.parametrize("kind", ["SELECT", "INSERT"])
def test_an_interrupt_inside_an_mlflow_write_still_ends_the_run_killed(workdir, raw_params, monkeypatch, kind):
    """SIGTERM lands in a metric write right after one of its statements ran (a SELECT, whose
    cursor holds SQLite's shared lock until read out, or an INSERT): the cursor, kept alive by the
    traceback's frames, would keep the lock, and the run could never be closed (the cause of the
    old flake of the test above). Raised as a signal handler would raise it."""
    from sqlalchemy.engine.default import DefaultDialect

    from components.signals import Terminated

    experiment = raw_params["tracking"]["experiment"]
    armed, fired = [], []

    def interrupting(execute):
        def interrupted(self, cursor, statement, parameters, context=None):
            execute(self, cursor, statement, parameters, context)
            if armed and armed[-1] and not fired and statement.lstrip().upper().startswith(kind):
                fired.append(statement)
                raise Terminated("signal SIGTERM")
        return interrupted

    for name in ("do_execute", "do_executemany"):
        monkeypatch.setattr(DefaultDialect, name, interrupting(getattr(DefaultDialect, name)))
    with pytest.raises(Terminated):
        with tracking.start_run(experiment, "interrupted", {"stage": "finetune"}) as tracker:
            run_id = tracker.run_id
            for step in range(100):
                armed.append(step == 3)
                tracker.log_metrics({"loss": 1.0}, step=step)
    assert fired and running(experiment) == []
    run = tracking._client().get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["error"] == "Terminated: signal SIGTERM"


def test_runs_of_a_killed_process_are_closed_by_the_next_run(workdir, raw_params):
    experiment = raw_params["tracking"]["experiment"]
    gone = subprocess.Popen(["true"])
    gone.wait()
    run_id = tracking.start_grid(experiment, "grid-killed", {})
    tracking.resume_run(run_id).set_tags({"pid": str(gone.pid)})  # as if that process had opened it
    alive = tracking.start_grid(experiment, "grid-alive", {})  # this process: still alive
    assert tracking.close_stale(experiment) == [run_id]
    assert running(experiment) == [alive]
    tracking.end_grid(alive, False, {})


def test_two_processes_on_one_cell_never_both_run(ready):
    from components.stages.unit import CellBusy, hold

    cell = Cell("listops", "s4d", "scratch", 0)
    with hold(cell):
        rc, out, err = arena("finetune", *CELL)  # the lock is per open file: this second holder is refused
        one_line_error(rc, err, "listops-s4d-scratch-s0: already running", f"pid {os.getpid()}")
        rc, out, err = arena("finetune", *CELL, "--fraction", "0.5")  # scratch: one start for every fraction
        one_line_error(rc, err, "listops-s4d-scratch-s0: already running")
        with pytest.raises(CellBusy):
            with hold(cell):  # a second holder in this process too
                pass
    assert arena("finetune", *CELL)[0] == 0  # free again


def test_leftovers_of_a_killed_materialize_are_removed_by_the_next(workdir, raw_params):
    (workdir / "params.yaml").write_text(yaml.safe_dump(raw_params))
    gone = subprocess.Popen(["true"])
    gone.wait()
    data = workdir / "data"
    stale_dir, stale_file = data / f".listops.{gone.pid}.abcd.tmp", data / f".listops.{gone.pid}.efgh.tmp"
    stale_dir.mkdir(parents=True)
    (stale_dir / "train.parquet").write_bytes(b"half")
    stale_file.write_bytes(b"half")
    live = data / f".listops.{os.getpid()}.live.tmp"  # a writer that is still running keeps its temp
    live.mkdir()
    assert arena("materialize", "--task", "listops")[0] == 0
    assert not stale_dir.exists() and not stale_file.exists() and live.exists()


def test_a_unit_killed_while_finetuning_keeps_its_self_pretraining(workdir, raw_params, monkeypatch):
    """Through the unit runner (what `arena grid` and `arena run` use), a finished pretraining is
    current and is not run again, so finetuning resumes from its own checkpoint."""
    from components.config import parse_params
    from components.spec import resolve
    from components.stages import pretrain, unit

    params = parse_params(raw_params)
    spec = resolve(params, Cell("listops", "s4d", "masked_spt", 0))
    unit.ensure_data(params, "listops")
    pretrain.run(spec)
    assert pretrain.current(spec)
    monkeypatch.setattr(pretrain, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("pretrained again")))
    (record,) = unit.run_unit([spec]).values()
    assert record.status == "ok"
    other = resolve(parse_params({**raw_params, "pretrain": {**raw_params["pretrain"], "steps": 5}}), spec.cell)
    assert not pretrain.current(other)  # other pretraining settings: not current


def test_the_fault_suite_has_at_least_forty_cases():
    import inspect

    module = sys.modules[__name__]
    count = 0
    for name, fn in inspect.getmembers(module, inspect.isfunction):
        if name.startswith("test_") and name != "test_the_fault_suite_has_at_least_forty_cases":
            marks = getattr(fn, "pytestmark", [])
            sizes = [len(m.args[1]) for m in marks if m.name == "parametrize"]
            count += int(np.prod(sizes)) if sizes else 1
    assert count >= 40, count
