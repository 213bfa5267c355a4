"""The kfp-lineage pytest plugin: run a pipeline into a fresh MLMD store and assert the lineage it recorded.

Registered through the `pytest11` entry point, so installing kfp-lineage is enough. Fixtures:

- `mlmd_store`: a fresh SQLite store in the test's tmp_path (`.url`, `.path`, `.store`);
- `run_pipeline(pipeline, arguments=None, **options)`: runs a compiled spec, `FILE.py[:FUNC]` or a
  `@dsl.pipeline` into that store, pipeline root and working directory in tmp_path; returns the RunResult;
- `assert_lineage(run)`: fluent checks of the recorded lineage, e.g.
  `assert_lineage(run).task("train").consumed("ingest.train").produced("model", "system.Model")`,
  and `assert_lineage(run).matches("specs/training.lineage.yaml")` for a whole lineage spec.

Every pytest run in an environment with kfp-lineage loads this module, so it imports nothing heavy at the top:
kfp and ml-metadata are imported inside the fixtures and helpers that need them.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Mapping, Optional, Sequence, Union

import pytest

from kfp_lineage import task_paths

if TYPE_CHECKING:  # pragma: no cover - types only
    from ml_metadata.metadata_store import metadata_store

    from kfp_lineage.expect import record as expectations_record
    from kfp_lineage.engine import scheduler as orchestrator


@dataclasses.dataclass
class MLMDStore:
    """A test's ml-metadata store: its URL (for run_pipeline(store=...)), its file, and the opened store."""

    url: str
    path: str
    _store: Any = dataclasses.field(default=None, repr=False)

    @property
    def store(self) -> "metadata_store.MetadataStore":
        """The opened ml-metadata store (created on first use)."""
        if self._store is None:
            from kfp_lineage.mlmd import store as store_module

            self._store = store_module.open_store(store_module.parse_store_url(self.url))
        return self._store


@pytest.fixture
def mlmd_store(tmp_path: Any) -> MLMDStore:
    """A fresh SQLite ml-metadata store in tmp_path."""
    path = os.path.join(str(tmp_path), "mlmd.sqlite")
    return MLMDStore(url=f"sqlite:///{path}", path=path)


@pytest.fixture
def run_pipeline(mlmd_store: MLMDStore, tmp_path: Any) -> Callable[..., "orchestrator.RunResult"]:
    """Runs a pipeline into `mlmd_store`: `run_pipeline(pipeline, arguments=None, allow_failure=False, **options)`.

    `pipeline` is a compiled YAML path, `FILE.py[:FUNC]` or a `@dsl.pipeline` object; `options` go to
    kfp_lineage.run_pipeline (run_id, max_parallel, env, ...). The pipeline root is tmp_path/pipeline-root and
    tasks run in tmp_path (pass cwd= to change it; relative paths in arguments resolve against it). A run
    that ends FAILED fails the test with the failed task's error, unless allow_failure=True.
    """

    def run(pipeline: Any, arguments: Optional[Mapping[str, Any]] = None, *, allow_failure: bool = False,
            **options: Any) -> "orchestrator.RunResult":
        __tracebackhide__ = True
        from kfp_lineage.engine import run as run_module

        options.setdefault("pipeline_root", os.path.join(str(tmp_path), "pipeline-root"))
        options.setdefault("cwd", str(tmp_path))
        result = run_module.run_pipeline(pipeline, arguments, store=mlmd_store.url, **options)
        if not result.succeeded and not allow_failure:
            failed = [f"{t.key}: {t.error} (log: {t.log_path})" for t in result.tasks.values()
                      if t.state == "FAILED" and t.error]
            pytest.fail(f"run {result.run_id} ended {result.state}: " + ("; ".join(failed) or "no task error recorded"))
        return result

    return run


@pytest.fixture(name="assert_lineage")
def assert_lineage_fixture(mlmd_store: MLMDStore) -> Callable[..., "LineageAssertion"]:
    """`assert_lineage(run)` reading the run from `mlmd_store`; see kfp_lineage.expect.pytest_plugin.assert_lineage."""

    def check(run: Any) -> LineageAssertion:
        return assert_lineage(run, mlmd_store.store)

    return check


def assert_lineage(run: Any, store: Any = None) -> "LineageAssertion":
    """Starts assertions about the lineage a run recorded.

    Args:
        run: a RunResult, or a run id.
        store: an opened ml-metadata store or a store URL; None means the store the RunResult names (SQLite or
            a server URL without a password).

    Returns:
        A LineageAssertion; its methods raise AssertionError showing the recorded lineage of the task involved.
    """
    from kfp_lineage.expect import record as expectations_record
    from kfp_lineage.mlmd import store as store_module

    run_id = run if isinstance(run, str) else run.run_id
    if store is None:
        # RunResult.store is the redacted URL: exact for SQLite (sqlite:////abs/path); a server store with a
        # password needs the store passed in.
        store = run.store
    if isinstance(store, str):
        store = store_module.open_store(store_module.parse_store_url(store))
    return LineageAssertion(expectations_record.read_run(store, run_id))


class LineageAssertion:
    """Assertions about one recorded run; `task()` narrows to one task."""

    def __init__(self, recorded: "expectations_record.RecordedRun"):
        self.recorded = recorded

    def task(self, path: str) -> "TaskAssertion":
        """The task at `path` (`train`, `condition-1/condition-branches-2/condition-3/deploy-local`, or just the
        last segment when it is unique); fails when the run recorded no such task."""
        __tracebackhide__ = True
        found = self.recorded.find_task(path)
        if found is None:
            close = self.recorded.closest_task(path)
            hint = f" (did you mean {close}?)" if close else ""
            raise AssertionError(f"run {self.recorded.run_id} recorded no task {path!r}{hint}; recorded tasks: "
                                 + ", ".join(self.recorded.tasks))
        return TaskAssertion(self, found)

    def matches(self, spec: Union[str, os.PathLike, Any]) -> "LineageAssertion":
        """Checks the whole run against a lineage spec file (see docs/lineage-spec.md); fails listing every
        difference and the recorded lineage of the tasks involved."""
        __tracebackhide__ = True
        from kfp_lineage.expect import check as expectations
        from kfp_lineage.expect import spec as expectations_spec

        loaded = spec if isinstance(spec, expectations_spec.LineageSpec) else expectations_spec.load_lineage_spec(spec)
        if loaded.pipeline != self.recorded.pipeline:
            raise AssertionError(f"lineage spec {loaded.source} is for pipeline {loaded.pipeline!r}, but run "
                                 f"{self.recorded.run_id} is a run of {self.recorded.pipeline!r}")
        result = expectations.CheckResult(loaded, self.recorded, expectations.compare_lineage(loaded, self.recorded))
        if not result.ok:
            raise AssertionError(result.to_text())
        return self


class TaskAssertion:
    """Assertions about one task of a run; every method returns the assertion, so calls chain."""

    def __init__(self, run: LineageAssertion, recorded: "expectations_record.RecordedTask"):
        self.run = run
        self.recorded = recorded

    def task(self, path: str) -> "TaskAssertion":
        """Moves on to another task of the same run."""
        __tracebackhide__ = True
        return self.run.task(path)

    def state(self, *states: str) -> "TaskAssertion":
        """The task ended in one of `states` (COMPLETE, FAILED, CANCELED, CACHED)."""
        __tracebackhide__ = True
        if self.recorded.state not in states:
            self._fail(f"task {self.recorded.path} ended {self.recorded.state}, expected {' or '.join(states)}")
        return self

    def consumed(self, producer: str, key: Optional[str] = None, artifact_type: Optional[str] = None) -> "TaskAssertion":
        """The task has an INPUT event for an artifact that `producer` (`TASK.OUTPUT`, e.g. `ingest.train`) made.

        Args:
            producer: `TASK_PATH.OUTPUT` of the producing task in the same run (the last path segment is enough).
            key: the input name it must be recorded under; None accepts any.
            artifact_type: the artifact type it must have (`system.Dataset`); None accepts any.
        """
        __tracebackhide__ = True
        candidates = [e for e in self._events("INPUT", key) if _same_producer(e.producer, producer)]
        what = f"{producer}" + (f" as input {key!r}" if key else "")
        if not candidates:
            self._fail(f"task {self.recorded.path} did not consume {what}")
        if artifact_type and not any(e.artifact_type == artifact_type for e in candidates):
            found = ", ".join(sorted({e.artifact_type for e in candidates}))
            self._fail(f"task {self.recorded.path} consumed {what} as {found}, expected {artifact_type}")
        return self

    def produced(self, key: str, artifact_type: Optional[str] = None, metadata: Sequence[str] = ()) -> "TaskAssertion":
        """The task has an OUTPUT event under `key`, of `artifact_type`, whose artifact has the `metadata` keys."""
        __tracebackhide__ = True
        events = self._events("OUTPUT", key)
        if not events:
            self._fail(f"task {self.recorded.path} recorded no output {key!r}")
        if artifact_type and not any(e.artifact_type == artifact_type for e in events):
            found = ", ".join(sorted({e.artifact_type for e in events}))
            self._fail(f"output {key!r} of task {self.recorded.path} is a {found}, expected {artifact_type}")
        missing = [m for m in metadata if not all(m in e.metadata for e in events)]
        if missing:
            self._fail(f"output {key!r} of task {self.recorded.path} has no metadata {', '.join(missing)}")
        return self

    def did_not_consume(self, producer: str) -> "TaskAssertion":
        """The task has no INPUT event for an artifact that `producer` (`TASK.OUTPUT`) made."""
        __tracebackhide__ = True
        if any(_same_producer(e.producer, producer) for e in self._events("INPUT", None)):
            self._fail(f"task {self.recorded.path} consumed {producer}, expected it not to")
        return self

    def _events(self, direction: str, key: Optional[str]) -> List[Any]:
        group = self.recorded.inputs if direction == "INPUT" else self.recorded.outputs
        return [e for k, events in group.items() if key is None or k == key for e in events]

    def _fail(self, message: str) -> None:
        __tracebackhide__ = True
        _fail(message, [self.recorded])


def _same_producer(recorded: Optional[str], wanted: str) -> bool:
    if recorded is None:
        return False
    wanted = task_paths.normalize_producer(wanted)  # `for-loop-2[0]/train.model` names a loop's task too
    if recorded == wanted:
        return True
    task, _, output = recorded.rpartition(".")
    wanted_task, _, wanted_output = wanted.rpartition(".")
    return output == wanted_output and task.rsplit("/", 1)[-1] == wanted_task


def _fail(message: str, tasks: Iterable[Any]) -> None:
    __tracebackhide__ = True
    from kfp_lineage.expect import record as expectations_record

    lines = [message, "recorded lineage:"]
    for task in tasks:
        lines.extend("  " + line for line in expectations_record.describe_task(task))
    raise AssertionError("\n".join(lines))
