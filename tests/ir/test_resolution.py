"""Input resolution on real compiled specs: a task's inputs from its DAG, a DAG's outputs from its children, a
loop's items and collected outputs."""

from typing import List, Optional

import pytest
from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from kfp_lineage import errors
from kfp_lineage.ir import dataflow
from kfp_lineage.ir import resolution
from kfp_lineage.ir import spec
from tests.conformance import pipelines as conformance
from tests.fixtures import pipelines

IMAGE = "python:3.11-slim"


@dsl.component(base_image=IMAGE)
def add(a: int, b: int = 10, label: str = "x") -> int:
    return a + b


@dsl.component(base_image=IMAGE)
def describe(config: dict, items: List[int], ratio: float, flag: bool, data: Optional[Input[Dataset]] = None) -> str:
    return ""


@dsl.component(base_image=IMAGE)
def make(text: str, data: Output[Dataset]):
    pass


@dsl.pipeline(name="inputs")
def inputs(n: int = 1, text: str = "hi", config: dict = {"k": 1}):
    first = add(a=n)
    add(a=first.output, b=5, label=f"sum-{text}-{n}")
    made = make(text=text)
    describe(config=config, items=[1, 2], ratio=0.5, flag=True, data=made.outputs["data"])
    add(a=n, b=first.output).set_display_name("optional-b")


@dsl.pipeline(name="rows")
def rows(rows: List[dict] = [{"city": "a", "n": 1}]):
    with dsl.ParallelFor(rows, parallelism=2) as row:
        add(a=row.n, label=row.city)


@dsl.pipeline(name="placeholders")
def placeholders():
    conformance.job_and_task(job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                             job_resource_name=dsl.PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER,
                             job_uuid=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                             task_name=dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
                             task_uuid=dsl.PIPELINE_TASK_ID_PLACEHOLDER)


@dsl.pipeline
def choose_text(flag: bool) -> str:
    with dsl.If(flag == True):  # noqa: E712 (a KFP condition, not Python)
        first = conformance.echo(text="first")
    with dsl.Else():
        second = conformance.echo(text="second")
    return dsl.OneOf(first.output, second.output)


@dsl.pipeline(name="choices")
def choices(flag: bool = True):
    choose_text(flag=flag)


@dsl.pipeline(name="collect")
def collect(count: int = 3):
    made = conformance.numbers(count=count)
    with dsl.ParallelFor(made.output) as x:
        squared = conformance.square(x=x)
        written = conformance.write(text="t")
    conformance.total(values=dsl.Collected(squared.output))
    conformance.join(datasets=dsl.Collected(written.outputs["data"]))
    with dsl.ParallelFor([1, 2]) as y:
        conformance.square(x=y)


_COMPILED = {}


def _spec(pipeline):
    """The compiled PipelineSpec (compiled once per pipeline for the module)."""
    if pipeline not in _COMPILED:
        _COMPILED[pipeline] = spec.load_pipeline(pipeline).spec
    return _COMPILED[pipeline]


def _task(pipeline, name, dag=None):
    """A task of the root DAG, or of component `dag`, with the component it runs."""
    pipeline_spec = _spec(pipeline)
    parent = pipeline_spec.root if dag is None else pipeline_spec.components[dag]
    task = parent.dag.tasks[name]
    return task, pipeline_spec.components[task.component_ref.name]


def _view(parameters=None, artifacts=None, states=None, outputs=None, final_statuses=None):
    return resolution.DagView(parameters or {}, artifacts or {}, states or {}, outputs or {}, final_statuses or {},
                              run_id="run-1", execution_id=11)


def _artifact(artifact_id, uri=None):
    return dataflow.InputArtifact(artifact_id, "system.Dataset", "0.0.1", uri or f"/root/{artifact_id}", {})


RUN_INPUTS = {"n": 4, "text": "hi", "config": {"k": 1}}


# resolve_task_inputs ------------------------------------------------------------------------------------------------


def test_a_dag_input_is_passed_and_declared_defaults_fill_the_rest():
    task, component = _task(inputs, "add")
    assert resolution.resolve_task_inputs(_view(RUN_INPUTS), task, component) == ({"a": 4, "b": 10, "label": "x"}, {})


def test_a_whole_double_from_the_dag_becomes_the_declared_int():
    task, component = _task(inputs, "add")
    parameters, _ = resolution.resolve_task_inputs(_view({"n": 4.0}), task, component)
    assert parameters["a"] == 4 and isinstance(parameters["a"], int)


def test_a_producer_output_a_constant_and_an_f_string_are_resolved():
    task, component = _task(inputs, "add-2")
    view = _view(RUN_INPUTS, states={"add": "COMPLETE"}, outputs={"add": dataflow.Produced(parameters={"Output": 14})})
    assert resolution.resolve_task_inputs(view, task, component) == (
        {"a": 14, "b": 5, "label": "sum-hi-4", "pipelinechannel--n": 4, "pipelinechannel--text": "hi"}, {})


def test_an_f_string_fills_non_string_values_in_as_json():
    task, component = _task(inputs, "add-2")
    view = _view({"n": 4, "text": "hi"}, outputs={"add": dataflow.Produced(parameters={"Output": 1})})
    parameters, _ = resolution.resolve_task_inputs(view, task, component)
    assert parameters["label"] == "sum-hi-4"
    view = _view({"n": 4, "text": ["a", 1]}, outputs={"add": dataflow.Produced(parameters={"Output": 1})})
    assert resolution.resolve_task_inputs(view, task, component)[0]["label"] == 'sum-["a", 1]-4'


def test_a_value_holding_placeholder_text_is_data_not_a_template():
    task, component = _task(inputs, "add-2")
    text = "{{$.inputs.parameters['pipelinechannel--n']}}"
    view = _view({"n": 4, "text": text}, outputs={"add": dataflow.Produced(parameters={"Output": 1})})
    assert resolution.resolve_task_inputs(view, task, component)[0]["label"] == f"sum-{text}-4"


def test_struct_list_double_and_bool_constants_and_a_producer_artifact():
    task, component = _task(inputs, "describe")
    data = _artifact(7)
    view = _view(RUN_INPUTS, states={"make": "COMPLETE"},
                 outputs={"make": dataflow.Produced(artifacts={"data": [data]})})
    assert resolution.resolve_task_inputs(view, task, component) == (
        {"config": {"k": 1}, "items": [1, 2], "ratio": 0.5, "flag": True}, {"data": [data]})


def test_an_optional_artifact_whose_producer_made_nothing_is_left_out():
    task, component = _task(inputs, "describe")
    view = _view(RUN_INPUTS, states={"make": "CANCELED"})
    assert resolution.resolve_task_inputs(view, task, component)[1] == {}


def test_an_input_with_a_default_whose_producer_made_nothing_takes_the_default():
    task, component = _task(inputs, "add-3")
    assert task.task_info.name == "optional-b"
    view = _view(RUN_INPUTS, states={"add": "CANCELED"})
    assert resolution.resolve_task_inputs(view, task, component) == ({"a": 4, "b": 10, "label": "x"}, {})


@pytest.mark.parametrize("states, reason", [
    ({"add": "CANCELED"}, "its condition was false"),
    ({"add": "FAILED"}, "it is FAILED"),
    ({}, "it is not started"),
])
def test_a_required_input_from_a_producer_that_made_nothing_is_an_error(states, reason):
    task, component = _task(inputs, "add-2")
    with pytest.raises(resolution.TaskInputError) as caught:
        resolution.resolve_task_inputs(_view(RUN_INPUTS, states=states), task, component)
    assert str(caught.value) == f"input 'a' comes from task 'add', which produced nothing ({reason})"


def test_a_producer_without_the_output_is_an_error():
    task, component = _task(inputs, "add-2")
    view = _view(RUN_INPUTS, outputs={"add": dataflow.Produced(parameters={"Other": 1})})
    with pytest.raises(resolution.TaskInputError) as caught:
        resolution.resolve_task_inputs(view, task, component)
    assert str(caught.value) == "input 'a': task 'add' has no output 'Output'"


def test_a_missing_dag_input_is_an_error():
    task, component = _task(inputs, "add")
    with pytest.raises(resolution.TaskInputError) as caught:
        resolution.resolve_task_inputs(_view({"text": "hi"}), task, component)
    assert str(caught.value) == "input 'a': the enclosing DAG has no value for 'n'"


def test_a_value_of_the_wrong_type_is_refused_naming_the_input():
    task, component = _task(inputs, "add")
    with pytest.raises(errors.InvalidInputError, match="^parameter 'a' expects int"):
        resolution.resolve_task_inputs(_view({"n": "four"}), task, component)


def test_selectors_read_fields_of_a_loop_item_given_as_a_dict_or_as_json():
    task, component = _task(rows, "add", dag="comp-for-loop-1")
    assert task.inputs.parameters["a"].parameter_expression_selector == 'parseJson(string_value)["n"]'
    item = "pipelinechannel--rows-loop-item"
    view = _view({item: {"city": "a", "n": 1}})
    assert resolution.resolve_task_inputs(view, task, component) == ({"a": 1, "b": 10, "label": "a"}, {})
    view = _view({item: '{"city": "b", "n": 2.0}'})
    assert resolution.resolve_task_inputs(view, task, component) == ({"a": 2, "b": 10, "label": "b"}, {})


def test_a_selector_on_an_item_without_the_field_is_an_error():
    task, component = _task(rows, "add", dag="comp-for-loop-1")
    with pytest.raises(resolution.TaskInputError) as caught:
        resolution.resolve_task_inputs(_view({"pipelinechannel--rows-loop-item": {"city": "a"}}), task, component)
    assert str(caught.value) == "selector 'parseJson(string_value)[\"n\"]': {'city': 'a'} has no 'n'"


def test_apply_selector_walks_keys_and_indexes():
    assert resolution.apply_selector('parseJson(string_value)["a"][1]["b"]', {"a": [0, {"b": "x"}]}) == "x"
    assert resolution.apply_selector("parseJson(string_value)[0]", "[5, 6]") == 5
    with pytest.raises(resolution.TaskInputError) as caught:
        resolution.apply_selector("string_value", "x")
    assert str(caught.value) == "parameter expression selector 'string_value' is not supported"
    with pytest.raises(resolution.TaskInputError) as caught:
        resolution.apply_selector('parseJson(string_value)["a"]', "not json")
    assert str(caught.value) == "selector 'parseJson(string_value)[\"a\"]' needs a JSON value, got 'not json'"
    with pytest.raises(errors.UnsupportedFeatureError) as caught:
        resolution.check_selector_syntax("string_value.upper()")
    assert str(caught.value) == ("parameter expression selector 'string_value.upper()' is not supported by the "
                                 "local runner")
    resolution.check_selector_syntax('parseJson(string_value)["a"]')


def test_job_and_task_placeholders_become_the_run_the_task_and_the_dag_execution():
    task, component = _task(placeholders, "job-and-task")
    assert resolution.resolve_task_inputs(_view(), task, component) == ({
        "job_name": "run-1", "job_resource_name": "run-1", "job_uuid": "run-1", "task_name": "job-and-task",
        "task_uuid": "11"}, {})


def test_an_exit_handler_gets_the_final_status_of_the_dag_it_guards():
    task, component = _task(conformance.exit_handler, "report-status")
    failed = _view(final_statuses={"exit-handler-1": dataflow.FinalStatus("FAILED", "fail-if: it broke")})
    assert resolution.resolve_task_inputs(failed, task, component) == ({"status": {
        "state": "FAILED", "pipelineJobResourceName": "run-1", "pipelineTaskName": "exit-handler-1",
        "error": {"code": 2, "message": "fail-if: it broke"}}}, {})
    complete = _view(final_statuses={"exit-handler-1": dataflow.FinalStatus("COMPLETE")})
    assert resolution.resolve_task_inputs(complete, task, component)[0]["status"] == {
        "state": "COMPLETE", "pipelineJobResourceName": "run-1", "pipelineTaskName": "exit-handler-1", "error": {}}


def test_the_final_status_of_an_unfinished_task_is_an_error():
    task, component = _task(conformance.exit_handler, "report-status")
    with pytest.raises(resolution.TaskInputError) as caught:
        resolution.resolve_task_inputs(_view(), task, component)
    assert str(caught.value) == "task 'exit-handler-1' has not finished, so its final status is unknown"


# resolve_dag_outputs ------------------------------------------------------------------------------------------------


def test_a_sub_pipeline_returns_its_childs_artifact():
    component = _spec(pipelines.nested).components["comp-prepare"]
    data = _artifact(3)
    outputs = {"make-dataset": dataflow.Produced(artifacts={"data": [data]})}
    produced = resolution.resolve_dag_outputs(component, outputs)
    assert produced == dataflow.Produced(parameters={}, artifacts={"Output": [data]})


def test_an_artifact_output_whose_producer_did_not_run_is_an_empty_list():
    component = _spec(pipelines.nested).components["comp-prepare"]
    assert resolution.resolve_dag_outputs(component, {}) == dataflow.Produced(artifacts={"Output": []})


def test_a_parameter_output_comes_from_its_producer_or_is_left_out():
    component = _spec(pipelines.nested).components["comp-consume"]
    assert resolution.resolve_dag_outputs(
        component, {"count-rows": dataflow.Produced(parameters={"Output": 4})}) == dataflow.Produced({"Output": 4})
    assert resolution.resolve_dag_outputs(component, {}) == dataflow.Produced()


@pytest.mark.parametrize("ran, value", [("condition-2", "first"), ("condition-3", "second")])
def test_one_of_takes_the_parameter_of_the_branch_that_ran(ran, value):
    component = _spec(choices).components["comp-condition-branches-1"]
    key = {"condition-2": "pipelinechannel--echo-Output", "condition-3": "pipelinechannel--echo-2-Output"}[ran]
    produced = resolution.resolve_dag_outputs(component, {ran: dataflow.Produced(parameters={key: value})})
    assert produced == dataflow.Produced(parameters={"pipelinechannel--condition-branches-1-oneof-1": value})


def test_one_of_takes_the_artifact_of_the_branch_that_ran():
    component = _spec(conformance.one_of).components["comp-condition-branches-1"]
    data = _artifact(9)
    produced = resolution.resolve_dag_outputs(
        component, {"condition-2": dataflow.Produced(),
                    "condition-3": dataflow.Produced(artifacts={"pipelinechannel--write-2-data": [data]})})
    assert produced == dataflow.Produced(artifacts={"pipelinechannel--condition-branches-1-oneof-1": [data]})


# Loops --------------------------------------------------------------------------------------------------------------


def test_collect_iterations_lists_each_output_in_iteration_order():
    component = _spec(collect).components["comp-for-loop-1"]
    iterations = [
        dataflow.Produced({"pipelinechannel--square-Output": i * i},
                          {"pipelinechannel--write-data": [_artifact(10 + i)]})
        for i in range(3)
    ]
    assert resolution.collect_iterations(component, iterations) == dataflow.Produced(
        parameters={"pipelinechannel--square-Output": [0, 1, 4]},
        artifacts={"pipelinechannel--write-data": [_artifact(10), _artifact(11), _artifact(12)]},
    )


def test_collect_iterations_skips_iterations_without_the_output():
    component = _spec(collect).components["comp-for-loop-1"]
    iterations = [dataflow.Produced({"pipelinechannel--square-Output": 4}), dataflow.Produced()]
    assert resolution.collect_iterations(component, iterations) == dataflow.Produced(
        parameters={"pipelinechannel--square-Output": [4]}, artifacts={"pipelinechannel--write-data": []})
    assert resolution.collect_iterations(component, []) == dataflow.Produced(
        parameters={"pipelinechannel--square-Output": []}, artifacts={"pipelinechannel--write-data": []})


def test_loop_items_from_raw_constants():
    task, _ = _task(collect, "for-loop-3")
    assert resolution.loop_items(task, {}, {}) == ("pipelinechannel--loop-item-param-2", [1, 2], False)


def test_loop_items_from_a_task_output_as_list_or_json_with_whole_doubles_as_ints():
    task, _ = _task(collect, "for-loop-1")
    items = "pipelinechannel--numbers-Output"
    assert resolution.loop_items(task, {items: [0.0, 1.0, 2.5]}, {}) == (f"{items}-loop-item", [0, 1, 2.5], False)
    assert resolution.loop_items(task, {items: '[{"a": 1.0}]'}, {}) == (f"{items}-loop-item", [{"a": 1}], False)


def test_loop_items_from_artifacts():
    task, _ = _task(conformance.loop_over_artifacts, "for-loop-1")
    datasets = [_artifact(1), _artifact(2)]
    assert resolution.loop_items(task, {}, {"pipelinechannel--make-datasets-Output": datasets}) == (
        "pipelinechannel--make-datasets-Output-loop-item", datasets, True)
    assert resolution.loop_items(task, {}, {}) == ("pipelinechannel--make-datasets-Output-loop-item", [], True)


@pytest.mark.parametrize("value, message", [
    ({"a": 1}, "loop items must be a list, got dict"),
    ('{"a": 1}', "loop items must be a list, got dict"),
    ("not json", "loop items are not a JSON list: 'not json'"),
])
def test_loop_items_that_are_not_a_list_are_an_error(value, message):
    task, _ = _task(collect, "for-loop-1")
    with pytest.raises(resolution.TaskInputError) as caught:
        resolution.loop_items(task, {"pipelinechannel--numbers-Output": value}, {})
    assert str(caught.value) == message


def test_loop_items_without_a_value_are_an_error():
    task, _ = _task(collect, "for-loop-1")
    with pytest.raises(resolution.TaskInputError) as caught:
        resolution.loop_items(task, {}, {})
    assert str(caught.value) == "loop items 'pipelinechannel--numbers-Output' have no value"


@dsl.component(base_image="python:3.11")
def _echo(msg: str) -> str:
    return msg


@dsl.pipeline(name="nested-dict-loops")
def nested_dict_loops(loop_parameter: list = [{"p_a": [{"q_a": "1"}, {"q_a": "2"}], "p_b": "hello"},
                                              {"p_a": [{"q_a": "11"}], "p_b": "halo"}]):
    with dsl.ParallelFor(loop_parameter) as item:
        with dsl.ParallelFor(item.p_a) as item_p_a:
            _echo(msg=item_p_a.q_a)


def test_a_non_string_value_for_a_string_input_is_passed_as_json_text():
    # KFP's pipeline_with_nested_loops.yaml: the compiler declares the inner loop's DAG inputs (an item of dicts,
    # its field p_a, a list) STRING; the backend's driver turns any value into text for a STRING input
    # (metadata.PbValueToText: JSON for a list or struct, 'true', 1.5 without a trailing zero).
    pipeline_spec = _spec(nested_dict_loops)
    loop_1 = pipeline_spec.components["comp-for-loop-1"]
    task = loop_1.dag.tasks["for-loop-2"]
    item = {"p_a": [{"q_a": "1"}, {"q_a": "2"}], "p_b": "hello"}
    parameters, _ = resolution.resolve_task_inputs(
        _view({"pipelinechannel--loop_parameter-loop-item": item}), task, pipeline_spec.components["comp-for-loop-2"])
    assert parameters == {"pipelinechannel--loop_parameter-loop-item-subvar-p_a": '[{"q_a":"1"},{"q_a":"2"}]',
                          "pipelinechannel--loop_parameter-loop-item": '{"p_a":[{"q_a":"1"},{"q_a":"2"}],"p_b":"hello"}'}


def test_loops_over_dict_items_nested_in_each_other_run(tmp_path, sqlite_url):
    from tests.mlmd_view import run_and_view

    result, view = run_and_view(nested_dict_loops, tmp_path, sqlite_url, "nested-dicts")
    assert result.state == "COMPLETE"
    echoed = sorted(task.outputs["Output"]["value"] for key, task in result.tasks.items() if key.endswith("/echo"))
    assert echoed == ["1", "11", "2"]
