"""Finding a Python interpreter of a given version on this machine, for the environment of a task whose image
asks for that version.

Looks, in order, on PATH (`python3.12`), in pyenv (`$PYENV_ROOT/versions/3.12.*`) and among uv-managed Pythons (uv's
Python directory; `uv python find --managed-python` when given a uv); never downloads one. Only asking uv starts a
process.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from typing import List, Mapping, Optional


@dataclasses.dataclass(frozen=True)
class Interpreter:
    """A Python interpreter: its executable and its `X.Y` version."""

    path: str
    version: str
    source: str  # "runner", "PATH", "pyenv" or "uv"


_VERSION = re.compile(r"^3\.\d{1,2}$")


def runner_interpreter() -> Interpreter:
    """The interpreter kfp-lineage itself runs on; its base interpreter when kfp-lineage runs in a virtualenv, so an
    environment made from it does not see the runner's packages."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return Interpreter(path=base, version=f"{sys.version_info[0]}.{sys.version_info[1]}", source="runner")


def find_interpreter(version: str, environ: Optional[Mapping[str, str]] = None,
                     uv_bin: Optional[str] = None) -> Optional[Interpreter]:
    """An interpreter of Python `version` ("3.12") on this machine, or None when there is none.

    Args:
        version: `X.Y`.
        environ: the environment to read PATH, PYENV_ROOT and HOME from (default os.environ).
        uv_bin: a uv executable, to ask it for managed Pythons its directory search did not find (an unusual
            location); None asks no process.

    Raises:
        ValueError: `version` is not `3.Y`.
    """
    if not _VERSION.match(version):
        raise ValueError(f"Python version {version!r} is not of the form 3.Y")
    environ = os.environ if environ is None else environ
    runner = runner_interpreter()
    if runner.version == version:
        return runner
    return (_find_on_path(version, environ) or _find_in_pyenv(version, environ)
            or _find_in_uv_directory(version, environ)
            or (_find_uv_managed(version, uv_bin, environ) if uv_bin else None))


def _find_on_path(version: str, environ: Mapping[str, str]) -> Optional[Interpreter]:
    name = f"python{version}"
    for directory in environ.get("PATH", "").split(os.pathsep):
        # A pyenv shim is a script that runs whichever version pyenv selects, and fails for one it does not:
        # the pyenv search below finds the real interpreter behind it.
        if not directory or os.path.basename(os.path.normpath(directory)) == "shims":
            continue
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return Interpreter(path=candidate, version=version, source="PATH")
    return None


def _find_in_pyenv(version: str, environ: Mapping[str, str]) -> Optional[Interpreter]:
    root = environ.get("PYENV_ROOT") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".pyenv")
    versions_dir = os.path.join(root, "versions")
    try:
        names = os.listdir(versions_dir)
    except OSError:
        return None
    patch = re.compile(rf"^{re.escape(version)}\.(\d+)$")  # final releases only: not 3.12-dev, 3.12.0rc1
    found: List[tuple] = []
    for name in names:
        match = patch.match(name)
        candidate = os.path.join(versions_dir, name, "bin", f"python{version}")
        if match and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            found.append((int(match.group(1)), candidate))
    if not found:
        return None
    return Interpreter(path=max(found)[1], version=version, source="pyenv")


def _find_in_uv_directory(version: str, environ: Mapping[str, str]) -> Optional[Interpreter]:
    """uv's managed Pythons live in `$UV_PYTHON_INSTALL_DIR`, else `$XDG_DATA_HOME/uv/python`, else
    `~/.local/share/uv/python`, as `cpython-3.12.7-linux-x86_64-gnu/bin/python3.12`."""
    home = environ.get("HOME") or os.path.expanduser("~")
    data = environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    directory = environ.get("UV_PYTHON_INSTALL_DIR") or os.path.join(data, "uv", "python")
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    patch = re.compile(rf"^cpython-{re.escape(version)}\.(\d+)-")  # not +freethreaded builds, not pypy
    found: List[tuple] = []
    for name in names:
        match = patch.match(name)
        candidate = os.path.join(directory, name, "bin", f"python{version}")
        if match and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            found.append((int(match.group(1)), candidate))
    if not found:
        return None
    return Interpreter(path=max(found)[1], version=version, source="uv")


def _find_uv_managed(version: str, uv_bin: str, environ: Mapping[str, str]) -> Optional[Interpreter]:
    try:
        completed = subprocess.run(
            [uv_bin, "python", "find", "--managed-python", "--no-python-downloads", version],
            capture_output=True, text=True, timeout=30, env=dict(environ, UV_PYTHON_DOWNLOADS="never"),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = completed.stdout.strip()
    if completed.returncode != 0 or not path or not os.path.isfile(path):
        return None
    return Interpreter(path=path, version=version, source="uv")
