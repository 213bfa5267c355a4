"""Killing a run's task processes when its runner dies without stopping them (SIGKILL, the OOM killer).

Tasks run in sessions of their own (so a task can be killed as a group, and Ctrl-C reaches the runner only), so
nothing kills them when the runner dies: they would run on, re-parented to init, while `recover` marks them
FAILED. One reaper process per run prevents that. The runner tells it, one line each on the reaper's stdin, the
process group of every task it starts (`+PGID`) and of every task that ended (`-PGID`). That pipe's write end
lives only in the runner, so when the runner dies, however it dies, the reaper reads end-of-file: it kills every
group still listed and exits. A runner that ends normally has ended every task first: it closes the pipe and the
reaper exits with nothing to kill. Portable (a pipe, no /proc, no prctl), so it works on macOS too.

Standard library only: the reaper runs as `python -I <this file>`, without importing kfp_lineage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import IO, Optional, Set


def serve(requests: IO[bytes]) -> Set[int]:
    """The reaper: reads `+PGID` / `-PGID` lines until end of input, then SIGKILLs every group still listed.

    Returns the groups it signalled (for tests).
    """
    groups: Set[int] = set()
    for line in requests:
        text = line.strip()
        if text[:1] in (b"+", b"-") and text[1:].isdigit():
            pgid = int(text[1:])
            if text[:1] == b"+":
                groups.add(pgid)
            else:
                groups.discard(pgid)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return groups


class Reaper:
    """The runner's side: starts the reaper process at the first `watch`, then reports groups to it. Thread-safe.

    Never raises: a reaper that cannot start or has gone only loses this safety net, never a task.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: Optional[subprocess.Popen] = None
        self._closed = False

    def watch(self, pgid: int) -> None:
        """Lists a task's process group: the reaper kills it if the runner dies before `unwatch`."""
        self._send(f"+{pgid}\n")

    def unwatch(self, pgid: int) -> None:
        """Takes an ended task's group off the list."""
        self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        with self._lock:
            if self._closed:
                return
            if self._process is None:
                if line.startswith("-"):
                    return
                self._process = _start_reaper()
                if self._process is None:
                    self._closed = True
                    return
            try:
                self._process.stdin.write(line.encode())
                self._process.stdin.flush()
            except (OSError, ValueError):  # the reaper is gone: nothing left to tell
                self._closed = True

    def close(self) -> None:
        """Lets the reaper exit; call once every task ended (it kills what is still listed). Does not wait for it
        (a reaper still starting would cost a short run tens of milliseconds): a daemon thread reaps it."""
        with self._lock:
            self._closed = True
            process, self._process = self._process, None
        if process is not None:
            try:
                process.stdin.close()
            except OSError:
                pass
            threading.Thread(target=process.wait, name="kfp-lineage-reaper-wait", daemon=True).start()


def _start_reaper() -> Optional[subprocess.Popen]:
    """Starts the reaper in a session of its own (a signal to the runner's process group does not reach it),
    without this process's descriptors; None when it cannot start."""
    try:
        return subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )
    except OSError:
        return None


if __name__ == "__main__":
    serve(sys.stdin.buffer)
