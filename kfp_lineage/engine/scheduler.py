"""Scheduling a compiled pipeline's DAGs: dependencies, conditions, fail-fast, exit handlers; tasks are started
as they become ready, DAG states roll up, and the recorder is told what happened.

Ties the engine together and owns none of the details: inputs are resolved in ir/resolution.py, loops are
loops.py, cache hits cache_hits.py, importers importer.py, container tasks container_tasks.py (which runs them
through the run's task handler from exec/), records are written by mlmd/recorder.py.
"""

from __future__ import annotations

import collections
import os
import signal
import time
from typing import Any, Callable, Deque, Dict, Mapping, Optional

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
from kfp_lineage.engine import stopping
from kfp_lineage.engine.exec import command
from kfp_lineage.engine.exec import factory
from kfp_lineage.engine.exec import handler
from kfp_lineage.engine.exec import supervision
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

# How often the scheduler looks at the stop request while it waits for tasks.
_STOP_POLL_SECONDS = 0.2

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
        stop: Optional[stopping.StopRequest] = None,
    ):
        """`stop` is polled while the run goes (see stopping.stop_on_signals); None: only an error stops it."""
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
        self._processes = supervision.ReapedProcesses()  # no task outlives this runner, even a SIGKILLed one
        self._contexts: Optional[recorder.RunContexts] = None
        self._cache: Optional[cache_hits.CacheHits] = None
        self._tasks: Optional[container_tasks.TaskRunner] = None
        self._tasks_closed = False
        self._stop = stop or stopping.StopRequest()
        self._root_result: Optional[results.TaskResult] = None
        self._steps: Deque[Callable[[], None]] = collections.deque()
        self._stepping = False

    @property
    def _interrupted(self) -> bool:
        """Whether the run is being stopped (a stop request, or its processes canceled): nothing new starts."""
        return self._stop.requested or self._processes.canceled

    def run(self) -> results.RunResult:
        """Runs every task and records the run; returns when the root DAG is final.

        The run ends consistent on every path: each execution it created and its run context are final (no
        RUNNING left), and no task process is left running.

        Raises:
            RunCanceled: the stop request was set (SIGINT, SIGTERM): running tasks were killed and recorded
                CANCELED, the unfinished DAGs and the run CANCELED. Raised before anything is written when the
                request came before the run started.
            RunAbortedError: the runner itself failed (a bug, a store error that is not transient): running tasks
                were killed, every RUNNING execution was recorded FAILED with a failure_reason and the run FAILED;
                the message names the file holding the traceback. A LineageError is raised as itself instead.
            InvalidInputError: the run id is already recorded, or its directory is in use by a live runner
                (nothing was written).
        """
        if self._stop.requested:
            raise errors.RunCanceled(self._stop.signal_number)
        started = time.monotonic()
        # Held until the run is final in the store: while it is held, `recover` knows this runner is alive.
        runner_lock = recovery.hold_runner_lock(self.run_root)
        try:
            self._contexts = self.recorder.begin_run(self.pipeline_name, self.options.run_id, self.run_root)
        except BaseException:
            runner_lock.discard()
            raise
        try:
            root_execution = self._start_root()
            self._drive()
            self._close_tasks()
            root_result = self._root_result or results.TaskResult("", results.FAILED, root_execution)
            stopped = self._stop.requested or self._processes.canceled
            self.recorder.finish_run(self._contexts, vocabulary.RUNNER_CANCELED if stopped else root_result.state)
        except BaseException as error:
            raise self._abort(error) from error
        finally:
            runner_lock.release()
        if stopped:
            raise errors.RunCanceled(self._stop.signal_number or signal.SIGINT)
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

    def _start_root(self) -> int:
        """Closes earlier runs of this pipeline whose runner died, makes the run's task handler, records the root
        DAG and starts every task that is ready; the root DAG's execution id."""
        for dead in self.recorder.recover_dead_runs(self._contexts.pipeline):
            self.reporter.warn(f"run {dead.run_id} was left unfinished by a killed runner: marked its "
                               f"{dead.executions_failed} running executions FAILED")
        os.makedirs(self.scratch_root, exist_ok=True)
        task_env = dict(self.options.env)
        task_env["PATH"] = command.python_shim_dir(self.scratch_root) + os.pathsep + task_env.get("PATH", os.defpath)
        task_env["PYTHONUNBUFFERED"] = "1"
        self._cache = cache_hits.CacheHits(self.recorder, self._contexts, self.reporter, self.options.enable_cache,
                                           self.options.task_environments)
        self.reporter.run_started(self.pipeline_name, self.options.run_id, self.store_label, self.run_root)
        task_handler = factory.create_handler(
            self.options.launcher, handler.HandlerContext(task_env, self.scratch_root, self._processes))
        self._tasks = container_tasks.TaskRunner(
            task_handler=task_handler, processes=self._processes, record=self.recorder, contexts=self._contexts,
            reporter=self.reporter, options=self.options, pipeline_name=self.pipeline_name, run_root=self.run_root,
            scratch_root=self.scratch_root, task_env=task_env, arguments=self.arguments,
        )
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
        self._step(lambda: self._advance(root))
        self._step(self._start_ready_tasks)
        return root_execution

    def _drive(self) -> None:
        """Waits for running tasks and moves the run on as each ends, until none runs.

        A stop request kills every running task and starts nothing new; the loop then keeps collecting, so each
        execution and DAG still gets a final state. The request is polled (a signal handler only sets it), so a
        signal never lands in the middle of a store write.
        """
        while self._tasks.busy:
            if self._stop.requested and not self._processes.canceled:
                self._processes.cancel_all()
                self.reporter.warn(f"{stopping.describe_signal(self._stop.signal_number)}: stopping running tasks")
            for future in self._tasks.wait(timeout=_STOP_POLL_SECONDS):
                finished = self._tasks.collect(future)
                if finished is not None:
                    self._step(lambda finished=finished: self._container_done(finished))
            self._step(self._start_ready_tasks)
            # A finished task's records may have been deferred to overlap the launch of the tasks it let start
            # (container_tasks.TaskRunner.collect); written by now, before the scheduler waits again.
            self.recorder.flush()

    def _close_tasks(self) -> None:
        """Waits for the task threads, closes the task handler and lets the reaper go (once)."""
        if self._tasks_closed:
            return
        self._tasks_closed = True
        try:
            if self._tasks is not None:
                self._tasks.close()
        finally:
            self._processes.close()

    def _abort(self, error: BaseException) -> BaseException:
        """Ends a run the scheduler cannot finish: kills its running tasks, waits for them, and closes its records
        (every RUNNING execution FAILED, or CANCELED after an interrupt, with a failure_reason; the run context
        final). Returns the exception to raise: RunCanceled for an interrupt, the error itself for a LineageError,
        else RunAbortedError naming the file with the traceback."""
        self._processes.cancel_all()
        try:
            self._close_tasks()
        except Exception:  # noqa: BLE001 - the processes are killed; the records matter more now
            pass
        if isinstance(error, KeyboardInterrupt):
            state, reason = vocabulary.RUNNER_CANCELED, "the run was interrupted"
            raised: BaseException = errors.RunCanceled(getattr(error, "signal_number", signal.SIGINT))
        else:
            log_path = stopping.write_traceback(self.scratch_root, error)
            summary = stopping.summarize_error(error)
            state, reason = vocabulary.RUNNER_FAILED, f"the runner stopped on an error: {summary}"
            raised = error if isinstance(error, (errors.LineageError, SystemExit)) else errors.RunAbortedError(
                f"the runner stopped on an unexpected error: {summary}; its running tasks were stopped and the run "
                f"was recorded FAILED" + (f" (traceback: {log_path})" if log_path else ""))
        try:
            self.recorder.close_run(self._contexts, reason, state)
        except Exception as close_error:  # noqa: BLE001 - the store is what failed: leave it to `recover`
            self.reporter.warn(f"could not close the run in the store ({stopping.summarize_error(close_error)}): run "
                               f"`kfp-lineage recover` once the store is reachable")
        return raised

    def _step(self, action: Callable[[], None]) -> None:
        """Runs `action`, then every action queued while it ran, one after another.

        A DAG that finishes queues its on_done here instead of calling it (see _finish_frame), so the tasks of a
        DAG that all end at once (a cached rerun of a 300-item loop, iterations skipped by a false condition) are
        handled in a loop: the stack grows with the pipeline's nesting, never with how many tasks end together.
        Every entry into the DAG logic from run() goes through here.
        """
        self._steps.append(action)
        if self._stepping:
            return
        self._stepping = True
        try:
            while self._steps:
                self._steps.popleft()()
        finally:
            self._stepping = False
            self._steps.clear()

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
                dependency_states = [frame.states.get(dep) for dep in frame.dependencies[name]]
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
            properties[vocabulary.INPUTS] = parameters if is_dag else results.bound_inputs(task, parameters)
            run_it = not task.trigger_policy.condition or conditions.evaluate_condition(
                task.trigger_policy.condition, parameters
            )
            items = resolution.loop_items(task, parameters, artifacts) if task.WhichOneof("iterator") else None
        except (resolution.TaskInputError, errors.LineageError) as e:
            # As the backend's driver: an input that cannot be resolved creates no execution; the task (and so its
            # DAG) fails with the error.
            self._set_final(frame, name, results.FAILED, None, error=str(e))
            return
        input_ids = {input_name: [a.artifact_id for a in arts] for input_name, arts in artifacts.items()}
        if is_dag:  # the body's task count, on loops too; set before the condition, as the driver does
            properties[vocabulary.TOTAL_DAG_TASKS] = len(component.dag.tasks)
        if not run_it:
            # The driver resolves inputs before it evaluates the condition, so a skipped task has its INPUT events.
            execution_id = self.recorder.create_execution(
                self._contexts, execution_type, properties, state=mlmd_pb.Execution.CANCELED,
                input_artifacts=input_ids,
            )
            self._set_final(frame, name, results.CANCELED, execution_id)
            return
        if items is not None:
            properties[vocabulary.ITERATION_COUNT] = len(items[1])
            properties[vocabulary.INPUTS] = loops.loop_inputs(task, parameters, items)
            execution_id = self.recorder.create_execution(
                self._contexts, vocabulary.DAG_EXECUTION_TYPE, properties, input_artifacts=input_ids
            )
            frame.states[name] = results.RUNNING
            loop = loops.Loop(
                name=name, key=key, component=component, execution_id=execution_id,
                display_name=properties[vocabulary.DISPLAY_NAME], items=items, parameters=parameters, artifacts=artifacts,
                limit=task.iterator_policy.parallelism_limit,
                items_parameter=task.parameter_iterator.items.input_parameter,
            )
            self._advance_loop(frame, loop)
        elif is_dag:
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
            # The backend's importer launcher records the task's name as task_name, no display_name, no inputs.
            importer_properties = {vocabulary.DISPLAY_NAME: "", vocabulary.TASK_NAME: task.task_info.name or name,
                                   vocabulary.PARENT_DAG_ID: frame.execution_id}
            execution_id, produced = importer.run_importer(self.recorder, self._contexts, importer_spec, component,
                                                           importer_properties, parameters)
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
        """Publishes a DAG whose children are all final, then queues its on_done (see _step)."""
        frame.finished = True
        states = set(frame.states.values())
        produced, error = dataflow.Produced(), ""
        if results.FAILED in states:
            state = results.FAILED
        elif self._interrupted:  # tasks killed or never started because the run was stopped
            state = results.CANCELED
        elif results.NOT_RUN in states:
            state = results.FAILED
        else:
            state = results.COMPLETE
            produced = resolution.resolve_dag_outputs(frame.component, frame.outputs)
        if state == results.FAILED:  # name the first failed task, for exit handlers' PipelineTaskFinalStatus
            error = next((f"{name}: {status.error}" for name, status in frame.final_statuses.items()
                          if status.state == results.FAILED and status.error), "")
        # Only the root records its outputs (ours: the run's answer); the backend never publishes a DAG's outputs.
        is_root = frame.key == ""
        properties = {vocabulary.OUTPUTS: produced.parameters} if produced.parameters and is_root else {}
        self.recorder.publish_execution(self._contexts, frame.execution_id, results.MLMD_STATE[state], properties)
        duration = time.monotonic() - frame.started
        self._step(lambda: frame.on_done(state, produced, duration, error))

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
        """Starts the loop's iterations it allows now, each a DAG execution and frame; finishes the loop when every
        iteration ended. An iteration that ends at once (nothing to run) is reported through _step after this
        returns, so starting 300 such iterations is a loop here, not a recursion."""
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
            self.recorder.publish_execution(self._contexts, loop.execution_id, results.MLMD_STATE[state])
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

