"""Task caching as the KFP backend does it: the fingerprint of a task, and whether a cached result is usable.

The cache index itself lives in MLMD (recorder.Recorder.cache_index); this module decides, it does not store.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

from kfp.pipeline_spec import pipeline_spec_pb2

from kfp_lineage.engine.exec import handler
from kfp_lineage import redaction
from kfp_lineage.ir import spec as spec_module
from kfp_lineage.ir import dataflow


def fingerprint(
    component: pipeline_spec_pb2.ComponentSpec,
    container: handler.ContainerSpec,
    parameters: Mapping[str, Any],
    artifacts: Mapping[str, Sequence[dataflow.InputArtifact]],
    cache_key: str = "",
    component_name: str = "",
    environment: Optional[Mapping[str, Any]] = None,
) -> str:
    """sha256 hex of what determines a task's result, as the backend's cache key holds it.

    Covers: input artifact ids by input name, input parameter values (the real ones, secrets included, as on the
    backend: redaction is for what is written and shown), output artifact specs (name, type, no URI), output
    parameter types, and the container image with command and args before placeholders are resolved.
    `environment` (handler.TaskEnvironment.identity(): an isolated environment's digest, Python and installed
    versions) is added when the task runs in one, so a task run in another environment, or after a package was
    upgraded, is a miss; a task in the runner's environment keeps the backend's key.
    A task's custom `cache_key` (set_caching_options(cache_key=...)) replaces all of that; as KFP's driver/cache.go
    (after 2.17.0) does, the component's name is mixed in, so two components given the same key never share a result.
    """
    if cache_key:
        return hashlib.sha256(f"{component_name}\0{cache_key}".encode()).hexdigest()
    key = {
        "inputArtifactIds": {name: [a.artifact_id for a in arts] for name, arts in sorted(artifacts.items())},
        # whole numbers as ints: a value read back from MLMD (a double) must give the same key as the original
        "inputParameterValues": dataflow.whole_numbers_as_ints(dict(sorted(parameters.items()))),
        "outputArtifactsSpec": {
            name: {"schemaTitle": d.artifact_type.schema_title, "schemaVersion": d.artifact_type.schema_version}
            for name, d in sorted(component.output_definitions.artifacts.items())
        },
        "outputParametersSpec": {
            name: spec_module.type_name(d.parameter_type)
            for name, d in sorted(component.output_definitions.parameters.items())
        },
        "containerSpec": {"image": container.image, "cmdArgs": list(container.command) + list(container.args)},
    }
    if environment is not None:
        key["environment"] = dict(environment)
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def missing_outputs(artifacts: Iterable[Tuple[str, bool]]) -> List[str]:
    """The local artifact paths that existed when recorded and no longer do; a cached result with any is not used.

    `artifacts` are (uri, had_content) pairs: had_content is whether the artifact got a content digest at publish,
    i.e. whether the task wrote a file or directory there. A metrics artifact filled by log_metric alone never had
    a file, and is not "deleted". This is where we differ from the backend (KFP #7939 reuses results whose files were
    deleted). URIs with a scheme (gs://, https://...) name remote objects we cannot check cheaply and are trusted.
    """
    return [uri for uri, had_content in artifacts if had_content and "://" not in uri and not os.path.exists(uri)]


def redacted_outputs(outputs: Mapping[str, Any]) -> List[str]:
    """The output parameters whose recorded value was redacted (a secret-named output, a credential-shaped value):
    the store does not hold what the task produced, so such a result cannot be served from the cache."""
    return sorted(name for name, value in outputs.items() if redaction.contains_redacted(value))
