"""Re-hashing recorded artifacts to find drift: `kfp-lineage verify ARTIFACT|RUN`."""

from __future__ import annotations

import dataclasses
from typing import List

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage import digests, errors
from kfp_lineage.lineage import references
from kfp_lineage.mlmd import vocabulary

OK, CHANGED, MISSING, UNRECORDED, REMOTE = "ok", "changed", "missing", "no digest recorded", "remote (not checked)"


@dataclasses.dataclass(frozen=True)
class Check:
    """One artifact's verification."""

    artifact_id: int
    uri: str
    status: str
    recorded: str = ""
    actual: str = ""

    @property
    def drifted(self) -> bool:
        return self.status in (CHANGED, MISSING)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def verify_artifacts(artifacts: List[mlmd_pb.Artifact]) -> List[Check]:
    """Re-hashes each local artifact and compares with the digest recorded at publish."""
    checks = []
    for artifact in artifacts:
        recorded = artifact.custom_properties.get(vocabulary.CONTENT_DIGEST)
        if "://" in artifact.uri:
            checks.append(Check(artifact.id, artifact.uri, REMOTE))
            continue
        if recorded is None:
            checks.append(Check(artifact.id, artifact.uri, UNRECORDED))
            continue
        actual = digests.path_sha256(artifact.uri)
        status = MISSING if actual is None else OK if actual == recorded.string_value else CHANGED
        checks.append(Check(artifact.id, artifact.uri, status, recorded.string_value, actual or ""))
    return checks


def artifacts_to_verify(store: metadata_store.MetadataStore, reference: str) -> List[mlmd_pb.Artifact]:
    """The artifacts a reference names: a run id (every artifact its tasks produced) or one artifact.

    Raises:
        InvalidInputError: nothing matches.
    """
    run = store.get_context_by_type_and_name(vocabulary.RUN_CONTEXT_TYPE, reference)
    if run is None and reference == references.LATEST:
        run = references.latest_run(store)
    if run is None:
        return [references.find_artifact(store, reference)]
    executions = store.get_executions_by_context(run.id)
    events = store.get_events_by_execution_ids([e.id for e in executions]) if executions else []
    produced = sorted({e.artifact_id for e in events if e.type == mlmd_pb.Event.OUTPUT})
    if not produced:
        raise errors.InvalidInputError(f"run {reference} produced no artifacts")
    return store.get_artifacts_by_id(produced)
