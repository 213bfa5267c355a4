"""Helpers shared by every component: hashing, atomic writes, paths, provenance, JSON-safe metadata.

Component bodies import this module at run time (`from kfp_lineage_components import _shared`),
so it must stay importable without kfp. Every error raised here is one line that names the
problem and the fix, because the runner shows only the last line of a failed task's log.
"""

import contextlib
import datetime as _dt
import getpass
import hashlib
import math
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Sequence

_CHUNK = 1 << 20
_PLACEHOLDER = re.compile(r"^\{\{\$\.[^}]*\}\}$")


def sha256_file(path: "os.PathLike[str] | str") -> str:
    """Hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_local_path(uri: str, cwd: Optional[str] = None) -> Path:
    """Turn a local path or file:// URI into an absolute path; relative paths resolve against cwd.

    The runner runs tasks in the user's working directory, so `data/x.csv` means what the user typed.
    """
    raw = uri[len("file://") :] if uri.startswith("file://") else uri
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = Path(cwd or os.getcwd()) / path
    return path


@contextlib.contextmanager
def atomic_output(path: "os.PathLike[str] | str") -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it into place only if the block succeeds.

    A failed task therefore never leaves a half-written file where a valid output is expected.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_outputs(paths: Sequence["os.PathLike[str] | str"]) -> Iterator[List[Path]]:
    """Like `atomic_output` for several files: none is moved into place unless all were written."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(atomic_output(path)) for path in paths]


def verify_sha256(path: "os.PathLike[str] | str", expected: Any, what: str) -> str:
    """Check a file against the digest recorded when it was produced; return the digest.

    Raises FileNotFoundError when the file is gone and ValueError when the digest is missing or differs.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"{what} file {file} is missing: re-run the task that produced it instead of deploying a stale artifact"
        )
    if not isinstance(expected, str) or not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ValueError(
            f"{what} has no sha256 in its metadata:"
            " use an artifact produced by this project's components, which record it"
        )
    actual = sha256_file(file)
    if actual != expected:
        raise ValueError(
            f"{what} file {file} has sha256 {actual[:12]}..., not the recorded {expected[:12]}...:"
            " it changed after it was produced; re-run the pipeline rather than editing artifacts"
        )
    return actual


def copy_verified(
    source: "os.PathLike[str] | str", destination: "os.PathLike[str] | str", expected: Any, what: str
) -> str:
    """Copy a file after checking its recorded sha256, then check the copy too (the source may change mid-copy)."""
    verify_sha256(source, expected, what)
    Path(destination).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
    return verify_sha256(destination, expected, f"{what} copy")


def require_columns(columns: Iterable[str], required: Sequence[str], field: str, where: str) -> None:
    """Raise a one-line ValueError if any of `required` is not among `columns`."""
    present = [str(column) for column in columns]
    missing = [name for name in required if name not in present]
    if missing:
        raise ValueError(
            f"{field} {', '.join(repr(m) for m in missing)} not found in {where}"
            f" (columns: {preview(present)}): set {field} to one of them"
        )


def preview(values: Sequence[Any], limit: int = 8) -> str:
    """Short comma-separated rendering of values for error messages."""
    shown = ", ".join(str(value) for value in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name), for embedding in a one-line error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def utc_now_iso() -> str:
    """Current time as ISO-8601 UTC with a trailing Z, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def resolve_deployed_by(explicit: str = "", environ: Optional[Mapping[str, str]] = None) -> str:
    """Who or what deployed: the explicit value, else KFP_LINEAGE_DEPLOYED_BY, else a CI build URL, else user@host.

    CI URLs are checked in this order: BUILD_URL (Jenkins), the GitHub Actions run URL
    (GITHUB_SERVER_URL/GITHUB_REPOSITORY/actions/runs/GITHUB_RUN_ID), CI_JOB_URL (GitLab).
    """
    env = os.environ if environ is None else environ
    if explicit.strip():
        return explicit.strip()
    for name in ("KFP_LINEAGE_DEPLOYED_BY", "BUILD_URL"):
        if env.get(name, "").strip():
            return env[name].strip()
    github = [env.get(name, "").strip() for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    if all(github):
        server, repository, run_id = github
        return f"{server.rstrip('/')}/{repository}/actions/runs/{run_id}"
    if env.get("CI_JOB_URL", "").strip():
        return env["CI_JOB_URL"].strip()
    return f"{_user_name(env)}@{socket.gethostname()}"


def _user_name(env: Mapping[str, str]) -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # containers often run as a uid with no passwd entry
        return env.get("USER") or env.get("USERNAME") or f"uid{os.getuid()}"


def resolved_placeholder(value: str) -> str:
    """`value`, or "" when it is a KFP runtime placeholder (e.g. {{$.pipeline_job_name}}) nobody substituted."""
    return "" if _PLACEHOLDER.match(value.strip()) else value.strip()


def json_ready(value: Any) -> Any:
    """Convert numpy/pandas scalars and containers to plain JSON types for artifact metadata.

    KFP writes metadata with json.dump and stores it as a protobuf Struct, which has no NaN,
    infinity or numpy types; non-finite floats become None.
    """
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_ready(value.tolist())  # numpy arrays and scalars
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)
