"""How a run stops early: SIGINT, SIGTERM and SIGHUP become a stop request that the scheduler polls, so the run
ends with every execution final instead of dying wherever the signal lands; and how an error that stops the
runner is described (one line, the traceback in a file)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import traceback
from typing import Any, Dict, Iterator, Optional

# Ctrl-C; CI cancellation, `kill`, Kubernetes; the terminal closing.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopRequest:
    """Whether a signal asked the run to stop, and which one (the first; later ones change nothing)."""

    def __init__(self) -> None:
        self.signal_number: Optional[int] = None

    @property
    def requested(self) -> bool:
        return self.signal_number is not None

    def request(self, signal_number: int) -> None:
        """Notes a stop request. Safe in a signal handler: it only sets an attribute."""
        if self.signal_number is None:
            self.signal_number = signal_number


@contextlib.contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[StopRequest]:
    """While the block runs, the stop signals only note a request in `stop`; the previous handlers come back after.

    Only the main thread can handle signals: elsewhere nothing changes. A signal this process ignores (SIG_IGN:
    `nohup`, a background job of a non-interactive shell) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous: Dict[int, Any] = {}
    try:
        for number in STOP_SIGNALS:
            if signal.getsignal(number) is signal.SIG_IGN:
                continue
            previous[number] = signal.signal(number, lambda received, _frame: stop.request(received))
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def describe_signal(number: Optional[int]) -> str:
    """`interrupted` for SIGINT (Ctrl-C), else the signal's name (`SIGTERM`)."""
    if number in (None, signal.SIGINT):
        return "interrupted"
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def summarize_error(error: BaseException) -> str:
    """`Type: first line of the message`, at most 300 characters."""
    text = str(error).strip().splitlines()
    summary = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    return summary if len(summary) <= 300 else summary[:297] + "..."


def write_traceback(scratch_root: str, error: BaseException) -> str:
    """Writes the error's traceback to `<scratch root>/runner-error.log`; its path, or "" when it cannot."""
    path = os.path.join(scratch_root, "runner-error.log")
    try:
        os.makedirs(scratch_root, exist_ok=True)
        with open(path, "w", encoding="utf-8") as log:
            log.write("".join(traceback.format_exception(type(error), error, error.__traceback__)))
    except OSError:
        return ""
    return path
