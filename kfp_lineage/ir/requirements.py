"""The requirements a compiled task declares: its `pip install` prefix, and whether an environment meets them.

Reads the command the KFP compiler writes for lightweight components; installs nothing.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
import shlex
from typing import List, Optional, Sequence, Tuple

from packaging import requirements as packaging_requirements
from packaging import version as packaging_version


@dataclasses.dataclass(frozen=True)
class PipPrefix:
    """The `pip install` step the KFP compiler puts before lightweight components, split off the command."""

    requirements: Tuple[str, ...]
    command: Tuple[str, ...]


_PIP_SEGMENT = re.compile(r"pip install (?P<args>.*?)(?:&&|$)", re.S)
_PIP_OPTIONS_WITH_VALUE = {"-i", "--index-url", "--extra-index-url", "--trusted-host", "-f", "--find-links"}


def split_pip_prefix(command: Sequence[str]) -> Optional[PipPrefix]:
    """Recognises `sh -c '<pip install ...> && "$0" "$@"' PROGRAM...` and returns the requirements and PROGRAM.

    Returns:
        None when the command has no such prefix (it is then run as it is).
    """
    if len(command) < 4 or list(command[:2]) != ["sh", "-c"] or "pip install" not in command[2]:
        return None
    if not command[2].rstrip().endswith('"$0" "$@"'):
        return None
    found: List[str] = []
    for segment in _PIP_SEGMENT.finditer(command[2]):
        words = shlex.split(segment.group("args"))
        skip_next = False
        for word in words:
            if skip_next:
                skip_next = False
            elif word in _PIP_OPTIONS_WITH_VALUE:
                skip_next = True
            elif not word.startswith("-") and word not in ("&&", '"$0"', '"$@"'):
                found.append(word)
    return PipPrefix(requirements=tuple(found), command=tuple(command[3:]))


@dataclasses.dataclass(frozen=True)
class RequirementProblem:
    """A requirement the running environment does not meet."""

    requirement: str
    installed: Optional[str]

    def describe(self) -> str:
        if self.installed is None:
            return f"{self.requirement} (not installed)"
        return f"{self.requirement} (installed: {self.installed})"


def check_requirements(requirement_strings: Sequence[str]) -> List[RequirementProblem]:
    """Checks requirements against the running interpreter's installed distributions; installs nothing.

    Requirements whose environment marker is false, and ones that are not plain PEP 508 strings (URLs,
    local paths), are skipped.
    """
    problems: List[RequirementProblem] = []
    for text in requirement_strings:
        try:
            requirement = packaging_requirements.Requirement(text)
        except packaging_requirements.InvalidRequirement:
            continue
        if requirement.url or (requirement.marker is not None and not requirement.marker.evaluate()):
            continue
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(RequirementProblem(text, None))
            continue
        if requirement.specifier and not requirement.specifier.contains(
            packaging_version.Version(installed), prereleases=True
        ):
            problems.append(RequirementProblem(text, installed))
    return problems
