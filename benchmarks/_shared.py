"""Helpers shared by the benchmark scripts: child processes stopped with the script, and
markdown tables.

Child processes are never left behind.
A benchmark stopped by SIGTERM or Ctrl-C stops what it started, grandchildren included (an
orphaned `arena grid` once kept training after its benchmark was killed, and skewed the next
measurement). Each child leads its own process group (`dvc repro` -> `arena grid` -> Prefect's
server), which gets SIGTERM first, so `arena grid` can close its runs, then SIGKILL."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pandas as pd

CHILDREN: list[subprocess.Popen] = []


def stop(p: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM to the child's whole process group, SIGKILL after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _stop_children(*_) -> None:
    for p in list(CHILDREN):
        stop(p)
    raise SystemExit(1)


def install() -> None:
    """Route SIGTERM and SIGINT through `_stop_children` (call once, from main)."""
    signal.signal(signal.SIGTERM, _stop_children)
    signal.signal(signal.SIGINT, _stop_children)


@contextlib.contextmanager
def _spawned(cmd: list[str], **kw) -> Iterator[subprocess.Popen]:
    """`subprocess.Popen(cmd, text=True, **kw)` leading a process group of its own, in CHILDREN
    while it runs, stopped if the body leaves before it ends."""
    p = subprocess.Popen(cmd, text=True, start_new_session=True, **kw)
    CHILDREN.append(p)
    try:
        yield p
    finally:
        if p.poll() is None:
            stop(p)
        CHILDREN.remove(p)


def child(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """`subprocess.run(cmd, capture_output=True, text=True, **kw)` in a process group of its own,
    stopped if this process leaves first."""
    with _spawned(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw) as p:
        out, err = p.communicate()
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def stamped(cmd: list[str], **kw) -> tuple[int, list[tuple[float, str]]]:
    """Like `child`, stdout and stderr merged, each line with the `time.perf_counter()` it arrived
    at -> (return code, [(seconds, line)]). Once the child exits, whatever is left of its process
    group goes too (an orphaned Prefect server would hold the pipe open forever)."""
    lines: list[tuple[float, str]] = []
    with _spawned(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw) as p:

        def read():
            for line in p.stdout:
                lines.append((time.perf_counter(), line.rstrip("\n")))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        p.wait()
    try:
        os.killpg(p.pid, signal.SIGKILL)  # leftovers only: the leader has exited
    except ProcessLookupError:
        pass
    reader.join(30)
    return p.returncode, lines


def markdown(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (empty cells for missing values)."""
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |"
                              for row in df.itertuples(index=False)])
