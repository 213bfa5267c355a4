"""Conformance: ParallelFor, Collected, ExitHandler, ignore_upstream_failure, retry, OneOf, pipeline outputs.

Each test runs a pipeline compiled by kfp 2.13 through the runner and checks both the outcome and the MLMD shape.
"""


import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from tests.conformance import pipelines
from tests.mlmd_view import run_and_view


run = run_and_view


def test_parallel_for_over_a_task_output_collects_parameters_and_artifacts(tmp_path, any_store_url):
    result, view = run(pipelines.loop_over_task_output, tmp_path, any_store_url, "loop-1")

    assert result.state == "COMPLETE"
    assert result.tasks["total"].outputs["Output"] == {"value": 0 + 1 + 4 + 9}
    assert result.tasks["join"].outputs["Output"] == {"value": "item-0,item-1,item-2,item-3"}
    loop = view.execution("for-loop-1")
    assert loop.type == "system.DAGExecution" and view.state("for-loop-1") == "COMPLETE"
    assert view.prop("for-loop-1", "iteration_count") == 4
    for index in range(4):
        key = f"for-loop-1/iteration-{index}"
        assert view.execution(key).type == "system.DAGExecution"
        assert view.prop(key, "iteration_index") == index
        assert view.prop(key, "parent_dag_id") == loop.id
        assert view.prop(f"{key}/square", "parent_dag_id") == view.execution(key).id
        assert view.prop(f"{key}/square", "inputs") == {"x": index}
    written = [view.outputs(f"for-loop-1/iteration-{i}/write")["data"][0] for i in range(4)]
    assert view.inputs("join") == {"datasets": written}  # a list input: one INPUT event per artifact, one key
    assert view.prop("for-loop-1", "outputs") is None  # the backend never publishes a DAG's outputs
    body = [k for k in view.by_key if k.startswith("for-loop-1/iteration-0/") and k.count("/") == 2]
    assert view.prop("for-loop-1", "total_dag_tasks") == len(body)  # the body's task count, not the item count
    assert view.prop("for-loop-1/iteration-0", "display_name") == view.prop("for-loop-1", "display_name")


def test_nested_loops_over_constants_and_pipeline_inputs(tmp_path, sqlite_url):
    result, view = run(pipelines.loop_over_constants_and_inputs, tmp_path, sqlite_url, "nested-loops",
                       arguments={"items": "[3, 4, 5]"})

    assert result.state == "COMPLETE"
    outer = [k for k in view.by_key if k.count("/") == 1 and k.startswith("for-loop-1/iteration-")]
    assert len(outer) == 3
    inner_squares = sorted(
        result.tasks[k].outputs["Output"]["value"] for k in result.tasks if k.endswith("/square")
    )
    assert inner_squares == [100, 100, 100, 400, 400, 400]
    assert sorted(result.tasks[k].outputs["Output"]["value"] for k in result.tasks if k.endswith("/square-2")) == [
        9, 16, 25]


def test_loop_items_that_are_dicts_are_read_field_by_field(tmp_path, sqlite_url):
    result, _ = run(pipelines.loop_over_dicts, tmp_path, sqlite_url, "dicts")
    echoed = sorted(t.outputs["Output"]["value"] for k, t in result.tasks.items() if k.endswith("/echo"))
    assert echoed == ["a", "b"]


def test_parallel_for_over_an_artifact_list(tmp_path, sqlite_url):
    result, view = run(pipelines.loop_over_artifacts, tmp_path, sqlite_url, "artifacts")

    assert result.state == "COMPLETE"
    made = {a for key in view.by_key if key.endswith("/write") for a in view.outputs(key)["data"]}
    assert len(made) == 3
    reads = [k for k in view.by_key if k.endswith("/read")]
    assert len(reads) == 3
    assert {view.inputs(k)["data"][0] for k in reads} == made
    assert sorted(result.tasks[k].outputs["Output"]["value"] for k in reads) == ["d0", "d1", "d2"]


@pytest.mark.slow
def test_a_loop_of_50_with_parallelism_4_never_has_more_than_4_tasks_alive(tmp_path, sqlite_url):
    result, view = run(pipelines.wide_loop, tmp_path, sqlite_url, "wide", max_parallel=8,
                       arguments={"count": 50, "seconds": 0.3})

    assert result.state == "COMPLETE"
    spans = [(e.create_time_since_epoch, e.last_update_time_since_epoch)
             for k, e in view.by_key.items() if k.endswith("/pause")]
    assert len(spans) == 50
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    alive = peak = 0
    for _, change in events:
        alive += change
        peak = max(peak, alive)
    assert peak <= 4
    assert peak >= 2  # the loop really ran iterations side by side


# The backend's driver passes the MLMD state name (COMPLETE), not Vertex AI's SUCCEEDED; KFP's own
# pipeline_with_input_status_state asserts it.
@pytest.mark.parametrize("fail, expected_state", [(False, "COMPLETE"), (True, "FAILED")])
def test_exit_handler_runs_after_success_and_failure_with_the_final_status(tmp_path, sqlite_url, fail,
                                                                           expected_state):
    result, view = run(pipelines.exit_handler, tmp_path, sqlite_url, f"exit-{fail}", arguments={"fail": fail})

    status = result.tasks["report-status"].outputs["Output"]["value"]
    assert status.startswith(f"{expected_state}:exit-handler-1:")
    if fail:
        assert "the guarded step broke" in status
    assert result.state == ("FAILED" if fail else "COMPLETE")
    assert view.state("report-status") == "COMPLETE"
    assert view.state("exit-handler-1") == ("FAILED" if fail else "COMPLETE")
    assert view.state("") == ("FAILED" if fail else "COMPLETE")


def test_ignore_upstream_failure_runs_the_cleanup_task(tmp_path, sqlite_url):
    result, view = run(pipelines.ignore_upstream_failure, tmp_path, sqlite_url, "ignore")

    assert result.tasks["fail-if"].state == "FAILED"
    assert result.tasks["echo"].state == "COMPLETE"
    assert view.state("echo") == "COMPLETE"
    assert result.state == "FAILED"


def test_retry_reruns_a_failing_task_and_records_only_the_final_state(tmp_path, sqlite_url):
    counter = tmp_path / "attempts"
    result, view = run(pipelines.retry, tmp_path, sqlite_url, "retry", arguments={"counter_file": str(counter)})

    assert result.state == "COMPLETE"
    task = result.tasks["flaky"]
    assert task.outputs["Output"] == {"value": 3} and task.attempts == 3
    assert view.state("flaky") == "COMPLETE"
    assert len([k for k in view.by_key if k == "flaky"]) == 1
    log = open(task.log_path).read()
    assert log.count("attempt 1 fails on purpose") == 1 and log.count("attempt 2 fails on purpose") == 1
    assert "--- kfp-lineage: attempt 2 ---" in log and "--- kfp-lineage: attempt 3 ---" in log


def test_retry_gives_up_after_the_last_attempt(tmp_path, sqlite_url):
    result, view = run(pipelines.retry, tmp_path, sqlite_url, "retry-fail",
                       arguments={"counter_file": str(tmp_path / "n"), "failures": 5})
    assert result.tasks["flaky"].state == "FAILED" and result.tasks["flaky"].attempts == 3
    assert "attempt 3 fails on purpose" in result.tasks["flaky"].error
    assert view.state("flaky") == "FAILED"


@pytest.mark.parametrize("flag, text", [(True, "first"), (False, "second")])
def test_one_of_takes_the_branch_that_ran(tmp_path, sqlite_url, flag, text):
    result, view = run(pipelines.one_of, tmp_path, sqlite_url, f"oneof-{flag}", arguments={"flag": flag})

    assert result.state == "COMPLETE"
    assert result.outputs == {"Output": {"value": text}}
    [branch] = [k for k in view.by_key if k.endswith("/write") or k.endswith("/write-2")]
    [written] = view.outputs(branch)["data"]
    assert view.inputs("read") == {"data": [written]}
    assert view.inputs("choose") == {}
    assert result.tasks["choose"].outputs["Output"]["artifact_id"] == written


def test_pipeline_outputs_are_returned_and_recorded_on_the_root(tmp_path, sqlite_url):
    result, view = run(pipelines.pipeline_outputs, tmp_path, sqlite_url, "outs", arguments={"text": "hi"})
    assert result.outputs == {"Output": {"value": "hi"}}
    assert view.prop("", "outputs") == {"Output": "hi"}


def test_a_failed_loop_iteration_fails_the_loop(tmp_path, sqlite_url):
    from kfp import dsl

    @dsl.pipeline(name="loop-fails")
    def loop_fails():
        with dsl.ParallelFor([False, True, False], parallelism=1) as flag:
            pipelines.fail_if(fail=flag, message="iteration broke")

    result, view = run(loop_fails, tmp_path, sqlite_url, "loop-fails")
    assert result.state == "FAILED"
    [loop] = [k for k in view.by_key if k.startswith("for-loop-") and "/" not in k]
    assert view.state(loop) == "FAILED"
    assert view.state(f"{loop}/iteration-0") == "COMPLETE"
    assert view.state(f"{loop}/iteration-1") == "FAILED"
    assert f"{loop}/iteration-2" not in view.by_key  # fail fast: the third iteration never started
    assert view.execution(f"{loop}/iteration-1/fail-if").last_known_state == mlmd_pb.Execution.FAILED


@pytest.mark.parametrize("max_parallel", [1, 4])
def test_a_failure_stops_its_own_dag_and_not_a_sibling_dag_already_started(tmp_path, sqlite_url, max_parallel):
    # Argo fails fast per DAG: the failed task's DAG and the root stop starting tasks, but a sibling DAG that was
    # already running finishes its own tasks. Found with KFP's pipeline_with_multiple_exit_handlers, where the
    # outcome depended on --max-parallel.
    from kfp import dsl

    @dsl.pipeline
    def breaks():
        pipelines.fail_if(fail=True, message="broke")

    @dsl.pipeline
    def pause_then_echo():
        paused = pipelines.pause(seconds=0.5, x=1)
        pipelines.echo(text="after the pause").after(paused)

    @dsl.pipeline(name="sibling-dags")
    def sibling_dags():
        breaks()
        sibling = pause_then_echo()
        pipelines.echo(text="never").after(sibling)

    result, view = run(sibling_dags, tmp_path, sqlite_url, f"siblings-{max_parallel}", max_parallel=max_parallel)
    assert result.state == "FAILED"
    assert view.state("breaks") == "FAILED"
    assert view.state("pause-then-echo") == "COMPLETE"
    assert view.state("pause-then-echo/echo") == "COMPLETE"  # started after the failure, inside a healthy DAG
    assert "echo" not in view.by_key  # the root DAG failed fast


def test_a_loop_iteration_whose_condition_is_false_completes_and_is_left_out_of_collected(tmp_path, sqlite_url):
    # The iteration's DAG output comes from a condition that did not run: the backend looks DAG outputs up only
    # when a consumer needs them, so the iteration completes and dsl.Collected has the other values. We failed the
    # iteration (and so the loop and the run). Found with KFP's conditional_producer_and_consumers.
    from kfp import dsl

    @dsl.pipeline(name="skipped-producer-in-loop")
    def skipped_producer_in_loop(threshold: int = 2):
        with dsl.ParallelFor([1, 2, 3]) as x:
            with dsl.If(x >= threshold):
                squared = pipelines.square(x=x)
        pipelines.total(values=dsl.Collected(squared.output))

    result, view = run(skipped_producer_in_loop, tmp_path, sqlite_url, "skipped-producer")
    assert result.state == "COMPLETE"
    [loop] = [k for k in view.by_key if k.startswith("for-loop-") and "/" not in k]
    assert [view.state(f"{loop}/iteration-{i}") for i in range(3)] == ["COMPLETE"] * 3
    assert view.prop("total", "inputs")["values"] == [4, 9]
    assert result.tasks["total"].outputs["Output"]["value"] == 13

