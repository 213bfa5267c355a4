"""Task caching as the KFP backend does it: the fingerprint of a task, and whether a cached result is usable.

The cache index itself lives in MLMD (recorder.Recorder.cache_index); this module decides, it does not store.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Iterable, Mapping, Optional, Sequence

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
    environment: Optional[Mapping[str, Any]] = None,
) -> str:
    """sha256 hex of what determines a task's result, as the backend's cache key holds it.

    Covers: input artifact ids by input name, input parameter values, output artifact specs (name, type, no URI),
    output parameter types, and the container image with command and args before placeholders are resolved.
    `environment` (handler.TaskEnvironment.identity(): an isolated environment's digest, Python and installed
    versions) is added when the task runs in one, so a task run in another environment, or after a package was
    upgraded, is a miss; a task in the runner's environment keeps the backend's key.
    A task's custom `cache_key` (set_caching_options(cache_key=...)) replaces all of that.
    """
    if cache_key:
        return hashlib.sha256(f"custom-cache-key:{cache_key}".encode()).hexdigest()
    key = {
        "inputArtifactIds": {name: [a.artifact_id for a in arts] for name, arts in sorted(artifacts.items())},
        # whole numbers as ints: a value read back from MLMD (a double) must give the same key as the original
        # secrets redacted: a rotated token must not defeat the cache, nor may its hash sit in the store
        "inputParameterValues": dataflow.whole_numbers_as_ints(
            {name: redaction.redact(name, value) for name, value in sorted(parameters.items())}
        ),
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


def missing_outputs(uris: Iterable[str]) -> list:
    """The local artifact paths among `uris` that no longer exist; a cached result with any is not used.

    This is where we differ from the backend (KFP #7939 reuses results whose files were deleted). URIs with a
    scheme (gs://, https://...) name remote objects we cannot check cheaply and are trusted.
    """
    return [uri for uri in uris if "://" not in uri and not os.path.exists(uri)]
