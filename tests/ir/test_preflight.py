"""Pre-run checks of a pipeline spec (kfp_lineage.ir.preflight)."""

import yaml
from google.protobuf import json_format
from kfp import compiler
from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage.ir import preflight
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
