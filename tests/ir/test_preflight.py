"""Pre-run checks of a pipeline spec (kfp_lineage.ir.preflight)."""

import pytest
import yaml
from google.protobuf import json_format
from kfp import compiler
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
