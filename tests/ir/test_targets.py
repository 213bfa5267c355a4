"""Checks for constructs Kubeflow Pipelines 2.17 or Vertex AI reject, on specs compiled by the real kfp compiler."""

from typing import List

import pytest
from kfp import dsl
from kfp.dsl import Dataset, Input, Model

from kfp_lineage import errors
from kfp_lineage.ir import spec, targets
from tests.conformance import pipelines as conformance

IMAGE = "python:3.11-slim"


@dsl.component(base_image=IMAGE)
def make() -> str:
    return "x"


@dsl.component(base_image=IMAGE)
def combine(left: Input[Dataset], right: Input[Dataset]) -> str:
    return left.uri + right.uri


@dsl.pipeline(name="importers")
def importers(uri: str = "/data/table.csv"):
    local = dsl.importer(artifact_uri=uri, artifact_class=Dataset)
    remote = dsl.importer(artifact_uri="gs://bucket/table.csv", artifact_class=Dataset,
                          metadata={"source": "{{$.inputs.parameters['uri']}}"})
    dsl.importer(artifact_uri="oci://registry/model:1", artifact_class=Model).set_display_name("model")
    combine(left=local.output, right=local.output)
    combine(left=local.output, right=remote.output)


@dsl.pipeline(name="keyed")
def keyed():
    make().set_caching_options(True, cache_key="v1")


def _check(pipeline, target, arguments=None):
    loaded = spec.load_pipeline(pipeline)
    return [str(f) for f in targets.check_target(loaded.spec, target, arguments or {})]


def test_what_kfp_rejects_is_found_with_the_task_and_the_fix():
    found = _check(importers, "kfp", {"uri": "/data/table.csv"})
    assert found == [
        "task 'combine': inputs 'left' and 'right' receive the same artifact (importer.artifact): the KFP driver "
        "cannot record two INPUT events for one artifact and the task fails to start; pass it once",
        "task 'importer': dsl.importer URI '/data/table.csv' is not in an object store: KFP fails it (\"no provider "
        "scheme found\"); import from gs:// or s3://",
        "task 'importer-2': dsl.importer metadata refers to a pipeline parameter: the KFP backend stores the "
        "placeholder text as it is, not the value; put the value in the metadata",
    ]


def test_vertex_has_its_own_rules():
    found = _check(importers, "vertex", {"uri": "gs://bucket/t.csv"})
    assert found == [
        "task 'combine': inputs 'left' and 'right' receive the same artifact (importer.artifact): the KFP driver "
        "cannot record two INPUT events for one artifact and the task fails to start; pass it once",
        "task 'importer-3': dsl.importer URI 'oci://registry/model:1' is not in an object store: Vertex AI cannot "
        "read it; import from gs:// or bq://",
    ]


def test_loops_over_artifacts_and_cache_keys_are_kfp_findings():
    assert _check(conformance.loop_over_artifacts, "kfp") == [
        "task 'for-loop-1': dsl.ParallelFor over artifacts: the KFP backend fails the run with \"ArtifactIterator "
        "is not implemented\"; loop over a list of URIs (parameters) instead"]
    assert _check(conformance.loop_over_artifacts, "vertex") == []
    assert _check(keyed, "kfp") == [
        "task 'make': set_caching_options(cache_key=...) is ignored by the KFP 2.17.0 backend (its cache key is "
        "computed from the inputs); later releases honour it"]


def test_a_clean_pipeline_has_no_findings_and_an_unknown_target_is_refused():
    assert _check(conformance.loop_over_dicts, "kfp") == []
    with pytest.raises(errors.InvalidInputError, match="--target 'argo' is not one of kfp, vertex"):
        _check(keyed, "argo")


def test_run_warns_by_default_and_strict_refuses_before_anything_is_written(tmp_path, capsys):
    from kfp_lineage.engine import progress, run as run_module

    data = tmp_path / "table.csv"
    data.write_text("x\n")
    store = tmp_path / "mlmd.sqlite"
    with pytest.raises(targets.TargetMismatchError) as refused:
        run_module.run_pipeline(importers, {"uri": str(data)}, store=str(store), pipeline_root=str(tmp_path / "r"),
                                strict=True)
    assert str(refused.value).startswith("--target kfp --strict: task 'combine': inputs 'left' and 'right' receive")
    assert str(refused.value).endswith("(and 2 more)")
    assert not store.exists()

    warnings = []

    class Recording(progress.Reporter):
        def warn(self, message: str) -> None:
            warnings.append(message)

    result = run_module.run_pipeline(keyed, {}, store=str(store), pipeline_root=str(tmp_path / "r"),
                                     reporter=Recording())
    assert result.state == "COMPLETE"
    assert warnings == ["on kfp: task 'make': set_caching_options(cache_key=...) is ignored by the KFP 2.17.0 "
                        "backend (its cache key is computed from the inputs); later releases honour it"]


@dsl.container_component
def _count_listed(in_datasets: Input[List[Dataset]]):
    return dsl.ContainerSpec(image="python:3.11", command=["python3", "-c"],
                             args=["import json, sys; print(len(json.loads(sys.argv[1])))", in_datasets])


@dsl.pipeline(name="listed")
def listed():
    with dsl.ParallelFor([1, 2]):
        made = conformance.write(text="x")
    _count_listed(in_datasets=dsl.Collected(made.outputs["data"]))


def test_a_whole_artifact_list_placeholder_is_a_kfp_finding():
    # Resolved locally (command.resolve_placeholders); the KFP launcher leaves it as it is.
    assert _check(listed, "kfp") == [
        "task 'count-listed': {{$.inputs.artifacts['in_datasets']}} (the whole artifact list) is passed as it is by "
        "the KFP 2.17 launcher, which resolves only .uri and .path of the first artifact; read the list in a "
        "Python component (Input[List[Dataset]])"]
    assert _check(listed, "vertex") == []
