"""Child processes for the benchmark scripts: killed with the script, never left behind.

A benchmark stopped by SIGTERM or Ctrl-C kills the training it started (an orphaned `arena grid`
once kept running after its benchmark was killed, and skewed the next measurement)."""
from __future__ import annotations

import signal
import subprocess

CHILDREN: list[subprocess.Popen] = []


def _kill_children(*_) -> None:
    for p in CHILDREN:
        if p.poll() is None:
            p.kill()
    raise SystemExit(1)


def install() -> None:
    """Route SIGTERM and SIGINT through `_kill_children` (call once, from main)."""
    signal.signal(signal.SIGTERM, _kill_children)
    signal.signal(signal.SIGINT, _kill_children)


def child(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """`subprocess.run(cmd, capture_output=True, text=True, **kw)`, with the child killed if this
    process leaves first."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    CHILDREN.append(p)
    try:
        out, err = p.communicate()
    finally:
        if p.poll() is None:
            p.kill()
        CHILDREN.remove(p)
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)
