"""SIGTERM as an interruption: timeout, DVC and Prefect stop a process with SIGTERM, and the
default action ends it on the spot, leaving its MLflow runs RUNNING. With `install()`, SIGTERM
raises `Terminated` (a KeyboardInterrupt) in the main thread instead, so open runs end KILLED and
temp files are cleaned up on the way out, exactly as for Ctrl-C."""
from __future__ import annotations

import signal
import threading


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


def _raise(signum, frame):
    raise Terminated(f"signal {signal.Signals(signum).name}")


def install() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise)
