"""verify: re-hashing recorded artifacts on a real SQLite store. Files and directories that match, were changed or
are gone; remote URIs and artifacts without a recorded digest are reported, never counted as drift; which
artifacts a run id, `latest` or an artifact reference names."""

import hashlib
import os

import pytest

from kfp_lineage import errors
from kfp_lineage.lineage import verify
from kfp_lineage.mlmd import vocabulary
from tests.lineage_stores import training_run


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def directory_digest(files: dict) -> str:
    """The documented directory digest: sha256 over `<relative path>\\0<sha256 of the file>\\n`, sorted by path."""
    return sha256("".join(f"{path}\0{sha256(data)}\n" for path, data in sorted(files.items())).encode())


def write_files(root, files: dict) -> None:
    for path, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
        with open(os.path.join(root, path), "wb") as f:
            f.write(data)


@pytest.fixture
def recorded(builder, tmp_path):
    """A run whose task wrote: a file, a file that is then changed, one that is then deleted, a directory, a
    remote artifact, and a local one recorded without a digest (as the KFP backend records them)."""
    files = {name: tmp_path / name for name in ("kept.csv", "changed.csv", "deleted.csv")}
    for name, path in files.items():
        path.write_bytes(f"rows of {name}\n".encode())
    tree = {"a.txt": b"alpha", "sub/b.txt": b"beta"}
    write_files(tmp_path / "model", tree)
    (tmp_path / "unrecorded.csv").write_bytes(b"x\n")
    ids = {name: builder.artifact("system.Dataset", str(path), {vocabulary.CONTENT_DIGEST: sha256(path.read_bytes())})
           for name, path in files.items()}
    ids["model"] = builder.artifact("system.Model", str(tmp_path / "model"),
                                    {vocabulary.CONTENT_DIGEST: directory_digest(tree)})
    ids["remote"] = builder.artifact("system.Dataset", "gs://bucket/data.csv", {vocabulary.CONTENT_DIGEST: "0" * 64})
    ids["unrecorded"] = builder.artifact("system.Dataset", str(tmp_path / "unrecorded.csv"))
    run = builder.run("r1")
    run.task("make", outputs={name: artifact_id for name, artifact_id in ids.items()})
    return ids


def test_matching_changed_and_missing_files_and_directories(store, recorded, tmp_path):
    (tmp_path / "changed.csv").write_bytes(b"rows of changed.csv\ntampered\n")
    os.remove(tmp_path / "deleted.csv")

    checks = {c.artifact_id: c for c in verify.verify_artifacts(verify.artifacts_to_verify(store, "r1"))}

    assert set(checks) == set(recorded.values())
    kept, changed, deleted, model = (checks[recorded[n]] for n in ("kept.csv", "changed.csv", "deleted.csv", "model"))
    assert (kept.status, kept.actual, kept.drifted) == (verify.OK, kept.recorded, False)
    assert kept.recorded == sha256(b"rows of kept.csv\n")
    assert (changed.status, changed.recorded, changed.actual, changed.drifted) == (
        verify.CHANGED, sha256(b"rows of changed.csv\n"), sha256(b"rows of changed.csv\ntampered\n"), True)
    assert (deleted.status, deleted.actual, deleted.drifted) == (verify.MISSING, "", True)
    assert (model.status, model.uri) == (verify.OK, str(tmp_path / "model"))
    assert deleted.to_json() == {"artifact_id": recorded["deleted.csv"], "uri": str(tmp_path / "deleted.csv"),
                                 "status": "missing", "recorded": sha256(b"rows of deleted.csv\n"), "actual": ""}


@pytest.mark.parametrize("tamper", ["add a file", "rename a file", "change a file", "remove the directory"])
def test_a_directory_artifact_drifts_when_any_file_in_it_changes(store, recorded, tmp_path, tamper):
    root = tmp_path / "model"
    if tamper == "add a file":
        (root / "sub" / "c.txt").write_bytes(b"")
    elif tamper == "rename a file":
        os.rename(root / "a.txt", root / "a2.txt")
    elif tamper == "change a file":
        (root / "sub" / "b.txt").write_bytes(b"BETA")
    else:
        for path in (root / "a.txt", root / "sub" / "b.txt"):
            os.remove(path)
        os.rmdir(root / "sub")
        os.rmdir(root)
    [check] = verify.verify_artifacts(store.get_artifacts_by_id([recorded["model"]]))
    assert check.status == (verify.MISSING if tamper == "remove the directory" else verify.CHANGED)
    assert check.drifted and check.recorded == directory_digest({"a.txt": b"alpha", "sub/b.txt": b"beta"})


def test_remote_uris_are_skipped_and_artifacts_without_a_digest_are_reported(store, recorded):
    remote, unrecorded = store.get_artifacts_by_id([recorded["remote"], recorded["unrecorded"]])
    checks = verify.verify_artifacts([remote, unrecorded])
    assert [(c.artifact_id, c.status, c.recorded, c.actual, c.drifted) for c in checks] == [
        (recorded["remote"], verify.REMOTE, "", "", False),  # its recorded digest is not compared with anything
        (recorded["unrecorded"], verify.UNRECORDED, "", "", False),
    ]


def test_a_reference_names_a_run_the_latest_run_or_one_artifact(builder, store, recorded, tmp_path):
    source = builder.artifact("system.Dataset", "bq://project.data.events", name="source")
    later = training_run(builder, "r2", source)
    produced = sorted(later.outputs.values())

    assert sorted(a.id for a in verify.artifacts_to_verify(store, "r2")) == produced  # not its input `source`
    assert sorted(a.id for a in verify.artifacts_to_verify(store, "latest")) == produced
    assert [a.id for a in verify.artifacts_to_verify(store, str(recorded["kept.csv"]))] == [recorded["kept.csv"]]
    assert [a.id for a in verify.artifacts_to_verify(store, "r1/make/model")] == [recorded["model"]]
    assert [a.id for a in verify.artifacts_to_verify(store, str(tmp_path / "model"))] == [recorded["model"]]


def test_references_that_name_nothing_say_so(builder, store, recorded):
    builder.run("empty").task("add", parameters={"a": 1})
    with pytest.raises(errors.InvalidInputError) as raised:
        verify.artifacts_to_verify(store, "empty")
    assert str(raised.value) == "run empty produced no artifacts"
    with pytest.raises(errors.InvalidInputError) as raised:
        verify.artifacts_to_verify(store, "r1/make/nope")
    assert str(raised.value) == ("task 'make' of run r1 recorded no output 'nope': `kfp-lineage show r1` lists its "
                                 "outputs")
