"""What the cluster would reject: constructs a local run accepts but Kubeflow Pipelines (2.17) or Vertex AI
Pipelines refuses or runs differently, found in the compiled spec before a run starts.

`kfp-lineage run --target kfp|vertex` reports them as warnings (`--strict`: as errors), so a pipeline that passes
locally also passes where it will run. Each finding names the task, what the target does, and the fix.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Dict, Iterator, List, Mapping, Tuple

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage import errors

TARGETS = ("kfp", "vertex")
DEFAULT_TARGET = "kfp"

# Object-store schemes the KFP backend's importer accepts (objectstore.ParseProviderFromPath); oci:// is accepted
# for system.Model only. Vertex AI imports Cloud Storage (and BigQuery / Vertex resource URIs for google.* types).
_KFP_IMPORT_SCHEMES = ("gs://", "s3://", "minio://", "mem://")
_VERTEX_IMPORT_SCHEMES = ("gs://", "bq://", "https://", "aiplatform://")
_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.parameters\[")
_ARTIFACT_LIST_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.artifacts\['([^']*)'\]\}\}")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One construct the target would reject or run differently."""

    task: str
    message: str

    def __str__(self) -> str:
        return f"task {self.task!r}: {self.message}"


class TargetMismatchError(errors.InvalidInputError):
    """--strict: the pipeline uses a construct its target rejects; nothing was run or written."""


def check_target(pipeline_spec: pipeline_spec_pb2.PipelineSpec, target: str,
                 arguments: Mapping[str, Any]) -> List[Finding]:
    """Finds what `target` would reject in this pipeline, with the run's arguments for importer URIs.

    Args:
        pipeline_spec: the compiled pipeline.
        target: "kfp" (Kubeflow Pipelines 2.17) or "vertex" (Vertex AI Pipelines).
        arguments: the run's validated pipeline arguments.

    Returns:
        The findings, in task order; empty when the pipeline would run there as it runs here.

    Raises:
        InvalidInputError: an unknown target.
    """
    if target not in TARGETS:
        raise errors.InvalidInputError(f"--target {target!r} is not one of {', '.join(TARGETS)}: pass kfp or vertex")
    deployment = json_format.MessageToDict(pipeline_spec.deployment_spec).get("executors", {})
    findings: List[Finding] = []
    for path, task, component, parent_inputs in _tasks(pipeline_spec):
        if task.WhichOneof("iterator") == "artifact_iterator" and target == "kfp":
            findings.append(Finding(path, "dsl.ParallelFor over artifacts: the KFP backend fails the run with "
                                          "\"ArtifactIterator is not implemented\"; loop over a list of URIs "
                                          "(parameters) instead"))
        if target == "kfp" and task.caching_options.cache_key:
            findings.append(Finding(path, "set_caching_options(cache_key=...) is ignored by the KFP 2.17.0 backend "
                                          "(its cache key is computed from the inputs); later releases honour it"))
        findings.extend(_shared_artifact_inputs(path, task))
        executor = deployment.get(component.executor_label, {}) if component.executor_label else {}
        if "importer" in executor:
            findings.extend(_importer_findings(path, executor["importer"], task, target, arguments, parent_inputs))
        container = executor.get("container", {})
        listed = _ARTIFACT_LIST_PLACEHOLDER.search(str(container.get("command", [])) + str(container.get("args", [])))
        if listed and target == "kfp":
            findings.append(Finding(path, f"{listed.group(0)} (the whole artifact list) is passed as it is by the KFP "
                                          "2.17 launcher, which resolves only .uri and .path of the first artifact; "
                                          "read the list in a Python component (Input[List[Dataset]])"))
    return sorted(findings, key=lambda finding: finding.task)


def _tasks(spec: pipeline_spec_pb2.PipelineSpec) -> Iterator[Tuple[str, Any, Any, bool]]:
    """(path, task, its component, whether its DAG is the root) for every task of every DAG, depth first."""
    def walk(component: Any, where: str, root: bool) -> Iterator[Tuple[str, Any, Any, bool]]:
        for name, task in component.dag.tasks.items():
            path = f"{where}/{name}" if where else name
            child = spec.components[task.component_ref.name]
            yield path, task, child, root
            if child.WhichOneof("implementation") == "dag":
                yield from walk(child, path, False)
    yield from walk(spec.root, "", True)


def _shared_artifact_inputs(path: str, task: Any) -> List[Finding]:
    """One artifact bound to two inputs of a task: the driver writes two INPUT events for it, which ml-metadata's
    unique (artifact, execution, type) key rejects, and the task fails to start on the cluster."""
    sources: Dict[Tuple[str, str], str] = {}
    findings = []
    for input_name, spec in sorted(task.inputs.artifacts.items()):
        if spec.HasField("task_output_artifact"):
            source = ("task", f"{spec.task_output_artifact.producer_task}.{spec.task_output_artifact.output_artifact_key}")
        elif spec.component_input_artifact:
            source = ("input", spec.component_input_artifact)
        else:
            continue
        if source in sources:
            findings.append(Finding(path, f"inputs {sources[source]!r} and {input_name!r} receive the same artifact "
                                          f"({source[1]}): the KFP driver cannot record two INPUT events for one "
                                          "artifact and the task fails to start; pass it once"))
        else:
            sources[source] = input_name
    return findings


def _importer_findings(path: str, importer: Dict[str, Any], task: Any, target: str, arguments: Mapping[str, Any],
                       root_task: bool) -> List[Finding]:
    findings = []
    uri_spec = importer.get("artifactUri", {})
    uri = None
    if "constant" in uri_spec:
        uri = str(uri_spec["constant"])
    elif "runtimeParameter" in uri_spec and root_task:
        bound = task.inputs.parameters.get(uri_spec["runtimeParameter"])
        if bound is not None and bound.component_input_parameter in arguments:
            uri = str(arguments[bound.component_input_parameter])
    if uri is not None:
        schemes = _KFP_IMPORT_SCHEMES if target == "kfp" else _VERTEX_IMPORT_SCHEMES
        model = importer.get("typeSchema", {}).get("schemaTitle") == "system.Model"
        if not uri.startswith(schemes) and not (target == "kfp" and model and uri.startswith("oci://")):
            fails = ("KFP fails it (\"no provider scheme found\")" if target == "kfp"
                     else "Vertex AI cannot read it")
            findings.append(Finding(path, f"dsl.importer URI {uri!r} is not in an object store: {fails}; import "
                                          f"from {' or '.join(schemes[:2])}"))
    if target == "kfp" and _PLACEHOLDER.search(str(importer.get("metadata", {}))):
        findings.append(Finding(path, "dsl.importer metadata refers to a pipeline parameter: the KFP backend stores "
                                      "the placeholder text as it is, not the value; put the value in the metadata"))
    return findings
