"""Pre-run checks of a pipeline spec (kfp_lineage.ir.preflight)."""

import pytest
import yaml
from google.protobuf import json_format
from kfp import compiler, dsl
from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage import errors
from kfp_lineage.ir import preflight
from kfp_lineage.ir import spec
from tests.fixtures import pipelines


def test_sub_dag_shared_by_many_paths_is_checked_once(tmp_path, monkeypatch):
    # 12 layers, each a DAG with two tasks that both run the next layer: 2**12 paths to comp-prepare, 13 DAGs.
    path = tmp_path / "nested.yaml"
    compiler.Compiler().compile(pipelines.nested, str(path))
    document = yaml.safe_load(path.read_text())
    layers = 12
    for layer in range(layers):
        inner = f"comp-layer-{layer + 1}" if layer + 1 < layers else "comp-prepare"
        document["components"][f"comp-layer-{layer}"] = {"dag": {"tasks": {
            name: {"taskInfo": {"name": name}, "componentRef": {"name": inner}} for name in ("left", "right")}}}
    document["root"]["dag"]["tasks"]["layers"] = {"taskInfo": {"name": "layers"},
                                                  "componentRef": {"name": "comp-layer-0"}}
    spec = json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())

    checked_names = []
    original = preflight._check_path_part
    monkeypatch.setattr(preflight, "_check_path_part", lambda value, what: (checked_names.append(value),
                                                                            original(value, what)))

    preflight.check_pipeline(spec)

    # Each task of each distinct DAG once (plus the container tasks' outputs): checking per path, as before,
    # would check the 2**12 copies of comp-prepare's task.
    assert len(checked_names) < 100
    assert checked_names.count("left") == layers


# --- kfp-kubernetes: refused before anything runs, naming the feature and the task ---------------------------------

K8S_PIPELINE = '''from kfp import dsl


@dsl.component
def add(a: int) -> int:
    return a + 1


@dsl.pipeline
def k8s(flag: bool = True):
    first = add(a=1)
    with dsl.If(flag == True):
        second = add(a=first.output)
        # What kfp_kubernetes.use_secret_as_env(second, ...) does to a task:
        second.platform_config["kubernetes"] = {
            "secretAsEnv": [{"secretName": "db", "keyToEnv": [{"secretKey": "password", "envVar": "PW"}]}]}
'''


def test_kubernetes_features_are_refused_naming_the_feature_and_the_task(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "k8s.py").write_text(K8S_PIPELINE)
    with pytest.raises(errors.UnsupportedFeatureError) as raised:
        spec.load_pipeline("k8s.py")
    assert str(raised.value) == (
        "k8s.py uses platform-specific features (kubernetes secretAsEnv in task 'condition-1/add-2') from "
        "kfp-kubernetes, which are not supported locally: run it on a cluster, or drop them")


def test_every_kubernetes_feature_and_task_is_named_in_a_compiled_spec(tmp_path):
    path = tmp_path / "k8s.yaml"
    compiler.Compiler().compile(pipelines.nested, str(path))  # tasks prepare/make-dataset, consume/count-rows
    platform = {"platforms": {"kubernetes": {
        "deploymentSpec": {"executors": {
            "exec-count-rows": {"pvcMount": [{"constant": "data", "mountPath": "/data"}], "nodeSelector": {}},
            "exec-unused": {"imagePullSecret": [{"secretName": "registry"}]},
        }},
        "pipelineConfig": {"workspace": {"size": "1Gi"}},
    }}}
    path.write_text(path.read_text() + "---\n" + yaml.safe_dump(platform))
    with pytest.raises(errors.UnsupportedFeatureError) as raised:
        spec.load_pipeline(str(path))
    assert str(raised.value) == (
        f"{path} uses platform-specific features (kubernetes nodeSelector in task 'consume/count-rows'; kubernetes "
        "pvcMount in task 'consume/count-rows'; kubernetes imagePullSecret in executor 'exec-unused'; kubernetes "
        "pipelineConfig for the whole pipeline) from kfp-kubernetes, which are not supported locally: run it on a "
        "cluster, or drop them")


# --- specs whose tasks cannot run here: refused before anything is written, in one line ------------------------------

def _compiled(tmp_path, pipeline_func) -> pipeline_spec_pb2.PipelineSpec:
    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(pipeline_func, str(path))
    return spec.load_pipeline(str(path)).spec


def _with_container(tmp_path, **container) -> pipeline_spec_pb2.PipelineSpec:
    """The linear fixture with make-dataset's container replaced by `container`."""
    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(pipelines.linear, str(path))
    document = yaml.safe_load(path.read_text())
    document["deploymentSpec"]["executors"]["exec-make-dataset"]["container"] = container
    return json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())


@dsl.component
def _exit_comp(status: dsl.PipelineTaskFinalStatus):
    print(status)


def test_a_task_final_status_outside_an_exit_handler_is_refused(tmp_path):
    # KFP's component_with_task_final_status_GH-12033.yaml: a component compiled alone, its status a root input that
    # nothing can fill (the API server refuses a value for it); its task crashed on None.
    with pytest.raises(errors.UnsupportedFeatureError) as raised:
        preflight.check_pipeline(_compiled(tmp_path, _exit_comp))
    assert str(raised.value) == (
        "pipeline input 'status' is a dsl.PipelineTaskFinalStatus, which only the exit task of a dsl.ExitHandler "
        "receives: this spec is a component compiled alone; use it as the exit task of a pipeline's dsl.ExitHandler")


def test_a_container_without_a_command_is_refused(tmp_path):
    # KFP's pipeline_with_volume_long_name.yaml: kfp-kubernetes' CreatePVC is an image with no command.
    with pytest.raises(errors.UnsupportedFeatureError) as raised:
        preflight.check_pipeline(_with_container(tmp_path, image="argostub/createpvc"))
    assert str(raised.value) == (
        "task 'make-dataset' has no command: it runs its image's entrypoint ('argostub/createpvc'), which is not on "
        "this machine: give the container a command, or run the pipeline on a cluster")


def _containerized(tmp_path):
    return _with_container(tmp_path, image="gcr.io/my-project/my-component:v1",
                           command=["python3", "-m", "kfp.dsl.executor_main"],
                           args=["--executor_input", "{{$}}", "--function_to_execute", "concat_message"])


def test_a_containerized_python_component_is_refused(tmp_path):
    # KFP's containerized_python_component.yaml: `kfp component build` put the code in the image, not the spec.
    with pytest.raises(errors.UnsupportedFeatureError) as raised:
        preflight.check_pipeline(_containerized(tmp_path))
    assert str(raised.value) == (
        "task 'make-dataset' is a containerized Python component: its code is in image "
        "'gcr.io/my-project/my-component:v1', not in the spec: run it from the directory the image is built from "
        "(--image-source gcr.io/my-project/my-component:v1=DIR), run the pipeline on a cluster, or compile the "
        "component as a lightweight one (@dsl.component without target_image)")


def test_a_containerized_python_component_whose_image_has_a_source_directory_passes(tmp_path):
    assert preflight.check_pipeline(_containerized(tmp_path),
                                    images_with_source={"gcr.io/my-project/my-component:v1"}) == []


def test_a_script_file_of_the_image_is_refused(tmp_path):
    # KFP's container_with_artifact_output.yaml runs `sh run.sh`: sh is here, run.sh only in the image.
    with pytest.raises(errors.UnsupportedFeatureError) as raised:
        preflight.check_pipeline(_with_container(tmp_path, image="gcr.io/my-image", command=["sh", "run.sh"]),
                                 cwd=str(tmp_path))
    assert str(raised.value) == (
        "task 'make-dataset' runs 'sh run.sh', and run.sh is a file of image 'gcr.io/my-image', not on this "
        f"machine (looked in {tmp_path}): run the pipeline on a cluster, or from a directory that has it")
    (tmp_path / "run.sh").write_text("echo hi\n")
    preflight.check_pipeline(_with_container(tmp_path, image="gcr.io/my-image", command=["sh", "run.sh"]),
                             cwd=str(tmp_path))


@pytest.mark.parametrize("where", ["dependentTasks", "producerTask"])
def test_a_dependency_on_a_task_the_dag_does_not_have_is_refused(tmp_path, where):
    # Such a task would never start: the run ended FAILED without saying why.
    path = tmp_path / "p.yaml"
    compiler.Compiler().compile(pipelines.resource_from_output, str(path))
    document = yaml.safe_load(path.read_text())
    task = document["root"]["dag"]["tasks"]["sum-numbers"]
    if where == "dependentTasks":
        task["dependentTasks"] = ["nope"]
    else:
        task["inputs"]["parameters"]["pipelinechannel--memory-limit-Output"]["taskOutputParameter"]["producerTask"] = \
            "nope"
    with pytest.raises(errors.InvalidInputError) as raised:
        preflight.check_pipeline(json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec()))
    assert str(raised.value) == (
        "task 'sum-numbers' depends on task 'nope', which its DAG does not have: recompile the pipeline")
