"""Scheduling a compiled pipeline's DAGs: conditions, loops, exit handlers, retries, caching and importers; ready
tasks run in parallel, states roll up, and the recorder is told what happened.

Knows neither SQL nor process details: inputs are resolved in resolution.py, loop iterations counted in loops.py,
importers recorded by importer.py, tasks run by the run's task handler (exec/), records written by recorder.py.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import time
import traceback
import uuid
from typing import Any, Deque, Dict, List, Mapping, Optional

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import errors
from kfp_lineage.engine import caching
from kfp_lineage.engine import frames
from kfp_lineage.engine import importer
from kfp_lineage.engine import loops
from kfp_lineage.engine import results
from kfp_lineage.engine import reuse
from kfp_lineage.ir import conditions
from kfp_lineage.engine.exec import command
from kfp_lineage.engine.exec import factory
from kfp_lineage.engine.exec import handler
from kfp_lineage.engine.exec import supervision
from kfp_lineage.ir import preflight
from kfp_lineage.engine import progress
from kfp_lineage.mlmd import recorder
from kfp_lineage.mlmd import recovery
from kfp_lineage.ir import resolution
from kfp_lineage import digests
from kfp_lineage import redaction
from kfp_lineage.ir import dataflow

PipelineTaskSpec = pipeline_spec_pb2.PipelineTaskSpec
ComponentSpec = pipeline_spec_pb2.ComponentSpec
Produced = dataflow.Produced

_RUNS_AFTER_FAILURE = PipelineTaskSpec.TriggerPolicy.ALL_UPSTREAM_TASKS_COMPLETED

# The old import path of the public result types, kept for one release.
RunOptions, TaskResult, RunResult = results.RunOptions, results.TaskResult, results.RunResult


@dataclasses.dataclass
class _QueuedTask:
    """A container task whose inputs are resolved, waiting for a free slot."""

    frame: frames.Frame
    name: str
    task: PipelineTaskSpec
    component: ComponentSpec
    parameters: Dict[str, Any]
    artifacts: Dict[str, List[dataflow.InputArtifact]]
    properties: Dict[str, Any]
    input_ids: Dict[str, List[int]]


@dataclasses.dataclass
class _Running:
    """A submitted container task."""

    queued: _QueuedTask
    execution_id: int
    launch: handler.TaskLaunch
    fingerprint: str
    attempt: int = 1


class Orchestrator:
    """Runs one pipeline run to completion; use once."""

    def __init__(
        self,
        pipeline_spec: pipeline_spec_pb2.PipelineSpec,
        arguments: Mapping[str, Any],
        record: recorder.Recorder,
        options: results.RunOptions,
        reporter: progress.Reporter,
        store_label: str,
    ):
        self.spec = pipeline_spec
        self.deployment = preflight.deployment_config(pipeline_spec)
        self.arguments = dict(arguments)
        self.recorder = record
        self.options = options
        self.reporter = reporter
        self.store_label = store_label
        self.pipeline_name = pipeline_spec.pipeline_info.name
        self.run_root = os.path.join(options.pipeline_root, self.pipeline_name, options.run_id)
        self.scratch_root = os.path.join(self.run_root, ".kfp-lineage")
        self._task_results: Dict[str, TaskResult] = {}
        self._futures: Dict[concurrent.futures.Future, _Running] = {}
        self._queue: Deque[_QueuedTask] = collections.deque()
        self._processes = handler.RunningProcesses()
        self._handler: Optional[handler.TaskHandler] = None
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._contexts: Optional[recorder.RunContexts] = None
        self._task_env: Dict[str, str] = {}
        self._cache_index: Optional[Dict[str, int]] = None
        self._root_result: Optional[TaskResult] = None

    @property
    def _interrupted(self) -> bool:
        return self._processes.canceled

    def run(self) -> results.RunResult:
        """Runs every task and records the run; returns when the root DAG is final.

        Raises:
            KeyboardInterrupt: after an interrupt, once every execution has a final state.
        """
        started = time.monotonic()
        self._contexts = self.recorder.begin_run(self.pipeline_name, self.options.run_id, self.run_root)
        for dead in recovery.recover(self.recorder.store, pipeline_context=self._contexts.pipeline):
            self.reporter.warn(f"run {dead.run_id} was left unfinished by a killed runner: marked its "
                               f"{dead.executions_failed} running executions FAILED")
        os.makedirs(self.scratch_root, exist_ok=True)
        self._task_env = dict(self.options.env)
        self._task_env["PATH"] = command.python_shim_dir(self.scratch_root) + os.pathsep + self._task_env.get(
            "PATH", os.defpath
        )
        self._task_env["PYTHONUNBUFFERED"] = "1"
        self._handler = factory.create_handler(
            self.options.launcher, handler.HandlerContext(self._task_env, self.scratch_root, self._processes))
        self.reporter.run_started(self.pipeline_name, self.options.run_id, self.store_label, self.run_root)
        root_execution = self.recorder.create_execution(
            self._contexts,
            recorder.DAG_EXECUTION_TYPE,
            {"display_name": "", "task_name": "", "inputs": self.arguments},
            name=f"run/{self.options.run_id}",
        )
        root = frames.Frame(
            key="", component=self.spec.root, execution_id=root_execution, parameters=dict(self.arguments),
            artifacts={}, on_done=self._root_done,
        )
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.options.max_parallel)
        try:
            self._advance(root)
            self._launch_queued()
            while self._futures:
                try:
                    done, _ = concurrent.futures.wait(self._futures, return_when=concurrent.futures.FIRST_COMPLETED)
                except KeyboardInterrupt:
                    # Stop every running task, start nothing new, and keep draining so each execution and DAG
                    # still gets a final state; then let the interrupt through.
                    self._processes.cancel_all()
                    self.reporter.warn("interrupted: stopping running tasks")
                    continue
                for future in done:
                    self._task_done(future)
                self._launch_queued()
        finally:
            self._pool.shutdown(wait=True)
            self._handler.close()
        root_result = self._root_result or results.TaskResult("", results.FAILED, root_execution)
        self.recorder.finish_run(self._contexts, results.FAILED if self._interrupted else root_result.state)
        if self._interrupted:
            raise KeyboardInterrupt
        counts: Dict[str, int] = {}
        for task in self._task_results.values():
            counts[task.state] = counts.get(task.state, 0) + 1
        duration = time.monotonic() - started
        self.reporter.run_finished(root_result.state, duration, counts)
        return results.RunResult(
            run_id=self.options.run_id,
            pipeline_name=self.pipeline_name,
            state=root_result.state,
            store=self.store_label,
            pipeline_root=self.options.pipeline_root,
            run_root=self.run_root,
            root_execution_id=root_execution,
            duration=duration,
            tasks=self._task_results,
            outputs=root_result.outputs,
        )

    # Scheduling ---------------------------------------------------------------------------------------------------

    def _advance(self, frame: frames.Frame) -> None:
        """Starts every task of `frame` whose dependencies are final; finishes the frame when all tasks are final.

        Fails fast per DAG, as Argo does: once a task of this DAG has failed, only tasks that run after upstream
        failures (exit handlers, ignore_upstream_failure) still start here; sibling DAGs already started go on.
        After an interrupt nothing starts.
        """
        progressed = True
        while progressed and not frame.finished:
            progressed = False
            for name, task in frame.tasks.items():
                if name in frame.states:
                    continue
                runs_after_failure = task.trigger_policy.strategy == _RUNS_AFTER_FAILURE
                if self._interrupted or (not runs_after_failure and results.FAILED in frame.states.values()):
                    frame.states[name] = results.NOT_RUN
                    progressed = True
                    continue
                dependency_states = [frame.states.get(dep) for dep in task.dependent_tasks]
                if any(state not in results.FINAL for state in dependency_states):
                    continue
                failed_upstream = any(state in (results.FAILED, results.NOT_RUN) for state in dependency_states)
                if not runs_after_failure and failed_upstream:
                    frame.states[name] = results.NOT_RUN
                else:
                    self._start_task(frame, name, task)
                progressed = True
        if not frame.finished and all(frame.states.get(name) in results.FINAL for name in frame.tasks):
            self._finish_frame(frame)

    def _start_task(self, frame: frames.Frame, name: str, task: PipelineTaskSpec) -> None:
        key = frame.child_key(name)
        component = self.spec.components[task.component_ref.name]
        is_dag = component.WhichOneof("implementation") == "dag"
        execution_type = recorder.DAG_EXECUTION_TYPE if is_dag else recorder.CONTAINER_EXECUTION_TYPE
        properties: Dict[str, Any] = {
            "display_name": task.task_info.name or name,
            "task_name": name,
            "parent_dag_id": frame.execution_id,
        }
        view = resolution.DagView(frame.parameters, frame.artifacts, frame.states, frame.outputs,
                                  frame.final_statuses, self.options.run_id, frame.execution_id)
        try:
            parameters, artifacts = resolution.resolve_task_inputs(view, task, component)
            properties["inputs"] = parameters
            run_it = not task.trigger_policy.condition or conditions.evaluate_condition(
                task.trigger_policy.condition, parameters
            )
            items = resolution.loop_items(task, parameters, artifacts) if task.WhichOneof("iterator") else None
        except (resolution.TaskInputError, errors.LineageError) as e:
            execution_id = self.recorder.create_execution(
                self._contexts, execution_type, properties, state=mlmd_pb.Execution.FAILED
            )
            self._set_final(frame, name, key, results.FAILED, execution_id, error=str(e))
            return
        if not run_it:
            execution_id = self.recorder.create_execution(
                self._contexts, execution_type, properties, state=mlmd_pb.Execution.CANCELED
            )
            self._set_final(frame, name, key, results.CANCELED, execution_id)
            return
        input_ids = {input_name: [a.artifact_id for a in arts] for input_name, arts in artifacts.items()}
        if items is not None:
            properties["iteration_count"] = len(items[1])
            properties["total_dag_tasks"] = len(items[1])
            execution_id = self.recorder.create_execution(
                self._contexts, recorder.DAG_EXECUTION_TYPE, properties, input_artifacts=input_ids
            )
            frame.states[name] = results.RUNNING
            loop = loops.Loop(
                name=name, key=key, component=component, execution_id=execution_id,
                display_name=properties["display_name"], items=items, parameters=parameters, artifacts=artifacts,
                limit=task.iterator_policy.parallelism_limit,
            )
            self._advance_loop(frame, loop)
        elif is_dag:
            properties["total_dag_tasks"] = len(component.dag.tasks)
            execution_id = self.recorder.create_execution(
                self._contexts, execution_type, properties, input_artifacts=input_ids
            )
            frame.states[name] = results.RUNNING
            child = frames.Frame(
                key=key, component=component, execution_id=execution_id, parameters=parameters,
                artifacts=artifacts,
                on_done=lambda state, produced, duration, error: self._child_done(
                    frame, name, key, execution_id, state, produced, duration, error),
            )
            self._advance(child)
        elif self.deployment.executors[component.executor_label].WhichOneof("spec") == "importer":
            importer_spec = self.deployment.executors[component.executor_label].importer
            execution_id, produced = importer.run_importer(self.recorder, self._contexts, importer_spec, component,
                                                           properties, parameters)
            frame.outputs[name] = produced
            self._set_final(frame, name, key, results.COMPLETE, execution_id, results.outputs_json(produced))
        else:
            queued = _QueuedTask(frame, name, task, component, parameters, artifacts, properties, input_ids)
            if not self._serve_from_cache(queued):
                frame.states[name] = results.QUEUED
                self._queue.append(queued)

    def _child_done(self, frame: frames.Frame, name: str, key: str, execution_id: int, state: str, produced: Produced,
                    duration: float, error: str) -> None:
        """A sub-DAG or loop finished: hand its outputs to the enclosing DAG and move that on."""
        if state in results.SUCCEEDED:
            frame.outputs[name] = produced
        self._set_final(frame, name, key, state, execution_id, results.outputs_json(produced), duration, error)
        self._advance(frame)

    def _root_done(self, state: str, produced: Produced, duration: float, error: str) -> None:
        self._root_result = results.TaskResult("", state, None, results.outputs_json(produced), duration, error)

    def _finish_frame(self, frame: frames.Frame) -> None:
        """Publishes a DAG whose children are all final, then calls its on_done."""
        frame.finished = True
        failed = self._interrupted or any(
            state in (results.FAILED, results.NOT_RUN) for state in frame.states.values())
        produced, error = Produced(), ""
        if not failed:
            produced = resolution.resolve_dag_outputs(frame.component, frame.outputs)
        state = results.FAILED if failed else results.COMPLETE
        if failed and not error:  # name the first failed task, for exit handlers' PipelineTaskFinalStatus
            error = next((f"{name}: {status.error}" for name, status in frame.final_statuses.items()
                          if status.state == results.FAILED and status.error), "")
        properties = {"outputs": produced.parameters} if produced.parameters else {}
        self.recorder.publish_execution(self._contexts, frame.execution_id, results.MLMD_STATE[state], properties)
        frame.on_done(state, produced, time.monotonic() - frame.started, error)

    def _set_final(
        self,
        frame: frames.Frame,
        name: str,
        key: str,
        state: str,
        execution_id: Optional[int],
        outputs: Optional[Dict[str, Dict[str, Any]]] = None,
        duration: float = 0.0,
        error: str = "",
        log_path: str = "",
        attempts: int = 0,
        cached_execution_id: Optional[int] = None,
    ) -> None:
        frame.states[name] = state
        frame.final_statuses[name] = dataflow.FinalStatus(state, error)
        self._task_results[key] = results.TaskResult(key, state, execution_id, outputs or {}, duration, error,
                                                     log_path, attempts, cached_execution_id)
        self.reporter.task_finished(key, state, duration, error, log_path)

    # Loops --------------------------------------------------------------------------------------------------------

    def _advance_loop(self, frame: frames.Frame, loop: loops.Loop) -> None:
        """Starts the loop's iterations it allows now, each a DAG execution and frame; finishes the loop (once,
        though an iteration that ends while it starts re-enters here) when every iteration ended."""
        while (iteration := loop.next_iteration(self._interrupted)) is not None:
            execution_id = self.recorder.create_execution(
                self._contexts, recorder.DAG_EXECUTION_TYPE, iteration.properties, input_artifacts=iteration.input_ids
            )
            child = frames.Frame(
                key=iteration.key, component=loop.component, execution_id=execution_id,
                parameters=iteration.parameters, artifacts=iteration.artifacts,
                on_done=lambda state, produced, duration, error, index=iteration.index, execution_id=execution_id: (
                    self._iteration_done(frame, loop, index, execution_id, state, produced, duration, error)),
            )
            self._advance(child)
        if loop.ready_to_finish:
            state, produced = loop.finish(self._interrupted)
            properties = {"outputs": produced.parameters} if produced.parameters else {}
            self.recorder.publish_execution(self._contexts, loop.execution_id, results.MLMD_STATE[state], properties)
            self._child_done(frame, loop.name, loop.key, loop.execution_id, state, produced,
                             time.monotonic() - loop.started, "")

    def _iteration_done(self, frame: frames.Frame, loop: loops.Loop, index: int, execution_id: int, state: str,
                        produced: dataflow.Produced, duration: float, error: str) -> None:
        loop.iteration_done(index, state, produced)
        key = loop.iteration_key(index)
        self._task_results[key] = results.TaskResult(key, state, execution_id, results.outputs_json(produced),
                                                     duration, error)
        self._advance_loop(frame, loop)

    # Container tasks --------------------------------------------------------------------------------------------

    def _serve_from_cache(self, queued: _QueuedTask) -> bool:
        """Records a cache hit (a CACHED execution pointing at the original outputs) and returns True, or computes
        the task's fingerprint for a miss and returns False."""
        enabled = self.options.enable_cache and queued.task.caching_options.enable_cache
        if not enabled:
            return False
        container = self.deployment.executors[queued.component.executor_label].container
        fingerprint = caching.fingerprint(queued.component, container, queued.parameters, queued.artifacts,
                                          queued.task.caching_options.cache_key)
        queued.properties["cache_fingerprint"] = fingerprint
        if self._cache_index is None:
            self._cache_index = self.recorder.cache_index(self._contexts)
        cached_id = self._cache_index.get(fingerprint)
        cached = self.recorder.cached_result(cached_id) if cached_id is not None else None
        if cached is None:
            return False
        key = queued.frame.child_key(queued.name)
        missing = caching.missing_outputs(a.uri for arts in cached.artifacts.values() for a in arts)
        if missing:
            self.reporter.warn(f"{key}: the cached result's artifact {missing[0]} was deleted; running the task again")
            return False
        properties = dict(queued.properties, cached_execution_id=cached.execution_id,
                          image=container.image, outputs=cached.outputs)
        execution_id, _ = self.recorder.record_finished_execution(
            self._contexts, recorder.CONTAINER_EXECUTION_TYPE, properties, mlmd_pb.Execution.CACHED,
            input_artifacts=queued.input_ids,
            reused_output_artifacts={k: [a.id for a in arts] for k, arts in cached.artifacts.items()},
        )
        produced = Produced(parameters=reuse.typed_outputs(queued.component, cached.outputs))
        for output, arts in cached.artifacts.items():
            version = reuse.output_schema_version(queued.component, output)
            produced.artifacts[output] = [reuse.input_artifact(a, version) for a in arts]
        queued.frame.outputs[queued.name] = produced
        self._set_final(queued.frame, queued.name, key, results.CACHED, execution_id, results.outputs_json(produced),
                        cached_execution_id=cached.execution_id)
        return True

    def _launch_queued(self) -> None:
        """Starts queued container tasks while fewer than max_parallel run.

        The execution is created only now, so results.RUNNING in the store means the process is really running. A queued
        task was started as far as the pipeline is concerned (on a cluster its pod would be running): a failure
        elsewhere does not drop it, or what runs would depend on --max-parallel. An interrupt drops it (not run,
        not recorded).
        """
        while self._queue and len(self._futures) < self.options.max_parallel:
            queued = self._queue.popleft()
            if self._interrupted:
                queued.frame.states[queued.name] = results.NOT_RUN
                self._advance(queued.frame)
            else:
                self._launch(queued)

    def _launch(self, queued: _QueuedTask) -> None:
        frame, name, component = queued.frame, queued.name, queued.component
        key = frame.child_key(name)
        container = self.deployment.executors[component.executor_label].container
        properties = dict(queued.properties, image=container.image)
        execution_id = self.recorder.create_execution(
            self._contexts, recorder.CONTAINER_EXECUTION_TYPE, properties, input_artifacts=queued.input_ids
        )
        frame.states[name] = results.RUNNING
        task_dir = os.path.join(self.run_root, name, str(uuid.uuid4()))
        env = dict(self._task_env)
        env.update({variable.name: variable.value for variable in container.env})
        launch = handler.TaskLaunch(
            label=key,
            component_spec=component,
            container=container,
            parameters=queued.parameters,
            artifacts=queued.artifacts,
            output_uris={output: os.path.join(task_dir, output) for output in component.output_definitions.artifacts},
            scratch_dir=os.path.join(self.scratch_root, f"{execution_id}-{name}"),
            log_path=os.path.join(self.run_root, "logs", key + ".log"),
            pipeline_name=self.pipeline_name,
            run_id=self.options.run_id,
            pipeline_root=self.options.pipeline_root,
            cwd=self.options.cwd,
            env=env,
            timeout=self.options.task_timeout,
            secret_values=tuple(redaction.secret_values({**self.arguments, **queued.parameters})),
        )
        os.makedirs(os.path.dirname(launch.log_path), exist_ok=True)
        self.reporter.task_started(key)
        running = _Running(queued, execution_id, launch, str(queued.properties.get("cache_fingerprint", "")))
        self._futures[self._pool.submit(self._handler.run, launch)] = running

    def _task_done(self, future: concurrent.futures.Future) -> None:
        running = self._futures.pop(future)
        frame, name, launch = running.queued.frame, running.queued.name, running.launch
        key = frame.child_key(name)
        try:
            outcome = future.result()
        except Exception as e:  # a bug in launching, not in the task: record it, keep the store consistent
            outcome = handler.TaskOutcome(False, {}, {}, 0.0, error=f"could not run the task: {e!r}")
            _log_launch_failure(launch, e)
        if outcome.succeeded:
            # A local output must stay under the run's directory; a URI with a scheme names a remote resource
            # (GCPC's google.VertexModel carries its https://...aiplatform... resource URI) and is not a path.
            escaped = [a.uri for arts in outcome.artifacts.values() for a in arts
                       if "://" not in a.uri and not _inside(a.uri, self.run_root)]
            if escaped:
                outcome = handler.TaskOutcome(
                    False, {}, {}, outcome.duration,
                    error=f"output URI {escaped[0]} is outside the run's directory {self.run_root}",
                )
        if not outcome.succeeded and not outcome.canceled and self._retry(running, outcome):
            return
        if not outcome.succeeded:
            state = results.CANCELED if outcome.canceled else results.FAILED
            self.recorder.publish_execution(self._contexts, running.execution_id, results.MLMD_STATE[state])
            self._set_final(frame, name, key, state, running.execution_id, duration=outcome.duration,
                            error=outcome.error, log_path=launch.log_path, attempts=running.attempt)
            self._advance(frame)
            return
        drafts = {
            output: [
                recorder.OutputArtifact(
                    schema_title=artifact.type.schema_title, uri=artifact.uri,
                    metadata=_with_digest(json_format.MessageToDict(artifact.metadata), artifact.uri),
                    display_name=output,
                )
                for artifact in artifacts
            ]
            for output, artifacts in outcome.artifacts.items()
        }
        artifact_ids = self.recorder.publish_execution(
            self._contexts, running.execution_id, mlmd_pb.Execution.COMPLETE,
            properties={"outputs": outcome.parameters}, output_artifacts=drafts,
        )
        if running.fingerprint and self._cache_index is not None:
            self._cache_index[running.fingerprint] = running.execution_id
        produced = Produced(parameters=dict(outcome.parameters))
        for output, artifacts in outcome.artifacts.items():
            produced.artifacts[output] = [
                dataflow.InputArtifact(
                    artifact_id=artifact_id, schema_title=artifact.type.schema_title,
                    schema_version=artifact.type.schema_version, uri=artifact.uri,
                    metadata=json_format.MessageToDict(artifact.metadata),
                )
                for artifact, artifact_id in zip(artifacts, artifact_ids.get(output, []))
            ]
        frame.outputs[name] = produced
        self._set_final(frame, name, key, results.COMPLETE, running.execution_id, results.outputs_json(produced),
                        outcome.duration, log_path=launch.log_path, attempts=running.attempt)
        self._advance(frame)

    def _retry(self, running: _Running, outcome: handler.TaskOutcome) -> bool:
        """Resubmits a failed task when its retry policy allows another attempt; the execution stays results.RUNNING."""
        policy = running.queued.task.retry_policy
        if self._interrupted or running.attempt > policy.max_retry_count:
            return False
        delay = policy.backoff_duration.ToTimedelta().total_seconds() * (
            (policy.backoff_factor or 2.0) ** (running.attempt - 1)
        )
        if policy.HasField("backoff_max_duration"):
            delay = min(delay, policy.backoff_max_duration.ToTimedelta().total_seconds())
        key = running.queued.frame.child_key(running.queued.name)
        running.attempt += 1
        self.reporter.warn(
            f"{key}: attempt {running.attempt - 1} failed ({outcome.error}); attempt {running.attempt} of "
            f"{policy.max_retry_count + 1} in {delay:g} s"
        )
        self._futures[self._pool.submit(_run_attempt, self._handler, running.launch, running.attempt, delay)] = running
        return True


def _run_attempt(task_handler: handler.TaskHandler, launch: handler.TaskLaunch, attempt: int,
                 delay: float) -> handler.TaskOutcome:
    """Runs a retry after its backoff, marking the attempt in the task's log."""
    time.sleep(delay)
    with open(launch.log_path, "a") as log:
        log.write(f"\n--- kfp-lineage: attempt {attempt} ---\n")
    return task_handler.run(launch)


def _with_digest(metadata: Dict[str, Any], uri: str) -> Dict[str, Any]:
    """The artifact's metadata plus the sha256 of its local file or directory (tamper evidence for `verify`)."""
    digest = digests.path_sha256(uri) if "://" not in uri else None
    if digest is not None:
        metadata = dict(metadata, **{digests.DIGEST_PROPERTY: digest})
    return metadata


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
