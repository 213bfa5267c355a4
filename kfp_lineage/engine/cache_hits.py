"""Serving container tasks from the cache: the run's index of earlier results (read from MLMD once), a hit
recorded as a CACHED execution that points at the original outputs, and new results added as they complete."""

from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional

from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage.engine import caching
from kfp_lineage.engine import container_tasks
from kfp_lineage.engine import progress
from kfp_lineage.engine import reuse
from kfp_lineage.engine.exec import handler
from kfp_lineage.ir import dataflow
from kfp_lineage.mlmd import recorder
from kfp_lineage.mlmd import vocabulary


@dataclasses.dataclass
class CacheHit:
    """A task served from the cache: its CACHED execution, the execution whose outputs it reuses, and those."""

    execution_id: int
    cached_execution_id: int
    produced: dataflow.Produced


class CacheHits:
    """The cache of one run: this pipeline's COMPLETE container executions by fingerprint."""

    def __init__(self, record: recorder.Recorder, contexts: recorder.RunContexts, reporter: progress.Reporter,
                 enabled: bool, environments: Optional[Mapping[str, handler.TaskEnvironment]] = None):
        """`enabled` is the run's switch (run_pipeline(enable_cache=...)); each task's own setting applies too.
        `environments` (RunOptions.task_environments) puts each task's isolated environment in its fingerprint."""
        self._environments = environments or {}
        self._recorder = record
        self._contexts = contexts
        self._reporter = reporter
        self._enabled = enabled
        self._index: Optional[Dict[str, int]] = None  # read at the first task that may be cached

    def serve(self, task: container_tasks.ContainerTask) -> Optional[CacheHit]:
        """Records a cache hit for `task` and returns it, or None for a miss.

        For a task that may be cached, its fingerprint is put in task.properties[vocabulary.CACHE_FINGERPRINT] either way,
        so the execution it gets on a miss carries it (and later runs can find it).
        """
        if not (self._enabled and task.task.caching_options.enable_cache):
            return None
        environment = self._environments.get(task.component.executor_label)
        fingerprint = caching.fingerprint(task.component, task.container, task.parameters, task.artifacts,
                                          task.task.caching_options.cache_key, task.task.component_ref.name,
                                          environment.identity() if environment is not None else None)
        task.properties[vocabulary.CACHE_FINGERPRINT] = fingerprint
        if self._index is None:
            self._index = self._recorder.cache_index(self._contexts)
        cached_id = self._index.get(fingerprint)
        cached = self._recorder.cached_result(cached_id) if cached_id is not None else None
        if cached is None:
            return None
        # The original's log is not one of its results: never checked, never handed downstream. As the backend's
        # driver, the hit's `executor-logs` OUTPUT event points at the original's (the newest, after retries).
        logs = cached.artifacts.pop(vocabulary.EXECUTOR_LOGS, [])
        reused = {k: [a.id for a in arts] for k, arts in cached.artifacts.items()}
        if logs:
            reused[vocabulary.EXECUTOR_LOGS] = [max(a.id for a in logs)]
        missing = caching.missing_outputs((a.uri, vocabulary.CONTENT_DIGEST in a.custom_properties)
                                          for arts in cached.artifacts.values() for a in arts)
        if missing:
            self._reporter.warn(
                f"{task.key}: the cached result's artifact {missing[0]} was deleted; running the task again")
            return None
        redacted = caching.redacted_outputs(cached.outputs)
        if redacted:
            self._reporter.warn(f"{task.key}: the cached result's output {redacted[0]!r} was recorded redacted; "
                                "running the task again")
            return None
        properties = dict(task.properties, **{vocabulary.CACHED_EXECUTION_ID: str(cached.execution_id),
                                               vocabulary.IMAGE: task.container.image,
                                               vocabulary.OUTPUTS: cached.outputs})
        execution_id, _ = self._recorder.record_finished_execution(
            self._contexts, vocabulary.CONTAINER_EXECUTION_TYPE, properties, mlmd_pb.Execution.CACHED,
            input_artifacts=task.input_ids,
            reused_output_artifacts=reused,
        )
        produced = dataflow.Produced(parameters=reuse.typed_outputs(task.component, cached.outputs))
        for output, arts in cached.artifacts.items():
            version = reuse.output_schema_version(task.component, output)
            produced.artifacts[output] = [reuse.input_artifact(a, version) for a in arts]
        return CacheHit(execution_id, cached.execution_id, produced)

    def remember(self, fingerprint: str, execution_id: int) -> None:
        """Makes a task that completed in this run a hit for later tasks of the run with the same fingerprint."""
        if fingerprint and self._index is not None:
            self._index[fingerprint] = execution_id
