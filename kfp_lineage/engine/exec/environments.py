"""Task environments: one virtual environment per requirement set, built with uv into a content-addressed cache.

An environment is named by the digest of what it installs (each `pip install` of the task's compiled prefix:
its requirements, index options and flags), the Python `X.Y` it runs and the platform. It is built once, in a
temporary directory renamed into place when complete, under a per-digest file lock, so concurrent runs build it
once; then it is reused by every task, run and pipeline that asks for the same set. A warm lookup reads one JSON file
and starts no process. The runner's own environment is never installed into: uv always targets the new
environment's interpreter.

Layout of the cache directory:
    <digest>/                 a complete environment (a relocatable venv) with kfp-lineage-env.json inside
    .building/<digest>-...    environments being built (removed on failure)
    .locks/<digest>.lock      one lock per digest
    .trash/                   environments being removed
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from packaging import utils as packaging_utils

from kfp_lineage.engine.exec import environment_spec
from kfp_lineage.engine.exec import uv_installer

CACHE_ENV_VAR = "KFP_LINEAGE_ENV_CACHE"
MANIFEST_NAME = "kfp-lineage-env.json"

EnvironmentSpec = environment_spec.EnvironmentSpec
EnvironmentBuildError = uv_installer.EnvironmentBuildError
ProgressCallback = Callable[[str], None]

# Where the cache lives ---------------------------------------------------------------------------------------------

def default_cache_dir(environ: Optional[Mapping[str, str]] = None, system: Optional[str] = None) -> str:
    """The user cache directory's `kfp-lineage/envs`: ~/Library/Caches on macOS, else $XDG_CACHE_HOME or ~/.cache."""
    environ = os.environ if environ is None else environ
    home = environ.get("HOME") or os.path.expanduser("~")
    if (system or sys.platform) == "darwin":
        base = os.path.join(home, "Library", "Caches")
    else:
        base = environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return os.path.join(base, "kfp-lineage", "envs")


def resolve_cache_dir(cache_dir: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> str:
    """The cache directory to use: `cache_dir` (the CLI's --env-cache), else $KFP_LINEAGE_ENV_CACHE, else the
    default; returned absolute."""
    environ = os.environ if environ is None else environ
    chosen = cache_dir or environ.get(CACHE_ENV_VAR) or default_cache_dir(environ)
    return os.path.abspath(os.path.expanduser(chosen))

# What the cache holds ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Environment:
    """A complete environment in the cache.

    Attributes:
        digest: its name in the cache (EnvironmentSpec.digest).
        path: its directory.
        python_path: the interpreter to run tasks with (`<path>/bin/python`).
        python: the full Python version (`3.12.1`).
        packages: installed distributions, canonical name -> version (or `@ URL` for direct references).
        built: True when this call built it (first use).
        duration: seconds this call spent looking it up or building it.
    """

    digest: str
    path: str
    python_path: str
    python: str
    packages: Dict[str, str]
    built: bool = False
    duration: float = 0.0


@dataclasses.dataclass(frozen=True)
class EnvironmentRecord:
    """An environment as `kfp-lineage envs list` shows it."""

    digest: str
    path: str
    python: str
    package_count: int
    size: int
    created: datetime.datetime
    last_used: datetime.datetime
    usable: bool  # False when the interpreter it was made from is gone

    def to_json(self) -> dict:
        return {"digest": self.digest, "path": self.path, "python": self.python, "packages": self.package_count,
                "size": self.size, "created": _format_time(self.created), "last_used": _format_time(self.last_used),
                "usable": self.usable}


class EnvironmentCache:
    """The content-addressed cache of task environments under one directory."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def path_of(self, digest: str) -> str:
        return os.path.join(self.root, digest)

    def lookup(self, digest: str, touch: bool = True) -> Optional[Environment]:
        """The complete, usable environment named `digest`, or None; starts no process.

        Args:
            touch: record now as its last use (prune keeps recently used environments).
        """
        started = time.monotonic()
        path = self.path_of(digest)
        manifest = _read_manifest(path)
        if manifest is None or not os.path.exists(_python_in(path)):  # exists() follows the link to the interpreter
            return None
        if touch:
            manifest["last_used"] = _format_time(_now())
            with contextlib.suppress(OSError):  # a read-only cache still serves environments
                _write_json_atomically(os.path.join(path, MANIFEST_NAME), manifest)
        return Environment(digest=digest, path=path, python_path=_python_in(path), python=manifest["python"],
                           packages=_packages_from_freeze(manifest["packages"]), built=False,
                           duration=time.monotonic() - started)

    def ensure(self, spec: EnvironmentSpec, label: Union[str, Sequence[str]], uv_bin: Optional[str] = None,
               environ: Optional[Mapping[str, str]] = None,
               on_progress: Optional[ProgressCallback] = None) -> Environment:
        """The environment for `spec`, built now when the cache does not hold it.

        Args:
            label: the task (or the tasks) it is for, named in progress and errors: `train`, or `train (and 2
                more tasks)` and `task 'train' (and 2 more tasks): ...`.
            uv_bin: the uv executable (default: the one the `uv` package ships).
            environ: the environment uv runs with (default os.environ, less anything pointing at another venv).

        Raises:
            EnvironmentBuildError: a requirement cannot be installed, or uv or the interpreter fails; nothing is
                left in the cache.
        """
        started = time.monotonic()
        labels = [label] if isinstance(label, str) else list(label)
        found = self.lookup(spec.digest)
        if found is not None:
            return found
        try:
            os.makedirs(os.path.join(self.root, ".locks"), exist_ok=True)
        except OSError as e:
            raise EnvironmentBuildError(
                f"cannot write the task environment cache {self.root} ({e.strerror}): give a writable directory "
                f"with --env-cache DIR or {CACHE_ENV_VAR}") from e
        _write_cachedir_tag(self.root)
        with self._locked(spec.digest):
            found = self.lookup(spec.digest)  # another process built it while this one waited
            if found is not None:
                return dataclasses.replace(found, duration=time.monotonic() - started)
            if on_progress:
                count = spec.package_count
                on_progress(f"preparing environment for {_describe_tasks(labels)}: {count} "
                            f"package{'s' if count != 1 else ''}, first use")
            self._discard(self.path_of(spec.digest))  # a broken one: its interpreter was removed
            self._clear_building(spec.digest)
            path = self._build(spec, _name_tasks(labels), uv_bin or uv_installer.find_uv(), environ)
        manifest = _read_manifest(path) or {"python": "", "packages": []}
        environment = Environment(digest=spec.digest, path=path, python_path=_python_in(path),
                                  python=manifest["python"], packages=_packages_from_freeze(manifest["packages"]),
                                  built=True, duration=time.monotonic() - started)
        if on_progress:
            on_progress(f"environment for {_describe_tasks(labels)} ready in {environment.duration:.1f} s "
                        f"({len(environment.packages)} installed, {spec.digest[:12]})")
        return environment

    def list(self) -> List[EnvironmentRecord]:
        """Every complete environment, most recently used first."""
        records = []
        for digest in self._digests():
            path = self.path_of(digest)
            manifest = _read_manifest(path)
            if manifest is None:
                continue
            records.append(EnvironmentRecord(
                digest=digest, path=path, python=manifest["python"], package_count=len(manifest["packages"]),
                size=_tree_size(path), created=_parse_time(manifest["created"]),
                last_used=_parse_time(manifest.get("last_used") or manifest["created"]),
                usable=os.path.exists(_python_in(path)),
            ))
        return sorted(records, key=lambda record: record.last_used, reverse=True)

    def prune(self, older_than: Optional[datetime.timedelta] = None,
              now: Optional[datetime.datetime] = None) -> List[EnvironmentRecord]:
        """Removes environments not used for `older_than` (all when None), those whose interpreter is gone, and
        what interrupted builds left; an environment being built is skipped.

        Returns:
            The environments removed.
        """
        now = now or _now()
        removed = []
        for record in self.list():
            if older_than is not None and record.usable and now - record.last_used < older_than:
                continue
            with self._locked(record.digest, blocking=False) as acquired:
                if acquired:
                    self._discard(record.path)
                    removed.append(record)
        for leftover in _list_dir(os.path.join(self.root, ".building")):
            with self._locked(leftover.split("-", 1)[0], blocking=False) as acquired:
                if acquired:
                    shutil.rmtree(os.path.join(self.root, ".building", leftover), ignore_errors=True)
        shutil.rmtree(os.path.join(self.root, ".trash"), ignore_errors=True)
        return removed

    # Building ------------------------------------------------------------------------------------------------------

    def _build(self, spec: EnvironmentSpec, who: str, uv_bin: str, environ: Optional[Mapping[str, str]]) -> str:
        """Builds the environment in .building/ and renames it into place; `who` names its tasks in errors."""
        building = os.path.join(self.root, ".building")
        os.makedirs(building, exist_ok=True)
        work = tempfile.mkdtemp(prefix=f"{spec.digest}-", dir=building)
        target = os.path.join(work, "env")
        uv_env = uv_installer.uv_environment(environ)
        started = time.monotonic()
        try:
            uv_installer.run_uv([uv_bin, "venv", "--quiet", "--relocatable", "--no-python-downloads", "--python",
                     spec.interpreter, target], uv_env, self.root,
                    lambda detail: f"{who}: cannot make a Python {spec.python_version} environment from "
                                   f"{spec.interpreter}: {detail}")
            python_path = _python_in(target)
            full_version = _venv_python_version(target)
            if not full_version.startswith(spec.python_version + "."):
                raise EnvironmentBuildError(
                    f"{who}: {spec.interpreter} is Python {full_version}, not {spec.python_version}")
            for install in spec.installs:
                if install.requirements:
                    uv_installer.install_into(uv_bin, python_path, install, spec.python_version, who, uv_env,
                                              self.root)
            frozen = uv_installer.run_uv([uv_bin, "pip", "freeze", "--python", python_path], uv_env, self.root,
                             lambda detail: f"{who}: cannot list its environment's packages: {detail}")
            now = _format_time(_now())
            _write_json_atomically(os.path.join(target, MANIFEST_NAME), {
                "digest": spec.digest, "key_sha256": environment_spec.full_digest(spec.key()), "key": spec.key(),
                "python": full_version, "interpreter": spec.interpreter, "platform": spec.platform,
                "packages": [line for line in frozen.splitlines() if line.strip()],
                "created": now, "last_used": now, "build_seconds": round(time.monotonic() - started, 3),
                "uv": uv_installer.uv_version(uv_bin, uv_env),
            })
            final = self.path_of(spec.digest)
            os.rename(target, final)  # atomic: the digest's directory appears complete or not at all
            return final
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _digests(self) -> List[str]:
        name_pattern = re.compile(rf"[0-9a-f]{{{environment_spec.DIGEST_LENGTH}}}")
        return sorted(name for name in _list_dir(self.root)
                      if name_pattern.fullmatch(name) and os.path.isdir(self.path_of(name)))

    def _discard(self, path: str) -> None:
        """Moves a directory out of the way in one rename, then deletes it: nobody sees it half-deleted."""
        if not os.path.lexists(path):
            return
        trash = os.path.join(self.root, ".trash")
        os.makedirs(trash, exist_ok=True)
        doomed = tempfile.mkdtemp(dir=trash)
        os.rename(path, os.path.join(doomed, "env"))
        shutil.rmtree(doomed, ignore_errors=True)

    def _clear_building(self, digest: str) -> None:
        for leftover in _list_dir(os.path.join(self.root, ".building")):
            if leftover.startswith(digest + "-"):
                shutil.rmtree(os.path.join(self.root, ".building", leftover), ignore_errors=True)

    @contextlib.contextmanager
    def _locked(self, digest: str, blocking: bool = True) -> Iterator[bool]:
        locks = os.path.join(self.root, ".locks")
        os.makedirs(locks, exist_ok=True)
        with open(os.path.join(locks, f"{digest}.lock"), "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

# Preparing the environments of a run ---------------------------------------------------------------------------------

def prepare(specs: Mapping[str, Tuple[EnvironmentSpec, Sequence[str]]], cache: EnvironmentCache,
            on_progress: Optional[ProgressCallback] = None, max_workers: Optional[int] = None,
            uv_bin: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> Dict[str, Environment]:
    """Makes sure every environment exists, building the missing ones in parallel.

    Args:
        specs: digest -> (spec, labels of the tasks that use it), e.g. from EnvironmentPlan.specs().
        on_progress: receives one line before each build ("preparing environment for train: 4 packages, first
            use") and one after it, with its duration; nothing for environments the cache holds.
        max_workers: builds at once (default: 2 per core, at most the number of builds).

    Returns:
        digest -> Environment. With every environment cached, no process is started (no uv call, no network).

    Raises:
        EnvironmentBuildError: the first environment (in `specs` order) that could not be built, naming its task
            and the requirement; the others that were built stay cached.
    """
    environments: Dict[str, Environment] = {}
    missing: List[Tuple[str, EnvironmentSpec, Sequence[str]]] = []
    for digest, (spec, labels) in specs.items():
        found = cache.lookup(digest)
        if found is not None:
            environments[digest] = found
        else:
            missing.append((digest, spec, labels))
    if not missing:
        return environments
    uv_bin = uv_bin or uv_installer.find_uv()
    if on_progress is not None:
        on_progress = _serialised(on_progress)
    workers = max(1, min(len(missing), max_workers or 2 * (os.cpu_count() or 1)))
    failures: Dict[str, BaseException] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kfp-lineage-env") as pool:
        futures = {pool.submit(cache.ensure, spec, label, uv_bin, environ, on_progress): digest
                   for digest, spec, label in missing}
        for future in concurrent.futures.as_completed(futures):
            digest = futures[future]
            try:
                environments[digest] = future.result()
            except BaseException as e:  # noqa: BLE001 -- re-raised below, first in the caller's order
                failures[digest] = e
    for digest, _, _ in missing:
        if digest in failures:
            raise failures[digest]
    return environments


def _serialised(callback: ProgressCallback) -> ProgressCallback:
    """The callback, called by one build thread at a time, so lines do not interleave."""
    lock = threading.Lock()

    def call(line: str) -> None:
        with lock:
            callback(line)

    return call


def _describe_tasks(labels: Sequence[str]) -> str:
    """`train`, `train (and 2 more tasks)`: for progress lines."""
    labels = list(dict.fromkeys(labels)) or ["a task"]
    more = len(labels) - 1
    return labels[0] + (f" (and {more} more task{'s' if more > 1 else ''})" if more else "")


def _name_tasks(labels: Sequence[str]) -> str:
    """`task 'train'`, `task 'train' (and 2 more tasks)`: the subject of an error."""
    labels = list(dict.fromkeys(labels))
    if not labels:
        return "a task"
    more = len(labels) - 1
    return f"task {labels[0]!r}" + (f" (and {more} more task{'s' if more > 1 else ''})" if more else "")

# Files ----------------------------------------------------------------------------------------------------------------

def _python_in(path: str) -> str:
    return os.path.join(path, "bin", "python")


def _venv_python_version(path: str) -> str:
    with open(os.path.join(path, "pyvenv.cfg"), encoding="utf-8") as handle:
        for line in handle:
            key, _, value = line.partition("=")
            if key.strip() in ("version_info", "version"):
                return value.strip()
    raise EnvironmentBuildError(f"{path}/pyvenv.cfg names no Python version")


def _read_manifest(path: str) -> Optional[dict]:
    try:
        with open(os.path.join(path, MANIFEST_NAME), encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        return None
    complete = isinstance(manifest, dict) and all(key in manifest for key in ("packages", "python", "created"))
    return manifest if complete else None


def _write_json_atomically(path: str, data: dict) -> None:
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".manifest-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _write_cachedir_tag(root: str) -> None:
    """Marks the directory as a cache for backup tools (https://bford.info/cachedir/)."""
    tag = os.path.join(root, "CACHEDIR.TAG")
    if not os.path.exists(tag):
        with contextlib.suppress(OSError), open(tag, "w", encoding="utf-8") as handle:
            handle.write("Signature: 8a477f597d28d172789f06886806bc55\n# kfp-lineage task environments\n")


def _packages_from_freeze(lines: Iterable[str]) -> Dict[str, str]:
    packages: Dict[str, str] = {}
    for line in lines:
        name, separator, version = line.partition("==")
        if not separator:
            name, separator, version = line.partition(" @ ")
            version = f"@ {version}" if separator else ""
        packages[packaging_utils.canonicalize_name(name.strip())] = version.strip()
    return packages


def _tree_size(path: str) -> int:
    total, seen = 0, set()
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                status = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if (status.st_dev, status.st_ino) not in seen:
                seen.add((status.st_dev, status.st_ino))
                total += status.st_size
    return total


def _list_dir(path: str) -> List[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="seconds")


def _parse_time(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)
