"""Listing runs with their state, duration and task counts."""

import pytest

from kfp_lineage import errors
from kfp_lineage.lineage import runs as lineage_runs
from tests.lineage_stores import FAILED, RUNNING, training_run


def test_list_runs_newest_first_with_state_duration_and_task_counts(builder, store):
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    training_run(builder, "a", source)
    training_run(builder, "b", source, pipeline="nightly", evaluate_state=FAILED)
    training_run(builder, "c", source, deploy=False)

    runs = lineage_runs.list_runs(store)
    assert [r.run_id for r in runs] == ["c", "b", "a"]
    assert [(r.pipeline, r.state) for r in runs] == [("training", "COMPLETE"), ("nightly", "FAILED"),
                                                     ("training", "COMPLETE")]
    assert runs[0].task_states == {"COMPLETE": 3, "CANCELED": 1}
    assert runs[1].task_states == {"COMPLETE": 2, "FAILED": 1}
    assert runs[2].task_states == {"COMPLETE": 5}
    assert all(r.start_time and r.end_time >= r.start_time and r.duration_seconds >= 0 for r in runs)
    assert [r.run_id for r in lineage_runs.list_runs(store, pipeline="training", limit=1)] == ["c"]
    assert [r.run_id for r in lineage_runs.list_runs(store, limit=2, sql=False)] == ["c", "b"]
    with pytest.raises(errors.InvalidInputError) as failure:
        lineage_runs.list_runs(store, pipeline="nope")
    assert str(failure.value) == "no pipeline 'nope' in this store: its pipelines are nightly, training"


def test_a_root_left_running_by_the_backend_reads_from_its_tasks(builder, store):
    done = builder.run("done", root_state=RUNNING)
    done.task("a", outputs={"x": ("system.Artifact", {})})
    busy = builder.run("busy", root_state=RUNNING)
    busy.task("a", state=RUNNING)
    broken = builder.run("broken", root_state=RUNNING)
    broken.task("a", state=FAILED)
    states = {r.run_id: (r.state, r.duration_seconds is None) for r in lineage_runs.list_runs(store)}
    assert states == {"done": ("COMPLETE", False), "busy": ("RUNNING", True), "broken": ("FAILED", False)}
