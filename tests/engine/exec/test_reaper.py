"""The reaper kills the task groups a dead runner left listed, and only those."""

from __future__ import annotations

import io
import signal
import subprocess
import sys

from kfp_lineage.engine.exec import reaper
from tests.engine.test_scheduler import _alive


def _sleeper() -> subprocess.Popen:
    """A process leading a group of its own, as a task does."""
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def test_at_end_of_input_the_groups_still_listed_are_killed():
    listed, ended = _sleeper(), _sleeper()
    try:
        killed = reaper.serve(io.BytesIO(f"+{listed.pid}\n+{ended.pid}\n-{ended.pid}\nnonsense\n".encode()))
        assert killed == {listed.pid}
        assert listed.wait(timeout=10) == -signal.SIGKILL
        assert ended.poll() is None  # taken off the list: not the reaper's to kill
    finally:
        for process in (listed, ended):
            process.kill()
            process.wait()


_RUNNER = """
import os, signal, subprocess, sys
from kfp_lineage.engine.exec import reaper

guard = reaper.Reaper()
task = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!; wait"], start_new_session=True, stdout=subprocess.PIPE)
guard.watch(task.pid)
print(task.pid, task.stdout.readline().decode().strip(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_runner_killed_with_sigkill_takes_its_tasks_and_their_children_along():
    runner = subprocess.run([sys.executable, "-c", _RUNNER], capture_output=True, text=True, timeout=60)
    assert runner.returncode == -signal.SIGKILL
    pids = [int(pid) for pid in runner.stdout.split()]
    assert len(pids) == 2
    assert not any(_alive(pid) for pid in pids)


def test_a_runner_that_closes_the_reaper_leaves_nothing_to_kill():
    guard = reaper.Reaper()
    task = _sleeper()
    try:
        guard.watch(task.pid)
        guard.unwatch(task.pid)
        guard.close()
        guard.watch(task.pid)  # after close: ignored
        assert task.poll() is None
    finally:
        task.kill()
        task.wait()
