"""Container tasks from a free slot to a recorded end: the queue under max_parallel, the launch through the run's
task handler, retries with backoff, and each task's execution in MLMD (RUNNING, then its final state and outputs).

Knows nothing of the DAG: the scheduler queues tasks whose inputs are resolved and reads back FinishedTasks.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import threading
import time
import traceback
import uuid
from typing import Any, Deque, Dict, List, Mapping, Optional, Set

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import digests
from kfp_lineage import redaction
from kfp_lineage.engine import executor_logs
from kfp_lineage.engine import frames
from kfp_lineage.engine import progress
from kfp_lineage.engine import results
from kfp_lineage.engine.exec import handler
from kfp_lineage.engine.exec import supervision
from kfp_lineage.ir import dataflow
from kfp_lineage.mlmd import recorder
from kfp_lineage.mlmd import vocabulary


@dataclasses.dataclass
class ContainerTask:
    """A container task whose inputs are resolved: queued, then running."""

    frame: frames.Frame  # the DAG it belongs to (the scheduler's; not read here)
    name: str
    task: pipeline_spec_pb2.PipelineTaskSpec
    component: pipeline_spec_pb2.ComponentSpec
    container: handler.ContainerSpec
    parameters: Dict[str, Any]
    artifacts: Dict[str, List[dataflow.InputArtifact]]
    properties: Dict[str, Any]  # the execution's properties so far (display name, inputs, fingerprint...)
    input_ids: Dict[str, List[int]]

    @property
    def key(self) -> str:
        return self.frame.child_key(self.name)


@dataclasses.dataclass
class FinishedTask:
    """How a container task ended, as recorded: COMPLETE (with what it produced), FAILED or CANCELED."""

    task: ContainerTask
    state: str
    execution_id: int
    produced: dataflow.Produced
    duration: float
    error: str
    log_path: str
    attempts: int


@dataclasses.dataclass
class _Running:
    task: ContainerTask
    execution_id: int
    launch: handler.TaskLaunch
    logs: executor_logs.AttemptLogs
    attempt: int = 1


class TaskRunner:
    """Runs the container tasks of one run through its task handler, at most `options.max_parallel` at once.

    Use from the scheduler's thread only: enqueue, then start tasks while next_ready gives one, wait, and collect
    each done future; close at the end.
    """

    def __init__(self, *, task_handler: handler.TaskHandler, processes: handler.RunningProcesses,
                 record: recorder.Recorder, contexts: recorder.RunContexts, reporter: progress.Reporter,
                 options: results.RunOptions, pipeline_name: str, run_root: str, scratch_root: str,
                 task_env: Mapping[str, str], arguments: Mapping[str, Any]):
        self._handler = task_handler
        self._processes = processes
        self._recorder = record
        self._contexts = contexts
        self._reporter = reporter
        self._options = options
        self._pipeline_name = pipeline_name
        self._run_root = run_root
        self._scratch_root = scratch_root
        self._task_env = task_env
        self._arguments = arguments
        self._queue: Deque[ContainerTask] = collections.deque()
        self._futures: Dict[concurrent.futures.Future, _Running] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=options.max_parallel)

    @property
    def busy(self) -> bool:
        """Whether a task attempt is running (or waiting for its retry's backoff)."""
        return bool(self._futures)

    def enqueue(self, task: ContainerTask) -> None:
        self._queue.append(task)

    def next_ready(self) -> Optional[ContainerTask]:
        """The next queued task, taken off the queue, when fewer than max_parallel tasks run; else None."""
        if self._queue and len(self._futures) < self._options.max_parallel:
            return self._queue.popleft()
        return None

    def start(self, task: ContainerTask) -> None:
        """Starts the task's first attempt and records its execution (RUNNING) once its process runs.

        The execution is written (with the writes deferred before it, Recorder.defer) as soon as the task's
        process has started, not before: the writes (a few milliseconds, most of it the disk) overlap the task's
        run instead of delaying its start. ml-metadata's calls hold the GIL, so the launch itself (command,
        fork) is done first. Nothing reads the task's outcome before this returns, so its execution always
        exists by then; if the write fails, the run stops on the error and kills the task.
        """
        properties = dict(task.properties, **{vocabulary.IMAGE: task.container.image})
        attempt_id = str(uuid.uuid4())
        started = threading.Event()
        task_dir = os.path.join(self._run_root, task.name, attempt_id)
        environment = self._options.task_environments.get(task.component.executor_label)
        env = dict(self._task_env)
        if environment is not None and environment.isolated:
            # Its `python3` and console scripts first, as in its image; VIRTUAL_ENV so an installer the task runs
            # (uv, pip) can only touch its environment, never the runner's.
            env["PATH"] = environment.bin_dir + os.pathsep + env.get("PATH", os.defpath)
            env["VIRTUAL_ENV"] = environment.path
            if environment.source_dir:  # an image's code, read from the directory it is built from
                env["PYTHONPATH"] = os.pathsep.join(p for p in (environment.source_dir, env.get("PYTHONPATH")) if p)
        env.update({variable.name: variable.value for variable in task.container.env})
        launch = handler.TaskLaunch(
            label=task.key,
            component_spec=task.component,
            container=task.container,
            parameters=task.parameters,
            artifacts=task.artifacts,
            output_uris={output: os.path.join(task_dir, output)
                         for output in task.component.output_definitions.artifacts},
            scratch_dir=os.path.join(self._scratch_root, f"{task.name}-{attempt_id}"),
            log_path=os.path.join(self._run_root, "logs", task.key + ".log"),
            pipeline_name=self._pipeline_name,
            run_id=self._options.run_id,
            pipeline_root=self._options.pipeline_root,
            cwd=self._options.cwd,
            env=env,
            timeout=self._options.task_timeout,
            secret_values=tuple(redaction.secret_values({**self._arguments, **task.parameters})),
            environment=environment,
            on_started=started.set,
        )
        os.makedirs(os.path.dirname(launch.log_path), exist_ok=True)
        if environment is not None:
            with open(launch.log_path, "a", encoding="utf-8") as log:
                log.write("".join(line + "\n" for line in environment.describe()))
        self._reporter.task_started(task.key)
        logs = executor_logs.AttemptLogs(launch.log_path, task_dir)
        future = self._pool.submit(_run_attempt, self._handler, launch, logs, 1, started=started)
        started.wait()
        execution_id = self._recorder.create_execution(
            self._contexts, vocabulary.CONTAINER_EXECUTION_TYPE, properties, input_artifacts=task.input_ids
        )
        self._futures[future] = _Running(task, execution_id, launch, logs)

    def wait(self, timeout: Optional[float] = None) -> Set[concurrent.futures.Future]:
        """Blocks until at least one attempt ended, or `timeout` seconds passed; the futures of the attempts that
        ended (none after a timeout), to pass to collect."""
        done, _ = concurrent.futures.wait(self._futures, timeout=timeout,
                                          return_when=concurrent.futures.FIRST_COMPLETED)
        return done

    def collect(self, future: concurrent.futures.Future) -> Optional[FinishedTask]:
        """Records how an attempt ended; None when the task's retry policy started another attempt instead."""
        running = self._futures.pop(future)
        launch = running.launch
        try:
            outcome = future.result()
        except Exception as e:  # a bug in the handler, not in the task: record it, keep the store consistent
            outcome = handler.TaskOutcome(False, {}, {}, 0.0, error=f"could not run the task: {e!r}")
        if outcome.succeeded and not outcome.artifacts:
            # Nothing downstream waits for this task's records (no output artifacts, whose ids its consumers
            # need): its log artifact and COMPLETE are written later, while the next task runs (Recorder.defer).
            self._recorder.defer(lambda: self._publish_complete(running, outcome))
            return FinishedTask(running.task, results.COMPLETE, running.execution_id,
                                dataflow.Produced(parameters=dict(outcome.parameters)), outcome.duration, "",
                                launch.log_path, running.attempt)
        if outcome.succeeded:
            # A local output must stay under the run's directory; a URI with a scheme names a remote resource
            # (GCPC's google.VertexModel carries its https://...aiplatform... resource URI) and is not a path.
            escaped = [a.uri for arts in outcome.artifacts.values() for a in arts
                       if "://" not in a.uri and not _inside(a.uri, self._run_root)]
            if escaped:
                outcome = handler.TaskOutcome(
                    False, {}, {}, outcome.duration,
                    error=f"output URI {escaped[0]} is outside the run's directory {self._run_root}",
                )
            null = recorder.null_metadata(outcome.artifacts)
            if null:  # the backend's launcher cannot record it and fails the task
                outcome = handler.TaskOutcome(False, {}, {}, outcome.duration, error=null)
        if not outcome.succeeded and not outcome.canceled and self._retry(running, outcome):
            return None
        if not outcome.succeeded:
            state = results.CANCELED if outcome.canceled else results.FAILED
            self._recorder.publish_execution(self._contexts, running.execution_id, results.MLMD_STATE[state],
                                             output_artifacts={} if outcome.canceled else running.logs.outputs())
            return FinishedTask(running.task, state, running.execution_id, dataflow.Produced(), outcome.duration,
                                outcome.error, launch.log_path, running.attempt)
        artifact_ids = self._publish_complete(running, outcome)
        produced = dataflow.Produced(parameters=dict(outcome.parameters))
        for output, artifacts in outcome.artifacts.items():
            produced.artifacts[output] = [
                dataflow.InputArtifact(
                    artifact_id=artifact_id, schema_title=artifact.type.schema_title,
                    schema_version=artifact.type.schema_version, uri=artifact.uri,
                    metadata=json_format.MessageToDict(artifact.metadata),
                )
                for artifact, artifact_id in zip(artifacts, artifact_ids.get(output, []))
            ]
        return FinishedTask(running.task, results.COMPLETE, running.execution_id, produced, outcome.duration, "",
                            launch.log_path, running.attempt)

    def _publish_complete(self, running: _Running, outcome: handler.TaskOutcome) -> Dict[str, List[int]]:
        """Records a succeeded task: its execution COMPLETE with its outputs, and its output and log artifacts.
        Output key -> artifact ids."""
        drafts = {
            output: [
                recorder.OutputArtifact(
                    schema_title=artifact.type.schema_title, uri=artifact.uri,
                    metadata=digests.with_content_digest(json_format.MessageToDict(artifact.metadata), artifact.uri),
                    display_name=output,
                )
                for artifact in artifacts
            ]
            for output, artifacts in outcome.artifacts.items()
        }
        drafts.update(running.logs.outputs())
        return self._recorder.publish_execution(
            self._contexts, running.execution_id, mlmd_pb.Execution.COMPLETE,
            properties={vocabulary.OUTPUTS: outcome.parameters}, output_artifacts=drafts,
        )

    def _retry(self, running: _Running, outcome: handler.TaskOutcome) -> bool:
        """Resubmits a failed task when its retry policy allows another attempt; the execution stays RUNNING."""
        policy = running.task.task.retry_policy
        if self._processes.canceled or running.attempt > policy.max_retry_count:
            return False
        delay = policy.backoff_duration.ToTimedelta().total_seconds() * (
            (policy.backoff_factor or 2.0) ** (running.attempt - 1)
        )
        if policy.HasField("backoff_max_duration"):
            delay = min(delay, policy.backoff_max_duration.ToTimedelta().total_seconds())
        running.attempt += 1
        running.logs.attempt_started()
        self._reporter.warn(
            f"{running.task.key}: attempt {running.attempt - 1} failed ({outcome.error}); attempt {running.attempt} "
            f"of {policy.max_retry_count + 1} in {delay:g} s"
        )
        future = self._pool.submit(_run_attempt, self._handler, running.launch, running.logs, running.attempt,
                                   delay=delay)
        self._futures[future] = running
        return True

    def close(self) -> None:
        """Waits for the worker threads (every attempt has ended by then unless the run is being torn down by an
        error), then closes the handler."""
        try:
            self._pool.shutdown(wait=True)
        finally:
            self._handler.close()


def _run_attempt(task_handler: handler.TaskHandler, launch: handler.TaskLaunch, logs: executor_logs.AttemptLogs,
                 attempt: int, *, delay: float = 0.0, started: Optional[threading.Event] = None
                 ) -> handler.TaskOutcome:
    """Runs one attempt of a task (a retry after its backoff, marked in the task's log), in a worker thread; then
    copies the attempt's part of the log for its executor-logs artifact, here rather than in the scheduler's
    thread, whose time is the run's. `started` is set when the task's process started (launch.on_started), or when
    the attempt ended without one. A handler's exception (a bug) goes to the task's log, then on to the caller."""
    try:
        if attempt > 1:
            time.sleep(delay)
            with open(launch.log_path, "a") as log:
                log.write(f"\n--- kfp-lineage: attempt {attempt} ---\n")
        return task_handler.run(launch)
    except Exception as e:
        _log_launch_failure(launch, e)
        raise
    finally:
        if started is not None:
            started.set()
        logs.attempt_ended(attempt - 1, launch.secret_values)


def _log_launch_failure(launch: handler.TaskLaunch, error: BaseException) -> None:
    """Writes a launch failure's traceback to the task's log, which the error message names; secrets scrubbed."""
    try:
        with open(launch.log_path, "a", encoding="utf-8") as log:
            log.write("kfp-lineage could not run the task:\n")
            log.write("".join(traceback.format_exception(type(error), error, error.__traceback__)))
        supervision.scrub_log(launch.log_path, launch.secret_values)
    except OSError:
        pass  # the error itself still reaches the run's report and MLMD


def _inside(uri: str, directory: str) -> bool:
    """Whether a local path lies inside `directory` (after resolving `..` and links)."""
    real = os.path.realpath(uri)
    base = os.path.realpath(directory)
    return real == base or real.startswith(base + os.sep)
