"""Scheduling a compiled pipeline's DAGs: dependencies, conditions, fail-fast, exit handlers; tasks are started
as they become ready, DAG states roll up, and the recorder is told what happened.

Ties the engine together and owns none of the details: inputs are resolved in ir/resolution.py, loops are
loops.py, cache hits cache_hits.py, importers importer.py, container tasks container_tasks.py (which runs them
through the run's task handler from exec/), records are written by mlmd/recorder.py.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Mapping, Optional

from kfp.pipeline_spec import pipeline_spec_pb2
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import errors
from kfp_lineage.engine import cache_hits
from kfp_lineage.engine import container_tasks
from kfp_lineage.engine import frames
from kfp_lineage.engine import importer
from kfp_lineage.engine import loops
from kfp_lineage.engine import progress
from kfp_lineage.engine import results
from kfp_lineage.engine.exec import command
from kfp_lineage.engine.exec import factory
from kfp_lineage.engine.exec import handler
from kfp_lineage.ir import conditions
from kfp_lineage.ir import dataflow
from kfp_lineage.ir import preflight
from kfp_lineage.ir import resolution
from kfp_lineage.mlmd import recorder
from kfp_lineage.mlmd import recovery
from kfp_lineage.mlmd import vocabulary

PipelineTaskSpec = pipeline_spec_pb2.PipelineTaskSpec
ComponentSpec = pipeline_spec_pb2.ComponentSpec

_RUNS_AFTER_FAILURE = PipelineTaskSpec.TriggerPolicy.ALL_UPSTREAM_TASKS_COMPLETED

# The old import path of the public result types, kept for one release.
RunOptions, TaskResult, RunResult = results.RunOptions, results.TaskResult, results.RunResult


class Scheduler:
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
        factory.check_handler_name(options.launcher)  # refused before anything is written
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
        self._task_results: Dict[str, results.TaskResult] = {}
        self._processes = handler.RunningProcesses()
        self._contexts: Optional[recorder.RunContexts] = None
        self._cache: Optional[cache_hits.CacheHits] = None
        self._tasks: Optional[container_tasks.TaskRunner] = None
        self._root_result: Optional[results.TaskResult] = None

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
        task_env = dict(self.options.env)
        task_env["PATH"] = command.python_shim_dir(self.scratch_root) + os.pathsep + task_env.get("PATH", os.defpath)
        task_env["PYTHONUNBUFFERED"] = "1"
        self._cache = cache_hits.CacheHits(self.recorder, self._contexts, self.reporter, self.options.enable_cache,
                                           self.options.task_environments)
        self.reporter.run_started(self.pipeline_name, self.options.run_id, self.store_label, self.run_root)
        root_execution = self.recorder.create_execution(
            self._contexts,
            vocabulary.DAG_EXECUTION_TYPE,
            {vocabulary.DISPLAY_NAME: "", vocabulary.TASK_NAME: "", vocabulary.INPUTS: self.arguments},
            name=f"run/{self.options.run_id}",
        )
        root = frames.Frame(
            key="", component=self.spec.root, execution_id=root_execution, parameters=dict(self.arguments),
            artifacts={}, on_done=self._root_done,
        )
        task_handler = factory.create_handler(
            self.options.launcher, handler.HandlerContext(task_env, self.scratch_root, self._processes))
        self._tasks = container_tasks.TaskRunner(
            task_handler=task_handler, processes=self._processes, record=self.recorder, contexts=self._contexts,
            reporter=self.reporter, options=self.options, pipeline_name=self.pipeline_name, run_root=self.run_root,
            scratch_root=self.scratch_root, task_env=task_env, arguments=self.arguments,
        )
        try:
            self._advance(root)
            self._start_ready_tasks()
            while self._tasks.busy:
                try:
                    done = self._tasks.wait()
                except KeyboardInterrupt:
                    # Stop every running task, start nothing new, and keep draining so each execution and DAG
                    # still gets a final state; then let the interrupt through.
                    self._processes.cancel_all()
                    self.reporter.warn("interrupted: stopping running tasks")
                    continue
                for future in done:
                    finished = self._tasks.collect(future)
                    if finished is not None:
                        self._container_done(finished)
                self._start_ready_tasks()
        finally:
            self._tasks.close()
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

    # DAGs ---------------------------------------------------------------------------------------------------------

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
        """Resolves a ready task's inputs and condition, then starts it by kind: loop, sub-DAG, importer or
        container task. A task whose inputs cannot be resolved is FAILED; one whose condition is false CANCELED."""
        key = frame.child_key(name)
        component = self.spec.components[task.component_ref.name]
        is_dag = component.WhichOneof("implementation") == "dag"
        execution_type = vocabulary.DAG_EXECUTION_TYPE if is_dag else vocabulary.CONTAINER_EXECUTION_TYPE
        properties: Dict[str, Any] = {
            vocabulary.DISPLAY_NAME: task.task_info.name or name,
            vocabulary.TASK_NAME: name,
            vocabulary.PARENT_DAG_ID: frame.execution_id,
        }
        view = resolution.DagView(frame.parameters, frame.artifacts, frame.states, frame.outputs,
                                  frame.final_statuses, self.options.run_id, frame.execution_id)
        try:
            parameters, artifacts = resolution.resolve_task_inputs(view, task, component)
            properties[vocabulary.INPUTS] = parameters
            run_it = not task.trigger_policy.condition or conditions.evaluate_condition(
                task.trigger_policy.condition, parameters
            )
            items = resolution.loop_items(task, parameters, artifacts) if task.WhichOneof("iterator") else None
        except (resolution.TaskInputError, errors.LineageError) as e:
            execution_id = self.recorder.create_execution(
                self._contexts, execution_type, properties, state=mlmd_pb.Execution.FAILED
            )
            self._set_final(frame, name, results.FAILED, execution_id, error=str(e))
            return
        if not run_it:
            execution_id = self.recorder.create_execution(
                self._contexts, execution_type, properties, state=mlmd_pb.Execution.CANCELED
            )
            self._set_final(frame, name, results.CANCELED, execution_id)
            return
        input_ids = {input_name: [a.artifact_id for a in arts] for input_name, arts in artifacts.items()}
        if items is not None:
            properties[vocabulary.ITERATION_COUNT] = len(items[1])
            properties[vocabulary.TOTAL_DAG_TASKS] = len(items[1])
            execution_id = self.recorder.create_execution(
                self._contexts, vocabulary.DAG_EXECUTION_TYPE, properties, input_artifacts=input_ids
            )
            frame.states[name] = results.RUNNING
            loop = loops.Loop(
                name=name, key=key, component=component, execution_id=execution_id,
                display_name=properties[vocabulary.DISPLAY_NAME], items=items, parameters=parameters, artifacts=artifacts,
                limit=task.iterator_policy.parallelism_limit,
            )
            self._advance_loop(frame, loop)
        elif is_dag:
            properties[vocabulary.TOTAL_DAG_TASKS] = len(component.dag.tasks)
            execution_id = self.recorder.create_execution(
                self._contexts, execution_type, properties, input_artifacts=input_ids
            )
            frame.states[name] = results.RUNNING
            child = frames.Frame(
                key=key, component=component, execution_id=execution_id, parameters=parameters,
                artifacts=artifacts,
                on_done=lambda state, produced, duration, error: self._child_done(
                    frame, name, execution_id, state, produced, duration, error),
            )
            self._advance(child)
        elif self.deployment.executors[component.executor_label].WhichOneof("spec") == "importer":
            importer_spec = self.deployment.executors[component.executor_label].importer
            execution_id, produced = importer.run_importer(self.recorder, self._contexts, importer_spec, component,
                                                           properties, parameters)
            frame.outputs[name] = produced
            self._set_final(frame, name, results.COMPLETE, execution_id, results.outputs_json(produced))
        else:
            container = self.deployment.executors[component.executor_label].container
            queued = container_tasks.ContainerTask(frame, name, task, component, container, parameters, artifacts,
                                                   properties, input_ids)
            hit = self._cache.serve(queued)
            if hit is not None:
                frame.outputs[name] = hit.produced
                self._set_final(frame, name, results.CACHED, hit.execution_id, results.outputs_json(hit.produced),
                                cached_execution_id=hit.cached_execution_id)
            else:
                frame.states[name] = results.QUEUED
                self._tasks.enqueue(queued)

    def _child_done(self, frame: frames.Frame, name: str, execution_id: int, state: str,
                    produced: dataflow.Produced, duration: float, error: str) -> None:
        """A sub-DAG or loop finished: hand its outputs to the enclosing DAG and move that on."""
        if state in results.SUCCEEDED:
            frame.outputs[name] = produced
        self._set_final(frame, name, state, execution_id, results.outputs_json(produced), duration, error)
        self._advance(frame)

    def _root_done(self, state: str, produced: dataflow.Produced, duration: float, error: str) -> None:
        self._root_result = results.TaskResult("", state, None, results.outputs_json(produced), duration, error)

    def _finish_frame(self, frame: frames.Frame) -> None:
        """Publishes a DAG whose children are all final, then calls its on_done."""
        frame.finished = True
        failed = self._interrupted or any(
            state in (results.FAILED, results.NOT_RUN) for state in frame.states.values())
        produced, error = dataflow.Produced(), ""
        if not failed:
            produced = resolution.resolve_dag_outputs(frame.component, frame.outputs)
        state = results.FAILED if failed else results.COMPLETE
        if failed:  # name the first failed task, for exit handlers' PipelineTaskFinalStatus
            error = next((f"{name}: {status.error}" for name, status in frame.final_statuses.items()
                          if status.state == results.FAILED and status.error), "")
        properties = {vocabulary.OUTPUTS: produced.parameters} if produced.parameters else {}
        self.recorder.publish_execution(self._contexts, frame.execution_id, results.MLMD_STATE[state], properties)
        frame.on_done(state, produced, time.monotonic() - frame.started, error)

    def _set_final(
        self,
        frame: frames.Frame,
        name: str,
        state: str,
        execution_id: Optional[int],
        outputs: Optional[Dict[str, Dict[str, Any]]] = None,
        duration: float = 0.0,
        error: str = "",
        log_path: str = "",
        attempts: int = 0,
        cached_execution_id: Optional[int] = None,
    ) -> None:
        """Notes a task of `frame` as final, in the frame (for its siblings) and in the run's results."""
        key = frame.child_key(name)
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
                self._contexts, vocabulary.DAG_EXECUTION_TYPE, iteration.properties, input_artifacts=iteration.input_ids
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
            properties = {vocabulary.OUTPUTS: produced.parameters} if produced.parameters else {}
            self.recorder.publish_execution(self._contexts, loop.execution_id, results.MLMD_STATE[state], properties)
            self._child_done(frame, loop.name, loop.execution_id, state, produced, time.monotonic() - loop.started,
                             "")

    def _iteration_done(self, frame: frames.Frame, loop: loops.Loop, index: int, execution_id: int, state: str,
                        produced: dataflow.Produced, duration: float, error: str) -> None:
        loop.iteration_done(index, state, produced)
        key = loop.iteration_key(index)
        self._task_results[key] = results.TaskResult(key, state, execution_id, results.outputs_json(produced),
                                                     duration, error)
        self._advance_loop(frame, loop)

    # Container tasks ----------------------------------------------------------------------------------------------

    def _start_ready_tasks(self) -> None:
        """Starts queued container tasks while fewer than max_parallel run.

        A queued task was started as far as the pipeline is concerned (on a cluster its pod would be running): a
        failure elsewhere does not drop it, or what runs would depend on --max-parallel. An interrupt drops it
        (not run, not recorded).
        """
        while (queued := self._tasks.next_ready()) is not None:
            if self._interrupted:
                queued.frame.states[queued.name] = results.NOT_RUN
                self._advance(queued.frame)
            else:
                self._tasks.start(queued)
                queued.frame.states[queued.name] = results.RUNNING

    def _container_done(self, finished: container_tasks.FinishedTask) -> None:
        frame, name = finished.task.frame, finished.task.name
        if finished.state == results.COMPLETE:
            self._cache.remember(str(finished.task.properties.get("cache_fingerprint", "")), finished.execution_id)
            frame.outputs[name] = finished.produced
        self._set_final(frame, name, finished.state, finished.execution_id, results.outputs_json(finished.produced),
                        finished.duration, finished.error, finished.log_path, finished.attempts)
        self._advance(frame)
