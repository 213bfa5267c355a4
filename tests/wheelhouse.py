"""Wheels written straight as zip files, for installing into task environments without a network: tiny pure-Python
probe packages, and a wheel of kfp packed from the runner's own installed copy."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import re
import zipfile
from typing import Dict, FrozenSet, List, Mapping, Sequence, Set, Tuple, Union

from packaging import requirements as packaging_requirements
from packaging import utils as packaging_utils

# Files of an installed distribution that the installer wrote, not the wheel: RECORD and WHEEL are regenerated.
_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "WHEEL"}


def write_wheel(directory: str, name: str, version: str, requires: Sequence[str] = (),
                script: bool = False) -> str:
    """Writes `<name>-<version>-py3-none-any.whl` into `directory`: a module printing nothing, whose
    `__version__` is `version`, with `requires` as its dependencies and, when `script`, a console script `name`
    printing the version. Returns the wheel's path."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    files: Dict[str, Union[str, bytes]] = {
        f"{module}/__init__.py": f"__version__ = {version!r}\n\n\ndef main():\n    print(__version__)\n",
        f"{dist_info}/METADATA": "\n".join(metadata) + "\n",
    }
    if script:
        files[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{name} = {module}:main\n"
    return _write_zip(os.path.join(directory, f"{module}-{version}-py3-none-any.whl"), dist_info, files)


def write_installed_wheel(directory: str, distribution: str = "kfp", compression: int = zipfile.ZIP_DEFLATED) -> str:
    """Packs the runner's installed copy of a pure-Python distribution (kfp) back into a wheel in `directory`,
    from the files its metadata lists (byte code, console scripts and the installer's own files left out; RECORD
    and WHEEL written anew), so task environments can install it with no network. Returns the wheel's path."""
    dist = importlib.metadata.distribution(distribution)
    name, version = dist.metadata["Name"], dist.version
    module = re.sub(r"[-_.]+", "_", name)
    # The installed .dist-info's own name (`jinja2-3.1.6.dist-info` for `Jinja2`): a second one breaks the wheel.
    dist_info = next((path.parts[0] for path in dist.files or () if path.parts[0].endswith(".dist-info")),
                     f"{module}-{version}.dist-info")
    files: Dict[str, Union[str, bytes]] = {}
    for path in dist.files or ():
        text = str(path)
        if text.startswith("..") or "__pycache__" in path.parts or text.endswith(".pyc"):
            continue
        if path.parts[0].endswith(".dist-info") and path.name in _INSTALLER_FILES:
            continue
        located = path.locate()
        if os.path.isfile(located):
            files[text] = located.read_bytes()
    return _write_zip(os.path.join(directory, f"{module}-{version}-py3-none-any.whl"), dist_info, files, compression)


def installed_closure(requirement_texts: Sequence[str]) -> List[str]:
    """The installed distributions (canonical names, sorted) that the requirements and their dependencies, extras
    and markers evaluated here, take from the runner's environment: what a task environment installing
    `requirement_texts` needs."""
    found: Set[str] = set()
    seen: Set[Tuple[str, FrozenSet[str]]] = set()
    pending = [packaging_requirements.Requirement(text) for text in requirement_texts]
    while pending:
        requirement = pending.pop()
        name = packaging_utils.canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        found.add(name)
        for text in importlib.metadata.distribution(requirement.name).requires or ():
            dependency = packaging_requirements.Requirement(text)
            extras = set(requirement.extras) | {""}
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in extras):
                pending.append(dependency)
    return sorted(found)


def write_installed_closure(directory: str, requirement_texts: Sequence[str]) -> str:
    """A wheelhouse of everything installed_closure(requirement_texts) names, packed from the runner's environment
    without compression (hundreds of megabytes: numpy, scipy, pyarrow); returns `directory`."""
    os.makedirs(directory, exist_ok=True)
    for name in installed_closure(requirement_texts):
        write_installed_wheel(directory, name, compression=zipfile.ZIP_STORED)
    return directory


def write_wheelhouse(directory: str, with_kfp: bool = False) -> str:
    """The wheelhouse the environment tests install from: kfpl-probe 1.0 and 2.0 (2.0 needs kfpl-helper, and has a
    console script), kfpl-helper 1.0, and the same as lineage-probe / lineage-helper (a compiled component whose
    package starts with `kfp` gets no `kfp==X` install from the compiler); with `with_kfp`, the runner's kfp and
    click (a requirement the runner meets)."""
    os.makedirs(directory, exist_ok=True)
    for prefix in ("kfpl", "lineage"):
        write_wheel(directory, f"{prefix}-probe", "1.0", script=True)
        write_wheel(directory, f"{prefix}-probe", "2.0", requires=[f"{prefix}-helper>=1"], script=True)
        write_wheel(directory, f"{prefix}-helper", "1.0")
    if with_kfp:
        write_installed_wheel(directory, "kfp")
        write_installed_wheel(directory, "click")
    return directory


def _write_zip(path: str, dist_info: str, files: Mapping[str, Union[str, bytes]],
               compression: int = zipfile.ZIP_DEFLATED) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    contents = {member: data.encode() if isinstance(data, str) else data for member, data in files.items()}
    contents[f"{dist_info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: kfp-lineage-tests\nRoot-Is-Purelib: true\n"
                                      b"Tag: py3-none-any\n")
    record = [f"{member},sha256={_digest(data)},{len(data)}" for member, data in contents.items()]
    contents[f"{dist_info}/RECORD"] = ("\n".join(record + [f"{dist_info}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(path, "w", compression) as archive:
        for member, data in contents.items():
            archive.writestr(member, data)
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
