"""What a task environment is: the installs of a task's compiled pip prefix on one Python `X.Y` and platform, and
the digest that names it in the cache.

The digest covers each `pip install` in order (its requirements normalised and sorted, its index options and
flags), the Python version and the platform; not the interpreter's path, so any interpreter of the same version
makes an equivalent environment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform as platform_module
import sys
from typing import Optional, Tuple

from packaging import markers as packaging_markers
from packaging import requirements as packaging_requirements
from packaging import utils as packaging_utils

from kfp_lineage.engine.exec import interpreters
from kfp_lineage.ir import requirements

_KEY_FORMAT = 1
DIGEST_LENGTH = 24  # hex characters: 96 bits name a directory; the manifest keeps the full sha256


@dataclasses.dataclass(frozen=True)
class EnvironmentSpec:
    """What to build: the task's installs, on an interpreter of `python_version`, for this platform.

    `interpreter` is the executable the environment is made from when it must be built; it is not part of the
    digest (any interpreter of the same `X.Y` makes an equivalent environment).
    """

    installs: Tuple[requirements.PipInstall, ...]
    python_version: str
    interpreter: str
    platform: str

    def key(self) -> dict:
        """The normalised content the digest is computed from."""
        return {
            "format": _KEY_FORMAT,
            "python": self.python_version,
            "platform": self.platform,
            "installs": [_normalise_install(install) for install in self.installs],
        }

    @property
    def digest(self) -> str:
        """The environment's name in the cache: a prefix of the sha256 of key()."""
        return full_digest(self.key())[:DIGEST_LENGTH]

    @property
    def package_count(self) -> int:
        """How many requirements apply on this Python (a marker such as `python_version<"3.9"` can exclude one)."""
        return sum(1 for install in self.installs for text in install.requirements
                   if _applies(text, self.python_version))


def current_platform() -> str:
    """`linux-x86_64`, `darwin-arm64`: environments are not shared between platforms."""
    return f"{sys.platform}-{platform_module.machine().lower()}"


def spec_for_prefix(prefix: requirements.PipPrefix, interpreter: interpreters.Interpreter,
                    platform: Optional[str] = None) -> EnvironmentSpec:
    """The environment a task with this pip prefix needs, made from `interpreter`."""
    return EnvironmentSpec(installs=prefix.installs, python_version=interpreter.version,
                           interpreter=interpreter.path, platform=platform or current_platform())


def full_digest(key: dict) -> str:
    """The sha256 (hex) of a key, as canonical JSON."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _normalise_install(install: requirements.PipInstall) -> dict:
    index = install.index
    return {
        "requirements": sorted(_normalise_requirement(text) for text in install.requirements),
        "no_deps": install.no_deps,
        "pre": install.pre,
        "index_url": index.index_url,
        "extra_index_urls": list(index.extra_index_urls),
        "trusted_hosts": sorted(index.trusted_hosts),
        "find_links": list(index.find_links),
        "no_index": index.no_index,
    }


def _normalise_requirement(text: str) -> str:
    """`Pandas >= 2.0,<3` and `pandas<3,>=2.0` give the same string; URLs and paths are kept as written."""
    try:
        requirement = packaging_requirements.Requirement(text)
    except packaging_requirements.InvalidRequirement:
        return text.strip()
    name = packaging_utils.canonicalize_name(requirement.name)
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    version = f" @ {requirement.url}" if requirement.url else ",".join(sorted(str(s) for s in requirement.specifier))
    marker = f"; {requirement.marker}" if requirement.marker is not None else ""
    return f"{name}{extras}{version}{marker}"


def _applies(text: str, python_version: str) -> bool:
    try:
        marker = packaging_requirements.Requirement(text).marker
    except packaging_requirements.InvalidRequirement:
        return True
    if marker is None:
        return True
    try:
        return marker.evaluate({"python_version": python_version, "python_full_version": f"{python_version}.0"})
    except packaging_markers.UndefinedEnvironmentName:
        return True

