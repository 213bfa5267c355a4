"""What submitting a compiled pipeline to a remote backend needs on every backend: offline argument checks,
bounded retries, per-call deadlines, and following a run until it ends.

The backends live beside it: `submit_vertex` (Vertex AI Pipelines) and `submit_kfp` (a Kubeflow Pipelines server).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, TypeVar

from kfp_lineage import errors
from kfp_lineage.ir import spec

T = TypeVar("T")

# Seconds one request may take before it is abandoned; submission and state polls are small requests.
REQUEST_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How a request answered "too many requests" (429) or "unavailable" (503) is retried: bounded, with backoff.

    Attempt n (from 1) waits min(initial_delay * multiplier**(n-1), max_delay) seconds, scaled by a random
    factor in [0.5, 1] so many clients do not retry in step; after `attempts` attempts the error is raised.
    """

    attempts: int = 5
    initial_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0

    def delays(self) -> Iterator[float]:
        """The waits before the 2nd, 3rd, ... attempt."""
        delay = self.initial_delay
        for _ in range(self.attempts - 1):
            yield min(delay, self.max_delay) * random.uniform(0.5, 1.0)
            delay *= self.multiplier


def call_with_retry(
    call: Callable[[], T],
    is_retryable: Callable[[BaseException], bool],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Calls `call`, retrying it after the policy's delays while it raises a retryable error.

    Returns:
        What `call` returned.

    Raises:
        Whatever `call` raised last: at once when not retryable, after the last attempt when retryable.
    """
    delays = policy.delays()
    while True:
        try:
            return call()
        except Exception as e:  # noqa: BLE001 - is_retryable decides
            delay = next(delays, None) if is_retryable(e) else None
            if delay is None:
                raise
        sleep(delay)


def call_with_deadline(call: Callable[[], T], timeout: float, what: str) -> T:
    """Runs `call` in a daemon thread and gives up after `timeout` seconds, for clients that take no timeout.

    Returns:
        What `call` returned (its exception is re-raised here).

    Raises:
        RemoteError: no answer within `timeout` seconds; the thread is left to finish on its own.
    """
    outcome: Dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = e

    worker = threading.Thread(target=target, name=f"kfp-lineage {what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise errors.RemoteError(
            f"{what}: no answer within {timeout:g} s: check that the server is up and reachable, then retry"
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@dataclasses.dataclass(frozen=True)
class RemoteRun:
    """A run on a remote backend, as last seen."""

    backend: str  # "vertex" or "kfp"
    run_id: str  # the Vertex AI pipeline job ID or the KFP run ID
    name: str  # the Vertex AI resource name, or the KFP run ID
    url: str  # where to look at it in a browser
    state: str  # the backend's state name, e.g. PIPELINE_STATE_SUCCEEDED or SUCCEEDED
    error: str = ""  # the backend's error message for a failed run

    @property
    def succeeded(self) -> bool:
        return self.state in ("PIPELINE_STATE_SUCCEEDED", "SUCCEEDED")

    def to_json(self) -> Dict[str, str]:
        return dataclasses.asdict(self)


def prepare_arguments(loaded: spec.LoadedPipeline, arguments: Mapping[str, Any]) -> Dict[str, Any]:
    """Checks arguments against the spec offline and returns the given ones, typed as the spec declares.

    Defaults are left to the backend (they are in the spec it receives), so a run records only what was passed.

    Raises:
        InvalidInputError: an unknown name, a wrongly typed value, or a required parameter without a value.
    """
    values = spec.validate_arguments(loaded.spec, arguments)
    return {name: values[name] for name in arguments}


def follow_run(
    fetch: Callable[[], RemoteRun],
    is_terminal: Callable[[str], bool],
    poll_interval: float,
    on_state: Optional[Callable[[RemoteRun], None]] = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RemoteRun:
    """Fetches the run every `poll_interval` seconds until its state is terminal; reports each new state.

    Returns:
        The run in its terminal state.
    """
    if poll_interval < 0:
        raise errors.InvalidInputError(f"poll interval must be 0 or more seconds, got {poll_interval:g}")
    last: Optional[str] = None
    while True:
        run = fetch()
        if run.state != last:
            last = run.state
            if on_state:
                on_state(run)
        if is_terminal(run.state):
            return run
        sleep(poll_interval)


def first_line(value: Any) -> str:
    """The first line of an error or message, stripped: what a one-line error quotes of a remote answer."""
    text = str(value).strip()
    return text.splitlines()[0] if text else ""
