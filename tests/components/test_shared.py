"""The helpers every component shares (_shared) and the pinned task packaging (_packaging)."""

import hashlib
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from component_test_support import REPO_ROOT, assert_one_line
from kfp_lineage_components import _packaging, _shared
from packaging import requirements

try:
    import tomllib
except ImportError:  # Python 3.10; tomli is in both locks there
    import tomli as tomllib


def test_sha256_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 3_000_000)  # more than one read chunk
    assert _shared.sha256_file(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


def test_atomic_output_moves_into_place_only_on_success(tmp_path):
    target = tmp_path / "nested" / "out.csv"
    with _shared.atomic_output(target) as tmp:
        tmp.write_text("ok")
        assert not target.exists()
    assert target.read_text() == "ok"

    with pytest.raises(RuntimeError):
        with _shared.atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "ok"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.csv"]


def test_atomic_outputs_are_all_or_nothing(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    with pytest.raises(RuntimeError):
        with _shared.atomic_outputs([first, second]) as (tmp_a, tmp_b):
            tmp_a.write_text("a")
            raise RuntimeError("second write failed")
    assert list(tmp_path.iterdir()) == []
    with _shared.atomic_outputs([first, second]) as (tmp_a, tmp_b):
        tmp_a.write_text("a")
        tmp_b.write_text("b")
    assert (first.read_text(), second.read_text()) == ("a", "b")


def test_verify_sha256_and_copy_verified(tmp_path):
    source = tmp_path / "model"
    source.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    assert _shared.verify_sha256(source, digest, "model") == digest
    assert _shared.copy_verified(source, tmp_path / "copy" / "model.joblib", digest, "model") == digest

    with pytest.raises(ValueError) as excinfo:
        _shared.verify_sha256(source, "0" * 64, "model")
    assert_one_line(excinfo, f"model file {source} has sha256 {digest[:12]}..., not the recorded 000000000000...")
    with pytest.raises(ValueError) as excinfo:
        _shared.verify_sha256(source, None, "model")
    assert_one_line(excinfo, "model has no sha256 in its metadata")
    with pytest.raises(FileNotFoundError) as excinfo:
        _shared.verify_sha256(tmp_path / "gone", digest, "model")
    assert_one_line(excinfo, "is missing")


def test_resolve_local_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _shared.resolve_local_path("data/x.csv") == tmp_path / "data" / "x.csv"
    assert _shared.resolve_local_path("data/x.csv", cwd="/srv") == Path("/srv/data/x.csv")
    assert _shared.resolve_local_path("file:///abs/x.csv") == Path("/abs/x.csv")
    assert _shared.resolve_local_path("/abs/x.csv") == Path("/abs/x.csv")


def test_require_columns_message():
    with pytest.raises(ValueError) as excinfo:
        _shared.require_columns([f"c{i}" for i in range(12)], ["label"], "label_column", "train_data")
    assert_one_line(
        excinfo,
        "label_column 'label' not found in train_data (columns: c0, c1, c2, c3, c4, c5, c6, c7, ... (12 in all))",
    )


@pytest.mark.parametrize(
    "explicit, environ, expected",
    [
        ("carol", {"KFP_LINEAGE_DEPLOYED_BY": "ci-bot"}, "carol"),
        ("", {"KFP_LINEAGE_DEPLOYED_BY": "ci-bot", "BUILD_URL": "https://jenkins/job/1/"}, "ci-bot"),
        ("", {"BUILD_URL": "https://jenkins/job/1/", "CI_JOB_URL": "https://gitlab/j/2"}, "https://jenkins/job/1/"),
        (
            "",
            {
                "GITHUB_SERVER_URL": "https://github.com/",
                "GITHUB_REPOSITORY": "o/r",
                "GITHUB_RUN_ID": "9",
                "CI_JOB_URL": "x",
            },
            "https://github.com/o/r/actions/runs/9",
        ),
        (
            "",
            {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r", "CI_JOB_URL": "https://gitlab/j/2"},
            "https://gitlab/j/2",
        ),
    ],
    ids=["explicit", "env-override", "jenkins", "github", "gitlab-when-github-incomplete"],
)
def test_resolve_deployed_by_precedence(explicit, environ, expected):
    assert _shared.resolve_deployed_by(explicit, environ) == expected


def test_resolve_deployed_by_falls_back_to_user_at_host():
    resolved = _shared.resolve_deployed_by("", {})
    user, _, host = resolved.partition("@")
    assert user and host == socket.gethostname()


def test_resolved_placeholder():
    assert _shared.resolved_placeholder("{{$.pipeline_job_name}}") == ""
    assert _shared.resolved_placeholder(" training-123 ") == "training-123"


def test_json_ready_converts_numpy_and_non_finite_values():
    value = {
        "a": np.int64(3),
        "b": np.float32(0.5),
        "c": [np.bool_(True), float("nan")],
        4: np.array([1, 2]),
        "d": Path("/x"),
    }
    assert _shared.json_ready(value) == {"a": 3, "b": 0.5, "c": [True, None], "4": [1, 2], "d": "/x"}
    assert type(_shared.json_ready(np.int64(3))) is int


def test_utc_now_iso():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", _shared.utc_now_iso())


def test_helper_modules_import_without_kfp_or_google_clients():
    """Task code imports these modules; importing them must not pull kfp or Google client libraries."""
    modules = ", ".join(
        f"kfp_lineage_components.{name}" for name in ("_shared", "_data", "_modeling", "_registry", "_vertex")
    )
    # A *-nspkg.pth file pre-imports the bare google / google.cloud namespaces; only real packages count.
    check = (
        f"import sys, {modules}; print(sorted(m for m in sys.modules"
        " if m.split('.')[0] == 'kfp' or (m.startswith('google.') and m != 'google.cloud')))"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- _packaging ----------------------------------------------------------------------------------


def pins(requirements):
    return dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", r).groups() for r in requirements)


def test_packages_are_pinned_and_agree_with_the_distribution_and_lock():
    assert _packaging.BASE_IMAGE == "python:3.11-slim"
    for requirements in (_packaging.PACKAGES_TO_INSTALL, _packaging.GCS_BIGQUERY_PACKAGES, _packaging.VERTEX_PACKAGES):
        assert all("==" in r for r in requirements), requirements
    assert (
        pins(_packaging.PACKAGES_TO_INSTALL)["kfp"] == "2.13.0"
    )  # KFP skips its own install when any pin starts with "kfp"

    project = tomllib.loads((REPO_ROOT / "components" / "pyproject.toml").read_text())["project"]
    base = pins(_packaging.PACKAGES_TO_INSTALL)
    assert pins([_packaging.COMPONENTS_REQUIREMENT])["kfp-lineage-components"] == project["version"]
    # The default specs install only what PyPI has: the package's own modules travel inside each component.
    every_list = _packaging.PACKAGES_TO_INSTALL + _packaging.GCS_BIGQUERY_PACKAGES + _packaging.VERTEX_PACKAGES
    assert "kfp-lineage-components" not in pins(every_list)
    # The distribution declares ranges; every task pin must lie inside them.
    for name, allowed in ranges(project["dependencies"]).items():
        assert allowed.contains(base[name]), (name, base[name], str(allowed))
    extras = ranges(project["optional-dependencies"]["gcp"])
    for name, version in {**pins(_packaging.GCS_BIGQUERY_PACKAGES), **pins(_packaging.VERTEX_PACKAGES)}.items():
        if name in extras:
            assert extras[name].contains(version), name

    # The task image (python:3.11-slim, kfp 2.13.0) runs the legacy stack: its pins are that lock's on Python 3.11.
    lock = locked_versions(REPO_ROOT / "constraints" / "legacy.txt", {"python_version": "3.11", "sys_platform": "linux"})
    every = {**base, **pins(_packaging.GCS_BIGQUERY_PACKAGES), **pins(_packaging.VERTEX_PACKAGES)}
    for name, version in every.items():
        if name != "kfp-lineage-components":
            assert lock[name.lower()] == version, name


def ranges(declared):
    return {r.name: r.specifier for r in map(requirements.Requirement, declared)}


def locked_versions(path: Path, environment) -> dict:
    """name -> version of the lock's lines that apply in `environment` (a lock pins some packages per Python)."""
    found = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = requirements.Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                [pin] = requirement.specifier
                found[requirement.name.lower().replace("_", "-")] = pin.version
    assert found, f"{path} pins nothing"
    return found
