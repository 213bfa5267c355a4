"""Regenerates constraints/current.txt and constraints/legacy.txt (`make lock`): one resolve per Python and platform.

Each stack is resolved with uv for every (Python, platform) it claims, from pyproject.toml and
components/pyproject.toml with every extra, anchored on the stack's kfp and ml-metadata. The results are merged into
one constraints file: a package pinned alike everywhere gets one line; one whose pin differs gets a line per version
with an environment marker naming where it applies (numpy is older on Python 3.10, for example).

Usage: python constraints/lock.py UV_EXECUTABLE
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import tempfile
from typing import Dict, List, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# name -> (what the header says, the anchors, the Pythons, the uv platforms the stack claims)
STACKS = {
    "current": (
        "kfp 2.17.3, ml-metadata 1.21.0, protobuf 6 on Python 3.10-3.13, where ml-metadata 1.21 has wheels:\n"
        "# Linux x86_64 with glibc >= 2.39 (Debian 13, Ubuntu 24.04) and macOS arm64.",
        ("kfp==2.17.3", "ml-metadata==1.21.0"),
        ("3.10", "3.11", "3.12", "3.13"),
        ("x86_64-manylinux_2_39", "aarch64-apple-darwin"),
    ),
    "legacy": (
        "kfp 2.13.0, ml-metadata 1.17.1, protobuf 4.25 on Python 3.10-3.11, Linux x86_64 with glibc >= 2.28\n"
        "# (Debian 12, Ubuntu 22.04): ml-metadata 1.17.1 has no other wheels, and needs protobuf<5, so kfp 2.13;\n"
        "# cel-expr-python's wheels need glibc >= 2.27.",
        ("kfp==2.13.0", "ml-metadata==1.17.1"),
        ("3.10", "3.11"),
        ("x86_64-manylinux_2_28",),
    ),
}

_PLATFORM_MARKERS = {"manylinux": 'sys_platform == "linux"', "darwin": 'sys_platform == "darwin"'}
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)$")


def resolve(uv: str, anchors: Sequence[str], python: str, platform: str) -> Dict[str, str]:
    """Every distribution (but ours) and its version, resolved by uv for one Python and platform."""
    with tempfile.TemporaryDirectory() as tmp:
        requirements = os.path.join(tmp, "requirements.in")
        with open(requirements, "w") as f:
            f.write("-e .[test,components]\n-e ./components[gcp]\n" + "".join(a + "\n" for a in anchors))
        output = subprocess.run(
            [uv, "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--python-version", python,
             "--python-platform", platform, requirements],
            cwd=REPO, check=True, capture_output=True, text=True,
        ).stdout
    pins = {}
    for line in output.splitlines():
        match = _PIN.match(line.strip())
        if match and not match.group(1).lower().startswith("kfp-lineage"):
            pins[match.group(1)] = match.group(2)
    return pins


def merge(resolved: Dict[Tuple[str, str], Dict[str, str]]) -> List[str]:
    """One line per package and version; a marker where the version is not the same for every target."""
    versions: Dict[str, Dict[str, List[Tuple[str, str]]]] = collections.defaultdict(
        lambda: collections.defaultdict(list))
    names = {}
    for target, pins in resolved.items():
        for name, version in pins.items():
            key = name.lower().replace("_", "-")
            names.setdefault(key, name)
            versions[key][version].append(target)
    lines = []
    for key in sorted(versions):
        by_version = versions[key]
        if len(by_version) == 1:
            lines.append(f"{names[key]}=={next(iter(by_version))}")
            continue
        for version, targets in sorted(by_version.items(), key=lambda item: sorted(item[1])):
            lines.append(f"{names[key]}=={version} ; {_marker(targets, resolved)}")
    return lines


def _marker(targets: List[Tuple[str, str]], resolved: Dict[Tuple[str, str], Dict[str, str]]) -> str:
    pythons = sorted({python for python, _ in targets})
    platforms = sorted({platform for _, platform in targets})
    all_platforms = sorted({platform for _, platform in resolved})
    python_part = " or ".join(f'python_version == "{python}"' for python in pythons)
    every_python_here = all((python, p) in targets for python in pythons for p in all_platforms)
    if every_python_here:
        return python_part
    if len(platforms) != 1:
        raise SystemExit(f"cannot express {targets} as one marker: extend constraints/lock.py")
    platform_part = next(m for k, m in _PLATFORM_MARKERS.items() if k in platforms[0])
    return f"({python_part}) and {platform_part}" if len(pythons) > 1 else f"{python_part} and {platform_part}"


def main(argv: Sequence[str]) -> int:
    uv = argv[1]
    for name, (description, anchors, pythons, platforms) in STACKS.items():
        resolved = {(python, platform): resolve(uv, anchors, python, platform)
                    for python in pythons for platform in platforms}
        header = [
            f"# The {name} stack: {description}",
            "# Generated by `make lock` (constraints/lock.py) from pyproject.toml and components/pyproject.toml with",
            "# every extra; `make setup` installs with the stack this machine supports (constraints/stack.py).",
        ]
        path = os.path.join(HERE, f"{name}.txt")
        with open(path + ".new", "w") as f:
            f.write("\n".join(header + merge(resolved)) + "\n")
        os.replace(path + ".new", path)
        print(f"wrote {os.path.relpath(path, REPO)}: {len(resolved)} resolves ({', '.join(pythons)} x "
              f"{', '.join(platforms)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
