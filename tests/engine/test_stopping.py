"""Stopping a run from outside, in this process: real signals sent to the test process while run_pipeline runs
in its main thread. (tests/reliability/test_faults.py does the same to a `kfp-lineage run` process.)"""

from __future__ import annotations

import os
import signal

import pytest

from kfp_lineage import errors
from kfp_lineage.engine import progress
from kfp_lineage.engine import run as run_module
from kfp_lineage.engine import stopping
from tests import conftest
from tests.mlmd_view import RunView
from tests.reliability import faults


class _SignalWhenStarted(progress.Reporter):
    """Sends a signal to this process once a given task started (its process is running)."""

    def __init__(self, task: str, signal_number: int) -> None:
        self.task, self.signal_number = task, signal_number

    def task_started(self, key: str) -> None:
        if key == self.task:
            os.kill(os.getpid(), self.signal_number)


@pytest.mark.parametrize("signal_number, exit_code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_run_pipeline_cancels_the_run_and_raises_run_canceled(tmp_path, sqlite_url,
                                                                               signal_number, exit_code):
    before = signal.getsignal(signal_number)
    with pytest.raises(errors.RunCanceled) as raised:
        run_module.run_pipeline(faults.slow_and_quick, {"marker": str(tmp_path / "never")}, store=sqlite_url,
                                pipeline_root=str(tmp_path / "root"), run_id="stopped",
                                reporter=_SignalWhenStarted("sleep-and-mark", signal_number))
    assert isinstance(raised.value, KeyboardInterrupt)
    assert raised.value.signal_number == signal_number and raised.value.exit_code == exit_code
    assert signal.getsignal(signal_number) is before  # the caller's handler is back
    view = RunView(conftest.open_store(sqlite_url), "stopped")
    assert view.state("sleep-and-mark") == "CANCELED"
    assert "wait-for" not in view.by_key or view.state("wait-for") == "CANCELED"
    assert view.state("") == "CANCELED"
    assert view.run_context.custom_properties["runner_state"].string_value == "CANCELED"


def test_a_stop_requested_before_the_run_writes_nothing(tmp_path, sqlite_url):
    from kfp_lineage.engine import results, scheduler
    from kfp_lineage.ir import spec
    from kfp_lineage.mlmd import recorder

    stop = stopping.StopRequest()
    stop.request(signal.SIGTERM)
    stop.request(signal.SIGINT)  # the first request is the one that counts
    loaded = spec.load_pipeline(faults.crashing)
    store = conftest.open_store(sqlite_url)
    options = results.RunOptions(pipeline_root=str(tmp_path / "root"), run_id="never", max_parallel=1,
                                 cwd=str(tmp_path), env=dict(os.environ))
    runner = scheduler.Scheduler(loaded.spec, {}, recorder.Recorder(store), options, progress.Reporter(),
                                 store_label=sqlite_url, stop=stop)
    with pytest.raises(errors.RunCanceled) as raised:
        runner.run()
    assert raised.value.exit_code == 143
    assert store.get_contexts() == [] and store.get_executions() == []


def test_an_ignored_signal_stays_ignored_and_handlers_come_back():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        stop = stopping.StopRequest()
        with stopping.stop_on_signals(stop):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN  # nohup'd: not ours to catch
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
        assert stop.signal_number == signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGHUP, previous)
