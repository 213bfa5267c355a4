"""Scheduling a compiled pipeline's DAGs: resolves task inputs, evaluates conditions, runs ready tasks in
parallel, rolls states up, and tells the recorder what happened. Knows neither SQL nor subprocess details."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import time
import uuid
from typing import Any, Deque, Dict, List, Mapping, Optional, Tuple

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import conditions, errors, launcher, progress, recorder, spec as spec_module

PipelineTaskSpec = pipeline_spec_pb2.PipelineTaskSpec
ComponentSpec = pipeline_spec_pb2.ComponentSpec

COMPLETE, FAILED, CANCELED, NOT_RUN = "COMPLETE", "FAILED", "CANCELED", "NOT_RUN"
QUEUED, RUNNING = "QUEUED", "RUNNING"
_FINAL = (COMPLETE, FAILED, CANCELED, NOT_RUN)
_MLMD_STATE = {
    COMPLETE: mlmd_pb.Execution.COMPLETE,
    FAILED: mlmd_pb.Execution.FAILED,
    CANCELED: mlmd_pb.Execution.CANCELED,
}


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How to run: where outputs go, the run id, parallelism, and the task environment (read at the entry point)."""

    pipeline_root: str
    run_id: str
    max_parallel: int
    cwd: str
    env: Mapping[str, str]
    task_timeout: Optional[float] = None


@dataclasses.dataclass
class TaskResult:
    """One task's final record in a run (container tasks and DAGs alike)."""

    key: str
    state: str
    execution_id: Optional[int]
    outputs: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)
    duration: float = 0.0
    error: str = ""
    log_path: str = ""

    def to_json(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"state": self.state, "execution_id": self.execution_id, "outputs": self.outputs}
        if self.error:
            data["error"] = self.error
        if self.log_path:
            data["log"] = self.log_path
        return data


@dataclasses.dataclass
class RunResult:
    """The outcome of a run, as `kfp-lineage run --json` prints it."""

    run_id: str
    pipeline_name: str
    state: str
    store: str
    pipeline_root: str
    run_root: str
    root_execution_id: int
    duration: float
    tasks: Dict[str, TaskResult]

    @property
    def succeeded(self) -> bool:
        return self.state == COMPLETE

    def to_json(self) -> Dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline_name,
            "state": self.state,
            "store": self.store,
            "pipeline_root": self.pipeline_root,
            "duration_seconds": round(self.duration, 3),
            "tasks": {key: task.to_json() for key, task in self.tasks.items()},
        }


@dataclasses.dataclass
class _ProducedOutputs:
    parameters: Dict[str, Any]
    artifacts: Dict[str, List[launcher.InputArtifact]]


@dataclasses.dataclass
class _Frame:
    """A DAG being run: the root, a sub-pipeline, or a condition branch."""

    key: str
    component: ComponentSpec
    execution_id: int
    parameters: Dict[str, Any]
    artifacts: Dict[str, List[launcher.InputArtifact]]
    parent: Optional["_Frame"]
    name_in_parent: str
    states: Dict[str, str] = dataclasses.field(default_factory=dict)
    outputs: Dict[str, _ProducedOutputs] = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.monotonic)
    finished: bool = False

    @property
    def tasks(self) -> Mapping[str, PipelineTaskSpec]:
        return self.component.dag.tasks

    def child_key(self, name: str) -> str:
        return f"{self.key}/{name}" if self.key else name


@dataclasses.dataclass
class _QueuedTask:
    """A container task whose inputs are resolved, waiting for a free slot."""

    frame: _Frame
    name: str
    component: ComponentSpec
    parameters: Dict[str, Any]
    artifacts: Dict[str, List[launcher.InputArtifact]]
    properties: Dict[str, Any]
    input_ids: Dict[str, List[int]]


class _TaskInputError(Exception):
    """A task's inputs cannot be resolved (e.g. its producer did not run); the task fails."""


def preflight(pipeline_spec: pipeline_spec_pb2.PipelineSpec) -> List[launcher.RequirementProblem]:
    """Checks, before anything runs, that every task uses only features this runner supports.

    Returns:
        Requirement problems of lightweight components (missing or mismatched packages), for the caller to
        report; none of them is installed.

    Raises:
        UnsupportedFeatureError: naming the first unsupported feature and the task using it.
    """
    deployment = _deployment_config(pipeline_spec)
    problems: List[launcher.RequirementProblem] = []
    seen_requirements: set = set()

    def check_dag(component: ComponentSpec, where: str) -> None:
        for name, task in component.dag.tasks.items():
            label = f"{where}/{name}" if where else name
            kind = task.WhichOneof("iterator")
            if kind:
                _unsupported("dsl.ParallelFor", label)
            if task.trigger_policy.strategy == PipelineTaskSpec.TriggerPolicy.ALL_UPSTREAM_TASKS_COMPLETED:
                _unsupported("dsl.ExitHandler / ignore_upstream_failure", label)
            if task.HasField("retry_policy") and task.retry_policy.max_retry_count:
                _unsupported("set_retry", label)
            if task.trigger_policy.condition:
                conditions.check_condition_syntax(task.trigger_policy.condition)
            for input_name, parameter in task.inputs.parameters.items():
                source = parameter.WhichOneof("kind")
                if source == "task_final_status":
                    _unsupported("dsl.PipelineTaskFinalStatus", label)
                if parameter.parameter_expression_selector:
                    _unsupported(f"parameter expression selector on input {input_name!r}", label)
            child = pipeline_spec.components[task.component_ref.name]
            if child.WhichOneof("implementation") == "dag":
                for output in child.dag.outputs.parameters.values():
                    if output.WhichOneof("kind") == "value_from_oneof":
                        _unsupported("dsl.OneOf", label)
                check_dag(child, label)
                continue
            executor = deployment.executors[child.executor_label]
            if executor.WhichOneof("spec") != "container":
                _unsupported(f"{executor.WhichOneof('spec')} executor (e.g. dsl.importer)", label)
            prefix = launcher.split_pip_prefix(list(executor.container.command))
            if prefix:
                for requirement in prefix.requirements:
                    if requirement not in seen_requirements:
                        seen_requirements.add(requirement)
                        problems.extend(launcher.check_requirements([requirement]))

    check_dag(pipeline_spec.root, "")
    return problems


def _unsupported(feature: str, task: str) -> None:
    raise errors.UnsupportedFeatureError(
        f"task {task!r} uses {feature}, which the local runner does not support yet: run it on a cluster"
    )


def _deployment_config(pipeline_spec: pipeline_spec_pb2.PipelineSpec) -> pipeline_spec_pb2.PipelineDeploymentConfig:
    deployment = pipeline_spec_pb2.PipelineDeploymentConfig()
    json_format.ParseDict(json_format.MessageToDict(pipeline_spec.deployment_spec), deployment)
    return deployment


class Orchestrator:
    """Runs one pipeline run to completion; use once."""

    def __init__(
        self,
        pipeline_spec: pipeline_spec_pb2.PipelineSpec,
        arguments: Mapping[str, Any],
        record: recorder.Recorder,
        options: RunOptions,
        reporter: progress.Reporter,
        store_label: str,
    ):
        self.spec = pipeline_spec
        self.deployment = _deployment_config(pipeline_spec)
        self.arguments = dict(arguments)
        self.recorder = record
        self.options = options
        self.reporter = reporter
        self.store_label = store_label
        self.pipeline_name = pipeline_spec.pipeline_info.name
        self.run_root = os.path.join(options.pipeline_root, self.pipeline_name, options.run_id)
        self.scratch_root = os.path.join(self.run_root, ".kfp-lineage")
        self.results: Dict[str, TaskResult] = {}
        self._failed = False
        self._futures: Dict[concurrent.futures.Future, Tuple[_Frame, str, int, launcher.TaskLaunch]] = {}
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._contexts: Optional[recorder.RunContexts] = None
        self._root: Optional[_Frame] = None
        self._task_env: Dict[str, str] = {}
        self._processes = launcher.RunningProcesses()
        self._queue: Deque[_QueuedTask] = collections.deque()

    def run(self) -> RunResult:
        """Runs every task and records the run; returns when the root DAG is final."""
        started = time.monotonic()
        self._contexts = self.recorder.begin_run(self.pipeline_name, self.options.run_id, self.run_root)
        os.makedirs(self.scratch_root, exist_ok=True)
        self._task_env = dict(self.options.env)
        self._task_env["PATH"] = launcher.python_shim_dir(self.scratch_root) + os.pathsep + self._task_env.get(
            "PATH", os.defpath
        )
        self._task_env["PYTHONUNBUFFERED"] = "1"
        self.reporter.run_started(self.pipeline_name, self.options.run_id, self.store_label, self.run_root)
        root_execution = self.recorder.create_execution(
            self._contexts,
            recorder.DAG_EXECUTION_TYPE,
            {"display_name": "", "task_name": "", "inputs": self.arguments},
            name=f"run/{self.options.run_id}",
        )
        self._root = _Frame(
            key="",
            component=self.spec.root,
            execution_id=root_execution,
            parameters=dict(self.arguments),
            artifacts={},
            parent=None,
            name_in_parent="",
        )
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.options.max_parallel)
        try:
            self._advance(self._root)
            self._launch_queued()
            while self._futures:
                try:
                    done, _ = concurrent.futures.wait(
                        self._futures, return_when=concurrent.futures.FIRST_COMPLETED
                    )
                except KeyboardInterrupt:
                    # Stop every running task, start nothing new, and keep draining so each execution and DAG
                    # still gets a final state; then let the interrupt through.
                    self._processes.cancel_all()
                    self._failed = True
                    self.reporter.warn("interrupted: stopping running tasks")
                    continue
                for future in done:
                    self._task_done(future)
                self._launch_queued()
        finally:
            self._pool.shutdown(wait=True)
        if self._processes.canceled:
            raise KeyboardInterrupt
        state = self.results.get("", TaskResult("", FAILED, root_execution)).state
        self.results.pop("", None)
        counts: Dict[str, int] = {}
        for task in self.results.values():
            counts[task.state] = counts.get(task.state, 0) + 1
        duration = time.monotonic() - started
        self.reporter.run_finished(state, duration, counts)
        return RunResult(
            run_id=self.options.run_id,
            pipeline_name=self.pipeline_name,
            state=state,
            store=self.store_label,
            pipeline_root=self.options.pipeline_root,
            run_root=self.run_root,
            root_execution_id=root_execution,
            duration=duration,
            tasks=self.results,
        )

    # Scheduling -------------------------------------------------------------------------------------------

    def _advance(self, frame: _Frame) -> None:
        """Starts every task of `frame` whose dependencies are final; finishes the frame when all are final."""
        progressed = True
        while progressed:
            progressed = False
            for name, task in frame.tasks.items():
                if name in frame.states:
                    continue
                if self._failed:
                    frame.states[name] = NOT_RUN
                    progressed = True
                    continue
                dependency_states = [frame.states.get(dep) for dep in task.dependent_tasks]
                if any(state not in _FINAL for state in dependency_states):
                    continue
                if any(state in (FAILED, NOT_RUN) for state in dependency_states):
                    frame.states[name] = NOT_RUN
                else:
                    self._start_task(frame, name, task)
                progressed = True
        if all(frame.states.get(name) in _FINAL for name in frame.tasks):
            self._finish_frame(frame)

    def _start_task(self, frame: _Frame, name: str, task: PipelineTaskSpec) -> None:
        key = frame.child_key(name)
        component = self.spec.components[task.component_ref.name]
        is_dag = component.WhichOneof("implementation") == "dag"
        execution_type = recorder.DAG_EXECUTION_TYPE if is_dag else recorder.CONTAINER_EXECUTION_TYPE
        properties: Dict[str, Any] = {
            "display_name": task.task_info.name or name,
            "task_name": name,
            "parent_dag_id": frame.execution_id,
        }
        try:
            parameters, artifacts = self._resolve_inputs(frame, name, task, component)
            properties["inputs"] = parameters
            run_it = conditions.evaluate_condition(task.trigger_policy.condition, parameters) if (
                task.trigger_policy.condition
            ) else True
        except (_TaskInputError, errors.LineageError) as e:
            execution_id = self.recorder.create_execution(
                self._contexts, execution_type, properties, state=mlmd_pb.Execution.FAILED
            )
            self._set_final(frame, name, key, FAILED, execution_id, error=str(e))
            return
        if not run_it:
            execution_id = self.recorder.create_execution(
                self._contexts, execution_type, properties, state=mlmd_pb.Execution.CANCELED
            )
            self._set_final(frame, name, key, CANCELED, execution_id)
            return
        input_ids = {input_name: [a.artifact_id for a in arts] for input_name, arts in artifacts.items()}
        if is_dag:
            properties["total_dag_tasks"] = len(component.dag.tasks)
            execution_id = self.recorder.create_execution(
                self._contexts, execution_type, properties, input_artifacts=input_ids
            )
            frame.states[name] = RUNNING
            child = _Frame(
                key=key,
                component=component,
                execution_id=execution_id,
                parameters=parameters,
                artifacts=artifacts,
                parent=frame,
                name_in_parent=name,
            )
            self._advance(child)
            return
        frame.states[name] = QUEUED
        self._queue.append(_QueuedTask(frame, name, component, parameters, artifacts, properties, input_ids))

    def _launch_queued(self) -> None:
        """Starts queued container tasks while fewer than max_parallel run.

        The execution is created only now, so RUNNING in the store means the process is really running.
        After a failure, queued tasks are dropped (not run, not recorded) and their DAGs move on.
        """
        while self._queue and (self._failed or len(self._futures) < self.options.max_parallel):
            queued = self._queue.popleft()
            if self._failed:
                queued.frame.states[queued.name] = NOT_RUN
                self._advance(queued.frame)
            else:
                self._launch(queued)

    def _launch(self, queued: "_QueuedTask") -> None:
        frame, name, component = queued.frame, queued.name, queued.component
        key = frame.child_key(name)
        executor = self.deployment.executors[component.executor_label]
        properties = dict(queued.properties, image=executor.container.image)
        execution_id = self.recorder.create_execution(
            self._contexts, recorder.CONTAINER_EXECUTION_TYPE, properties, input_artifacts=queued.input_ids
        )
        frame.states[name] = RUNNING
        parameters, artifacts = queued.parameters, queued.artifacts
        task_dir = os.path.join(self.run_root, name, str(uuid.uuid4()))
        launch = launcher.TaskLaunch(
            label=key,
            component_spec=component,
            container=executor.container,
            parameters=parameters,
            artifacts=artifacts,
            output_uris={output: os.path.join(task_dir, output) for output in component.output_definitions.artifacts},
            scratch_dir=os.path.join(self.scratch_root, f"{execution_id}-{name}"),
            log_path=os.path.join(self.run_root, "logs", key + ".log"),
            pipeline_name=self.pipeline_name,
            run_id=self.options.run_id,
            pipeline_root=self.options.pipeline_root,
            cwd=self.options.cwd,
            env=self._task_env,
            timeout=self.options.task_timeout,
            processes=self._processes,
        )
        os.makedirs(os.path.dirname(launch.log_path), exist_ok=True)
        self.reporter.task_started(key)
        future = self._pool.submit(launcher.run_task, launch)
        self._futures[future] = (frame, name, execution_id, launch)

    def _task_done(self, future: concurrent.futures.Future) -> None:
        frame, name, execution_id, launch = self._futures.pop(future)
        key = frame.child_key(name)
        try:
            outcome = future.result()
        except Exception as e:  # a bug in launching, not in the task: record it, keep the store consistent
            outcome = launcher.TaskOutcome(False, {}, {}, 0.0, error=f"could not run the task: {e!r}")
        if outcome.succeeded:
            # A local output must stay under the run's directory; a URI with a scheme names a remote resource
            # (GCPC's google.VertexModel carries its https://...aiplatform... resource URI) and is not a path.
            escaped = [
                a.uri for arts in outcome.artifacts.values() for a in arts
                if "://" not in a.uri and not _inside(a.uri, self.run_root)
            ]
            if escaped:
                outcome = launcher.TaskOutcome(
                    False, {}, {}, outcome.duration,
                    error=f"output URI {escaped[0]} is outside the run's directory {self.run_root}",
                )
        if not outcome.succeeded:
            state = CANCELED if outcome.canceled else FAILED
            self.recorder.publish_execution(self._contexts, execution_id, _MLMD_STATE[state])
            self._set_final(
                frame, name, key, state, execution_id, duration=outcome.duration, error=outcome.error,
                log_path=launch.log_path,
            )
            self._advance(frame)
            return
        drafts = {
            output: [
                recorder.OutputArtifact(
                    schema_title=artifact.type.schema_title,
                    uri=artifact.uri,
                    metadata=json_format.MessageToDict(artifact.metadata),
                    display_name=output,
                )
                for artifact in artifacts
            ]
            for output, artifacts in outcome.artifacts.items()
        }
        artifact_ids = self.recorder.publish_execution(
            self._contexts,
            execution_id,
            mlmd_pb.Execution.COMPLETE,
            properties={"outputs": outcome.parameters},
            output_artifacts=drafts,
        )
        produced = _ProducedOutputs(parameters=dict(outcome.parameters), artifacts={})
        outputs: Dict[str, Dict[str, Any]] = {name_: {"value": v} for name_, v in outcome.parameters.items()}
        for output, artifacts in outcome.artifacts.items():
            produced.artifacts[output] = [
                launcher.InputArtifact(
                    artifact_id=artifact_id,
                    schema_title=artifact.type.schema_title,
                    schema_version=artifact.type.schema_version,
                    uri=artifact.uri,
                    metadata=json_format.MessageToDict(artifact.metadata),
                )
                for artifact, artifact_id in zip(artifacts, artifact_ids.get(output, []))
            ]
            if produced.artifacts[output]:
                first = produced.artifacts[output][0]
                outputs[output] = {"artifact_id": first.artifact_id, "uri": first.uri}
        frame.outputs[name] = produced
        self._set_final(frame, name, key, COMPLETE, execution_id, outputs=outputs, duration=outcome.duration,
                        log_path=launch.log_path)
        self._advance(frame)

    def _set_final(
        self,
        frame: _Frame,
        name: str,
        key: str,
        state: str,
        execution_id: int,
        outputs: Optional[Dict[str, Dict[str, Any]]] = None,
        duration: float = 0.0,
        error: str = "",
        log_path: str = "",
    ) -> None:
        frame.states[name] = state
        if state == FAILED:
            self._failed = True
        self.results[key] = TaskResult(key, state, execution_id, outputs or {}, duration, error, log_path)
        self.reporter.task_finished(key, state, duration, error, log_path)

    def _finish_frame(self, frame: _Frame) -> None:
        """Publishes a DAG whose children are all final, and hands its outputs to the parent."""
        if frame.finished:  # a child finishing synchronously may already have finished this frame
            return
        frame.finished = True
        failed = any(state in (FAILED, NOT_RUN) for state in frame.states.values()) or (
            self._processes.canceled and any(state == CANCELED for state in frame.states.values())
        )
        state = FAILED if failed else COMPLETE
        produced = _ProducedOutputs(parameters={}, artifacts={})
        outputs: Dict[str, Dict[str, Any]] = {}
        properties: Dict[str, Any] = {}
        if not failed:
            try:
                produced = self._resolve_dag_outputs(frame)
            except _TaskInputError as e:
                state, failed = FAILED, True
                self.reporter.warn(str(e))
            outputs = {n: {"value": v} for n, v in produced.parameters.items()}
            for n, arts in produced.artifacts.items():
                if arts:
                    outputs[n] = {"artifact_id": arts[0].artifact_id, "uri": arts[0].uri}
            if produced.parameters:
                properties["outputs"] = produced.parameters
        self.recorder.publish_execution(self._contexts, frame.execution_id, _MLMD_STATE[state], properties)
        duration = time.monotonic() - frame.started
        if frame.parent is None:
            self.results[""] = TaskResult("", state, frame.execution_id, outputs, duration)
            return
        frame.parent.outputs[frame.name_in_parent] = produced
        self._set_final(frame.parent, frame.name_in_parent, frame.key, state, frame.execution_id, outputs, duration)
        self._advance(frame.parent)

    # Input and output resolution ------------------------------------------------------------------------------

    def _resolve_inputs(
        self, frame: _Frame, name: str, task: PipelineTaskSpec, component: ComponentSpec
    ) -> Tuple[Dict[str, Any], Dict[str, List[launcher.InputArtifact]]]:
        parameters: Dict[str, Any] = {}
        for input_name, spec in task.inputs.parameters.items():
            kind = spec.WhichOneof("kind")
            if kind == "component_input_parameter":
                source = spec.component_input_parameter
                if source not in frame.parameters:
                    raise _TaskInputError(f"input {input_name!r}: the enclosing DAG has no parameter {source!r}")
                value = frame.parameters[source]
            elif kind == "task_output_parameter":
                producer = spec.task_output_parameter.producer_task
                key = spec.task_output_parameter.output_parameter_key
                value = self._producer_outputs(frame, producer, input_name).parameters.get(key, _MISSING)
                if value is _MISSING:
                    raise _TaskInputError(f"input {input_name!r}: task {producer!r} has no output {key!r}")
            elif kind == "runtime_value":
                value = json_format.MessageToDict(spec.runtime_value.constant)
            else:
                raise _TaskInputError(f"input {input_name!r}: {kind} inputs are not supported yet")
            parameter_type = spec_module.input_parameter_type(component, input_name)
            if parameter_type is not None:
                value = spec_module.convert_parameter(input_name, value, parameter_type)
            parameters[input_name] = value
        for input_name, definition in component.input_definitions.parameters.items():
            if input_name not in parameters and definition.HasField("default_value"):
                parameters[input_name] = spec_module.convert_parameter(
                    input_name, json_format.MessageToDict(definition.default_value), definition.parameter_type
                )
        artifacts: Dict[str, List[launcher.InputArtifact]] = {}
        for input_name, spec in task.inputs.artifacts.items():
            kind = spec.WhichOneof("kind")
            if kind == "component_input_artifact":
                source = spec.component_input_artifact
                if source not in frame.artifacts:
                    raise _TaskInputError(f"input {input_name!r}: the enclosing DAG has no artifact {source!r}")
                artifacts[input_name] = frame.artifacts[source]
            elif kind == "task_output_artifact":
                producer = spec.task_output_artifact.producer_task
                key = spec.task_output_artifact.output_artifact_key
                produced = self._producer_outputs(frame, producer, input_name).artifacts.get(key)
                if not produced:
                    raise _TaskInputError(f"input {input_name!r}: task {producer!r} produced no artifact {key!r}")
                artifacts[input_name] = produced
            else:
                raise _TaskInputError(f"input {input_name!r}: {kind} artifact inputs are not supported yet")
        return parameters, artifacts

    def _producer_outputs(self, frame: _Frame, producer: str, input_name: str) -> _ProducedOutputs:
        if producer in frame.outputs:
            return frame.outputs[producer]
        state = frame.states.get(producer, "not started")
        reason = "its condition was false" if state == CANCELED else f"it is {state}"
        raise _TaskInputError(f"input {input_name!r} comes from task {producer!r}, which produced nothing ({reason})")

    def _resolve_dag_outputs(self, frame: _Frame) -> _ProducedOutputs:
        produced = _ProducedOutputs(parameters={}, artifacts={})
        dag_outputs = frame.component.dag.outputs
        for output_name, spec in dag_outputs.parameters.items():
            selector = spec.value_from_parameter
            source = frame.outputs.get(selector.producer_subtask)
            if source is None or selector.output_parameter_key not in source.parameters:
                raise _TaskInputError(
                    f"DAG {frame.key or 'root'} output {output_name!r}: task {selector.producer_subtask!r} did not "
                    f"produce {selector.output_parameter_key!r}"
                )
            produced.parameters[output_name] = source.parameters[selector.output_parameter_key]
        for output_name, spec in dag_outputs.artifacts.items():
            collected: List[launcher.InputArtifact] = []
            for selector in spec.artifact_selectors:
                source = frame.outputs.get(selector.producer_subtask)
                if source is not None:
                    collected.extend(source.artifacts.get(selector.output_artifact_key, []))
            produced.artifacts[output_name] = collected
        return produced


_MISSING = object()


def _inside(uri: str, directory: str) -> bool:
    """Whether a local path lies inside `directory` (after resolving `..` and links)."""
    real = os.path.realpath(uri)
    base = os.path.realpath(directory)
    return real == base or real.startswith(base + os.sep)
