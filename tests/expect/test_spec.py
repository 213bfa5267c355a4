"""Lineage spec files: the schema they follow, what loading returns, and one-line errors naming line and fix."""

import dataclasses
import json
from importlib import resources

import jsonschema
import pytest

from kfp_lineage import errors
from kfp_lineage.expect import spec as expectations_spec
from tests.fixtures import broken_pipelines

TASK = "pipeline: mini\ntasks:\n  train:\n    type: system.ContainerExecution\n    state: COMPLETE\n"


def test_the_schema_ships_as_package_data_and_is_a_valid_json_schema():
    text = resources.files("kfp_lineage").joinpath("schemas/lineage-spec.schema.json").read_text()
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert expectations_spec.load_schema() == schema
    assert set(schema["$defs"]["state"]["enum"]) == set(expectations_spec.STATES)


def test_a_spec_loads_with_tasks_events_and_lines(tmp_path):
    path = tmp_path / "mini.lineage.yaml"
    path.write_text(broken_pipelines.GOOD_SPEC)
    spec = expectations_spec.load_lineage_spec(path)
    assert spec.pipeline == "mini" and spec.source == str(path) and not spec.allow_extra_tasks
    assert list(spec.tasks) == ["make-data", "fit", "fit-2", "score", "condition-1", "condition-1/ship"]
    fit = spec.tasks["fit"]
    assert (fit.execution_type, fit.states, fit.line, fit.allow_extra_events) == (
        "system.ContainerExecution", ("COMPLETE",), 9, False
    )
    assert fit.inputs["data"] == expectations_spec.EventSpec(
        "INPUT", "data", "system.Dataset", producer="make-data.data", line=13
    )
    assert fit.outputs["model"] == expectations_spec.EventSpec(
        "OUTPUT", "model", "system.Model", metadata=("framework", "depth"), line=15
    )
    assert spec.tasks["condition-1"].execution_type == "system.DAGExecution"
    assert spec.event_count() == 11


def test_state_lists_counts_and_extra_flags():
    spec = expectations_spec.parse_lineage_spec(
        "pipeline: p\nallow_extra_tasks: true\nallow_extra_events: true\ntasks:\n"
        "  a:\n    type: system.ContainerExecution\n    state: [COMPLETE, CACHED]\n"
        "    inputs:\n      parts: {type: system.Dataset, count: 3}\n"
        "  b:\n    type: system.ContainerExecution\n    state: FAILED\n    allow_extra_events: false\n"
    )
    assert spec.allow_extra_tasks
    assert spec.tasks["a"].states == ("COMPLETE", "CACHED") and spec.tasks["a"].allow_extra_events
    assert spec.tasks["a"].inputs["parts"].count == 3 and spec.tasks["a"].inputs["parts"].producer is None
    assert not spec.tasks["b"].allow_extra_events


def test_a_loop_iteration_may_be_written_either_way_and_loads_in_the_one_notation():
    spec = expectations_spec.parse_lineage_spec(
        "pipeline: p\ntasks:\n"
        "  for-loop-2[0]/train:\n    type: system.ContainerExecution\n    state: COMPLETE\n"
        "  for-loop-2/iteration-1/train:\n    type: system.ContainerExecution\n    state: COMPLETE\n"
        "  pick:\n    type: system.ContainerExecution\n    state: COMPLETE\n    inputs:\n"
        "      first: {type: system.Model, from: 'for-loop-2[0]/train.model'}\n"  # quoted: [ ends a YAML flow scalar
        "      second: {type: system.Model, from: for-loop-2/iteration-1/train.model}\n"
    )
    assert list(spec.tasks) == ["for-loop-2/iteration-0/train", "for-loop-2/iteration-1/train", "pick"]
    assert [(t.path, t.line) for t in spec.tasks.values()] == [
        ("for-loop-2/iteration-0/train", 3), ("for-loop-2/iteration-1/train", 6), ("pick", 9)]
    inputs = spec.tasks["pick"].inputs
    assert [(e.producer, e.line) for e in inputs.values()] == [
        ("for-loop-2/iteration-0/train.model", 13), ("for-loop-2/iteration-1/train.model", 14)]


def test_anchors_and_merge_keys_work():
    spec = expectations_spec.parse_lineage_spec(
        "pipeline: p\ntasks:\n  a: &container\n    type: system.ContainerExecution\n    state: COMPLETE\n"
        "  b:\n    <<: *container\n    state: FAILED\n"
    )
    assert (spec.tasks["b"].execution_type, spec.tasks["b"].states, spec.tasks["b"].line) == (
        "system.ContainerExecution", ("FAILED",), 6
    )


def test_aliases_that_expand_beyond_reason_are_refused():
    # A "billion laughs": 9 levels of 10 aliases each would have the line walk visit 10**9 paths.
    levels = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"&a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]" for level in range(1, 10)]
    text = "pipeline: p\nlaughs:\n" + "".join(f"  - {level}\n" for level in levels)
    with pytest.raises(expectations_spec.LineageSpecError) as raised:
        expectations_spec.parse_lineage_spec(text, source="laughs.lineage.yaml")
    assert str(raised.value) == (
        "laughs.lineage.yaml:1: its YAML aliases expand to more than 1,000,000 values; write the repeated parts out"
    )


def test_a_spec_nested_thousands_deep_is_refused():
    with pytest.raises(expectations_spec.LineageSpecError) as raised:
        expectations_spec.parse_lineage_spec("pipeline: p\nx: " + "[" * 5000 + "]" * 5000 + "\n", source="deep.yaml")
    assert str(raised.value) == (
        "deep.yaml: nested too deeply to be a lineage spec; a spec is a few levels of tasks and events"
    )


def test_dump_reads_back_to_the_same_spec():
    spec = expectations_spec.parse_lineage_spec(broken_pipelines.GOOD_SPEC)
    many = dataclasses.replace(spec.tasks["fit"].outputs["model"], metadata=tuple(f"key_{i}" for i in range(30)),
                               count=2)
    spec.tasks["fit"].outputs["model"] = many
    text = expectations_spec.dump_lineage_spec(spec, header=["a header"])
    assert text.startswith("# a header\nversion: 1\npipeline: mini\ntasks:\n  make-data:\n")
    assert max(len(line) for line in text.splitlines()) <= 110
    again = expectations_spec.parse_lineage_spec(text)

    def without_lines(s):
        return {p: (t.execution_type, t.states, t.allow_extra_events,
                    {k: dataclasses.replace(e, line=0) for k, e in {**t.inputs, **t.outputs}.items()})
                for p, t in s.tasks.items()}

    assert without_lines(again) == without_lines(spec)


@pytest.mark.parametrize(
    "text, message",
    [
        ("pipeline: mini\ntasks: {train: [\n",
         "x.lineage.yaml:3: not valid YAML: expected the node content, but found '<stream end>'; fix the syntax"),
        ("", "x.lineage.yaml:1: the document: expected a mapping, got nothing; "
             "a lineage spec is a mapping with pipeline: and tasks:"),
        ("- a\n", "x.lineage.yaml:1: the document: expected a mapping, got a list; "
                  "a lineage spec is a mapping with pipeline: and tasks:"),
        ("tasks:\n  train: {type: system.ContainerExecution, state: COMPLETE}\n",
         "x.lineage.yaml:1: the document: missing field 'pipeline'; add it, e.g. pipeline: training"),
        ("pipeline: mini\ntasks:\n  train:\n    type: system.ContainerExecution\n",
         "x.lineage.yaml:3: tasks.train: missing field 'state'; add it, e.g. state: COMPLETE"),
        (TASK + "    output:\n      model: {type: system.Model}\n",
         "x.lineage.yaml:6: tasks.train.output: unknown field 'output'; did you mean 'outputs'?"),
        (TASK.replace("state: COMPLETE", "state: COMPLETED"),
         "x.lineage.yaml:5: tasks.train.state: 'COMPLETED' is not allowed; "
         "use one of COMPLETE, FAILED, CANCELED, CACHED, RUNNING, NEW, or a list of them"),
        (TASK.replace("system.ContainerExecution", "container"),
         "x.lineage.yaml:4: tasks.train.type: 'container' is not allowed; use system.ContainerExecution (a component), "
         "system.DAGExecution (a sub-pipeline or condition group) or system.ImporterExecution (dsl.importer)"),
        (TASK + "    inputs:\n      data: {type: system.Dataset, from: ingest}\n",
         "x.lineage.yaml:7: tasks.train.inputs.data.from: 'ingest' is not valid; "
         "write the producing task's path and output key, e.g. from: ingest.train"),
        (TASK + "    outputs:\n      model: {type: Model}\n",
         "x.lineage.yaml:7: tasks.train.outputs.model.type: 'Model' is not valid; "
         "write a schema title such as system.Dataset, system.Model or google.VertexModel"),
        (TASK + "    outputs:\n      model: system.Model\n",
         "x.lineage.yaml:7: tasks.train.outputs.model: expected a mapping, got the string 'system.Model'; "
         "an output event is a mapping such as {type: system.Model, metadata: [sha256]}"),
        (TASK + "    outputs:\n      model: {type: system.Model, metadata: sha256}\n",
         "x.lineage.yaml:7: tasks.train.outputs.model.metadata: expected a list, got the string 'sha256'; "
         "write a list of metadata keys, e.g. metadata: [rows, sha256]"),
        (TASK + "    outputs:\n      model: {type: system.Model, count: 0}\n",
         "x.lineage.yaml:7: tasks.train.outputs.model.count: 0 is not allowed; "
         "write a whole number of at least 1, or leave it out for 1"),
        (TASK.replace("  train:", "  Train_Model:"),
         "x.lineage.yaml:3: tasks.Train_Model: 'Train_Model' is not a task path; a task path is task names joined "
         "by '/', in lower case, digits and '-', e.g. condition-1/condition-branches-2/condition-3/deploy-local"),
        (TASK + "  train:\n    type: system.ContainerExecution\n    state: FAILED\n",
         "x.lineage.yaml:6: tasks.train: duplicate key (first on line 3); merge the two entries into one"),
        ("pipeline: mini\ntasks:\n  for-loop-2/iteration-0/train: {type: system.ContainerExecution, state: COMPLETE}\n"
         "  for-loop-2[0]/train: {type: system.ContainerExecution, state: FAILED}\n",
         "x.lineage.yaml:4: tasks.for-loop-2[0]/train: the same task as for-loop-2/iteration-0/train (line 3); "
         "merge the two entries into one"),
        (TASK.replace("  train:", "  for-loop-2[x]/train:"),
         "x.lineage.yaml:3: tasks.for-loop-2[x]/train: 'for-loop-2[x]/train' is not a task path; a task path is task "
         "names joined by '/', in lower case, digits and '-', e.g. condition-1/condition-branches-2/condition-3/"
         "deploy-local"),
        ("pipeline: mini\ntasks:\n  1: {type: system.ContainerExecution, state: COMPLETE}\n",
         'x.lineage.yaml:3: tasks.1: a key must be a string; quote it: "1"'),
        ("pipeline: mini\ntasks: {}\n",
         "x.lineage.yaml:2: tasks: is empty; list at least one task, "
         "e.g. tasks: {train: {type: system.ContainerExecution, state: COMPLETE}}"),
        ("version: 2\n" + TASK, "x.lineage.yaml:1: version: 2 is not allowed; write version: 1 or leave it out"),
        ("allow_extra_tasks: yes please\n" + TASK,
         "x.lineage.yaml:1: allow_extra_tasks: expected true or false, got the string 'yes please'; write true or false"),
        ("pipeline: mini\ntasks:\n  train:\n    type: nope\n    state: NOPE\n",
         "x.lineage.yaml:4: tasks.train.type: 'nope' is not allowed; use system.ContainerExecution (a component), "
         "system.DAGExecution (a sub-pipeline or condition group) or system.ImporterExecution (dsl.importer) "
         "(1 more problem after this one)"),
    ],
)
def test_a_bad_spec_is_one_line_naming_line_field_and_fix(text, message):
    with pytest.raises(expectations_spec.LineageSpecError) as raised:
        expectations_spec.parse_lineage_spec(text, source="x.lineage.yaml")
    assert str(raised.value) == message
    assert "\n" not in str(raised.value)
    assert isinstance(raised.value, errors.InvalidInputError) and raised.value.exit_code == 2


def test_a_missing_file_says_how_to_get_one(tmp_path):
    with pytest.raises(expectations_spec.LineageSpecError) as raised:
        expectations_spec.load_lineage_spec(tmp_path / "nope.lineage.yaml")
    assert str(raised.value) == (
        f"lineage spec {tmp_path}/nope.lineage.yaml does not exist: pass a specs/<pipeline>.lineage.yaml file "
        "(`kfp-lineage expect RUN_ID` writes one to start from)"
    )
