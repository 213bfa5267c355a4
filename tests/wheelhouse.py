"""Tiny pure-Python wheels written straight as zip files, for installing into task environments without a network."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from typing import Dict, Sequence


def write_wheel(directory: str, name: str, version: str, requires: Sequence[str] = (),
                script: bool = False) -> str:
    """Writes `<name>-<version>-py3-none-any.whl` into `directory`: a module printing nothing, whose
    `__version__` is `version`, with `requires` as its dependencies and, when `script`, a console script `name`
    printing the version. Returns the wheel's path."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    files: Dict[str, str] = {
        f"{module}/__init__.py": f"__version__ = {version!r}\n\n\ndef main():\n    print(__version__)\n",
        f"{dist_info}/METADATA": "\n".join(metadata) + "\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: kfp-lineage-tests\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n",
    }
    if script:
        files[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{name} = {module}:main\n"
    record = [f"{path},sha256={_digest(text)},{len(text.encode())}" for path, text in files.items()]
    files[f"{dist_info}/RECORD"] = "\n".join(record + [f"{dist_info}/RECORD,,"]) + "\n"
    path = os.path.join(directory, f"{module}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


def write_wheelhouse(directory: str) -> str:
    """The wheelhouse the environment tests install from: kfpl-probe 1.0 and 2.0 (2.0 needs kfpl-helper, and has a
    console script), kfpl-helper 1.0."""
    os.makedirs(directory, exist_ok=True)
    write_wheel(directory, "kfpl-probe", "1.0", script=True)
    write_wheel(directory, "kfpl-probe", "2.0", requires=["kfpl-helper>=1"], script=True)
    write_wheel(directory, "kfpl-helper", "1.0")
    return directory


def _digest(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
