"""Finding what a user names: artifacts by id, URI or RUN_ID/TASK/OUTPUT; errors that name the problem and the
fix."""

import pytest

from kfp_lineage import errors
from kfp_lineage.lineage import describe
from kfp_lineage.lineage import references
from kfp_lineage.lineage import runs as lineage_runs
from tests.lineage_stores import training_run


@pytest.mark.parametrize(
    "reference, message",
    [
        ("999", "no artifact with id 999 in this store: `kfp-lineage runs` and `kfp-lineage show RUN_ID` list "
                "the artifacts"),
        ("/no/such", "no artifact has URI /no/such: pass an artifact id, a URI, or RUN_ID/TASK/OUTPUT"),
        ("nope/train/model", "no run 'nope' in this store: `kfp-lineage runs` lists them"),
        ("r1/nope/model", "run r1 has no task 'nope': `kfp-lineage show r1` lists its tasks"),
        ("r1/train/nope", "task 'train' of run r1 recorded no output 'nope': `kfp-lineage show r1` lists its "
                          "outputs"),
        ("shared://uri", "2 artifacts have URI shared://uri (ids 1, 2): pass one id"),
    ],
)
def test_find_artifact_errors_name_the_problem_and_the_fix(builder, store, reference, message):
    assert [builder.artifact("system.Dataset", "shared://uri") for _ in range(2)] == [1, 2]
    source = builder.artifact("system.Dataset", "bq://t", name="source")
    training_run(builder, "r1", source)
    with pytest.raises(errors.InvalidInputError) as failure:
        references.find_artifact(store, reference)
    assert str(failure.value) == message


def test_an_empty_store_says_so(store):
    for call in (lambda: references.find_artifact(store, "1"), lambda: references.find_artifact(store, "/x"),
                 lambda: describe.describe(store, "something")):
        with pytest.raises(errors.InvalidInputError) as failure:
            call()
        assert str(failure.value) == "the store has no artifacts yet: run a pipeline with `kfp-lineage run` first"
    for call in (lambda: lineage_runs.list_runs(store), lambda: references.find_artifact(store, "latest/train/model"),
                 lambda: describe.describe_run(store, "latest")):
        with pytest.raises(errors.InvalidInputError) as failure:
            call()
        assert str(failure.value) == "the store has no pipeline runs yet: run one with `kfp-lineage run`"


def test_a_store_whose_runs_recorded_only_parameters_says_so(builder, store):
    builder.run("params-only").task("add", parameters={"a": 1})
    with pytest.raises(errors.InvalidInputError) as failure:
        references.find_artifact(store, "1")
    assert str(failure.value) == (
        "this store's runs recorded no artifacts (only parameters): `kfp-lineage show RUN_ID` shows a run")




def test_the_public_trace_takes_a_string_reference_as_the_cli_does(builder, store):
    import kfp_lineage

    run = training_run(builder, "r1", builder.artifact("system.Dataset", "bq://t", name="source"))
    model = run.outputs[("train", "model")]
    by_id = kfp_lineage.trace(store, model)
    assert kfp_lineage.trace(store, str(model)).to_json() == by_id.to_json()
    assert kfp_lineage.trace(store, "r1/train/model").to_json() == by_id.to_json()
    assert kfp_lineage.impact(store, str(model)).to_json() == kfp_lineage.impact(store, model).to_json()


def test_latest_is_the_newest_finished_run_and_a_note_names_newer_unfinished_ones(builder, store, caplog):
    from tests.lineage_stores import RUNNING

    source = builder.artifact("system.Dataset", "bq://t", name="source")
    training_run(builder, "done", source)
    busy = builder.run("busy", root_state=RUNNING)  # still running: its model is not there yet
    busy.task("ingest", {"source": source}, state=RUNNING)
    dead = builder.run("dead", root_state=RUNNING)  # a runner killed before `recover`: a task left RUNNING
    dead.task("ingest", {"source": source}, outputs={"train": ("system.Dataset", {})})
    dead.task("train", state=RUNNING)
    [model] = [a for a in store.get_artifacts() if a.type == "system.Model"]

    with caplog.at_level("WARNING", logger="kfp_lineage.lineage.references"):
        assert references.find_artifact(store, "latest/train/model").id == model.id
        assert references.latest_run(store).name == "done"
        assert describe.describe_run(store, "latest").run_id == "done"
    assert caplog.messages[0] == ("note: `latest` is run done, the newest that finished; 2 newer runs have not "
                                  "finished yet: dead, busy (pass a run id to read one)")


def test_latest_without_a_finished_run_says_so(builder, store):
    from tests.lineage_stores import RUNNING

    builder.run("busy", root_state=RUNNING).task("ingest", state=RUNNING)
    with pytest.raises(errors.InvalidInputError) as failure:
        references.find_artifact(store, "latest/ingest/train")
    assert str(failure.value) == (
        "no run in this store has finished yet (the newest, busy, is RUNNING): pass its run id to read it anyway, "
        "or `kfp-lineage recover` a run whose runner died")
