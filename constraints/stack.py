"""Picks the dependency stack and the Python for `make setup`: prints `STACK PYTHON REASON...` on one line.

The current stack (constraints/current.txt: kfp 2.17, ml-metadata 1.21, protobuf 6) is used where ml-metadata 1.21
has a wheel: CPython 3.10-3.13 on Linux x86_64 with glibc >= 2.39, or macOS arm64. Everywhere else the legacy stack
(constraints/legacy.txt: kfp 2.13, ml-metadata 1.17.1, protobuf 4.25), whose ml-metadata needs CPython 3.10-3.11 on
Linux x86_64. Runs on any Python 3; imports nothing outside the standard library.

Usage: python3 constraints/stack.py [--python PATH] [--stack current|legacy]
    --python  use this interpreter (default: the newest python3.X on PATH the stack supports)
    --stack   force a stack (default: current where ml-metadata 1.21 installs, else legacy)
Exits 2 with a one-line error when no supported interpreter is found.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

CURRENT_PYTHONS = ("3.13", "3.12", "3.11", "3.10")
LEGACY_PYTHONS = ("3.11", "3.10")
_PROBE = (
    "import json, platform, sys; "
    "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], 'full': platform.python_version(), "
    "'implementation': platform.python_implementation(), 'system': platform.system(), "
    "'machine': platform.machine(), 'libc': platform.libc_ver()}))"
)


def probe(python: str) -> Optional[Dict[str, object]]:
    """What `python` reports about itself and its platform, or None when it does not run."""
    try:
        result = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)


def current_stack_installs(info: Dict[str, object]) -> Tuple[bool, str]:
    """Whether ml-metadata 1.21 has a wheel for this interpreter and platform, and why (for the message)."""
    if info["implementation"] != "CPython" or info["version"] not in CURRENT_PYTHONS:
        found = f"{info['implementation']} {info['version']}"
        return False, f"ml-metadata 1.21 has wheels for CPython 3.10-3.13, not {found}"
    if info["system"] == "Darwin":
        if info["machine"] == "arm64":
            return True, "macOS arm64"
        return False, f"ml-metadata 1.21 has macOS wheels for arm64 only, this Mac is {info['machine']}"
    if info["system"] != "Linux" or info["machine"] != "x86_64":
        return False, f"ml-metadata 1.21 has no wheel for {info['system']} {info['machine']}"
    libc, version = info["libc"]
    if libc != "glibc" or _version_tuple(version) < (2, 39):
        return False, f"ml-metadata 1.21 needs glibc >= 2.39, this machine has {libc or 'no glibc'} {version}".rstrip()
    return True, f"glibc {version} x86_64"


def _version_tuple(text: str) -> Tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return (0,)


def candidates(preferred: Tuple[str, ...]) -> List[str]:
    """python3.X on PATH in order of preference, then python3."""
    found = [shutil.which(f"python{version}") for version in preferred] + [shutil.which("python3")]
    unique: List[str] = []
    for path in found:
        if path and path not in unique:
            unique.append(path)
    return unique


def pick(python: Optional[str], stack: Optional[str]) -> Tuple[str, str, str]:
    """(stack, python, reason); raises SystemExit(2) with a one-line message when nothing fits."""
    why = ""
    for path in [python] if python else candidates(CURRENT_PYTHONS):
        info = probe(path)
        if info is None:
            if python:
                raise _fail(f"cannot run {python}: pass PYTHON=path/to/python3.X")
            continue
        installs, why = current_stack_installs(info)
        label = f"Python {info['full']}"
        if stack in (None, "current") and installs:
            return "current", path, f"{label}, {why}"
        if stack in (None, "legacy") and info["version"] in LEGACY_PYTHONS and info["system"] == "Linux" \
                and info["machine"] == "x86_64":
            reason = why if stack is None else "asked for with STACK=legacy"
            return "legacy", path, f"{label}; {reason}"
        if python:
            raise _fail(f"{python} is {label} on {info['system']} {info['machine']}: {why}, and the legacy stack's "
                        "ml-metadata 1.17.1 needs CPython 3.10 or 3.11 on Linux x86_64: pass PYTHON=python3.11")
    if stack == "current" and why:
        raise _fail(f"the current stack does not install here ({why}): leave STACK unset for the legacy stack")
    wanted = {"current": "3.10-3.13 where ml-metadata 1.21 installs",
              "legacy": "3.10 or 3.11 (Linux x86_64)"}.get(stack or "", "3.10-3.13 (3.10 or 3.11 below glibc 2.39)")
    raise _fail(f"no suitable Python found on PATH: install CPython {wanted}, or pass PYTHON=path/to/python")


def _fail(message: str) -> SystemExit:
    print(f"error: {message}", file=sys.stderr)
    return SystemExit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python")
    parser.add_argument("--stack", choices=("current", "legacy"))
    options = parser.parse_args()
    stack, python, reason = pick(options.python or None, options.stack or None)
    print(stack, python, reason)


if __name__ == "__main__":
    main()
