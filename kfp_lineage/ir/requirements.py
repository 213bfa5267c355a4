"""The requirements a compiled task declares: its `pip install` prefix, its image's Python, and whether an
environment meets them.

Reads the command the KFP compiler writes for lightweight components (kfp/dsl/component_factory.py,
`_get_packages_to_install_command`); installs nothing. Both orders the compiler has used are read: kfp 2.13 installs
`kfp==X --no-deps` first and the component's packages second, kfp 2.14+ the packages first; either may carry the
index options made from `pip_index_urls` / `pip_trusted_hosts`, and the `use_venv` form adds a `python3 -m venv`
step between them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import os
import re
import shlex
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from packaging import requirements as packaging_requirements
from packaging import utils as packaging_utils
from packaging import version as packaging_version


@dataclasses.dataclass(frozen=True)
class IndexOptions:
    """Where one `pip install` looks for packages: its index, extra indexes, trusted hosts and find-links."""

    index_url: Optional[str] = None
    extra_index_urls: Tuple[str, ...] = ()
    trusted_hosts: Tuple[str, ...] = ()
    find_links: Tuple[str, ...] = ()
    no_index: bool = False

    @property
    def is_default(self) -> bool:
        """True when the command names no index option (the installer's own configuration applies)."""
        return self == IndexOptions()


@dataclasses.dataclass(frozen=True)
class PipInstall:
    """One `pip install` command of a prefix: its requirements in order, its index options and flags.

    `other_options` keeps options that change nothing about what is installed (--quiet) or that cannot be honoured
    outside the image (--user, -r FILE), as written, so a caller can mention them.
    """

    requirements: Tuple[str, ...]
    index: IndexOptions = IndexOptions()
    no_deps: bool = False
    pre: bool = False
    other_options: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class PipPrefix:
    """The `pip install` step the KFP compiler puts before lightweight components, split off the command.

    Attributes:
        requirements: every requirement of every install, in the order the command installs them.
        command: the program the prefix runs afterwards (`"$0" "$@"`).
        installs: each `pip install` of the prefix, in order.
        in_venv: the prefix makes a virtual environment before installing kfp (`use_venv=True`).
    """

    requirements: Tuple[str, ...]
    command: Tuple[str, ...]
    installs: Tuple[PipInstall, ...] = ()
    in_venv: bool = False

    @property
    def kfp_requirement(self) -> Optional[str]:
        """The requirement that installs kfp itself (`kfp==2.17.3`, or a URL/path the compiler was given), if any."""
        for text in self.requirements:
            if _requirement_name(text) == "kfp" or _KFP_SOURCE.search(text):
                return text
        return None

    @property
    def kfp_version(self) -> Optional[str]:
        """The exact kfp version the spec pins (`2.17.3` for `kfp==2.17.3`), None when none is pinned."""
        text = self.kfp_requirement
        if text is None:
            return None
        try:
            requirement = packaging_requirements.Requirement(text)
        except packaging_requirements.InvalidRequirement:
            return None
        pins = [s.version for s in requirement.specifier if s.operator in ("==", "===") and "*" not in s.version]
        return pins[0] if len(pins) == 1 else None


# kfp given as a source instead of a version (`kfp_package_path`): a git URL of the SDK, or a kfp wheel/sdist.
_KFP_SOURCE = re.compile(r"subdirectory=sdk/python|(?:^|/)kfp-\d[^/]*\.(?:whl|tar\.gz|zip)$")

# Options of `pip install` that take a value, as separate word or `--opt=value`.
_INDEX_OPTIONS = {"-i": "index_url", "--index-url": "index_url", "--extra-index-url": "extra_index_urls",
                  "--trusted-host": "trusted_hosts", "-f": "find_links", "--find-links": "find_links"}
_OTHER_OPTIONS_WITH_VALUE = {
    "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-t", "--target", "--prefix", "--root",
    "--src", "--only-binary", "--no-binary", "--platform", "--python-version", "--implementation", "--abi",
    "--upgrade-strategy", "--progress-bar", "--log", "--proxy", "--retries", "--timeout", "--exists-action",
    "--cert", "--client-cert", "--cache-dir", "--global-option", "--config-settings", "-C", "--report",
}
_SHELL_OPERATORS = {"&&", "||", ";", "\n", "|", "&", ";;"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def split_pip_prefix(command: Sequence[str]) -> Optional[PipPrefix]:
    """Recognises `sh -c '<pip install ...> && "$0" "$@"' PROGRAM...` and returns its installs and PROGRAM.

    Returns:
        None when the command has no such prefix (it is then run as it is).
    """
    # Remembered: every task of a pipeline has its own executor with the same prefix, which the preflight, the
    # environment plan and each launch split again (a shell lexer: about 0.5 ms each).
    return _split_pip_prefix(tuple(command))


@functools.lru_cache(maxsize=256)
def _split_pip_prefix(command: Tuple[str, ...]) -> Optional[PipPrefix]:
    if len(command) < 4 or list(command[:2]) != ["sh", "-c"] or "pip" not in command[2]:
        return None
    script = command[2]
    if not script.rstrip().endswith('"$0" "$@"'):
        return None
    try:
        simple_commands = _split_script(script)
    except ValueError:  # unbalanced quotes: not a script the compiler wrote
        return None
    installs: List[PipInstall] = []
    in_venv = False
    for words in simple_commands:
        arguments = _pip_install_arguments(words)
        if arguments is not None:
            installs.append(_parse_pip_install(arguments))
        elif words[:3] in (["python3", "-m", "venv"], ["python", "-m", "venv"]):
            in_venv = True
    if not installs:
        return None
    found = tuple(requirement for install in installs for requirement in install.requirements)
    return PipPrefix(requirements=found, command=tuple(command[3:]), installs=tuple(installs), in_venv=in_venv)


def _split_script(script: str) -> List[List[str]]:
    """The script's simple commands as word lists, split at shell operators and newlines outside quotes."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    commands: List[List[str]] = [[]]
    for token in lexer:
        if token in _SHELL_OPERATORS or set(token) <= set("();<>|&\n"):
            if commands[-1]:
                commands.append([])
        else:
            commands[-1].append(token)
    return [words for words in commands if words]


def _pip_install_arguments(words: List[str]) -> Optional[List[str]]:
    """The arguments after `install` when the simple command is `[VAR=x ...] (python3 -m pip|pip|pip3) install`."""
    while words and _ASSIGNMENT.match(words[0]):
        words = words[1:]
    if len(words) >= 4 and re.fullmatch(r"python[0-9.]*", words[0]) and words[1:3] == ["-m", "pip"] \
            and words[3] == "install":
        return words[4:]
    if len(words) >= 2 and re.fullmatch(r"pip[0-9.]*", words[0]) and words[1] == "install":
        return words[2:]
    return None


def _parse_pip_install(arguments: List[str]) -> PipInstall:
    found: List[str] = []
    index: Dict[str, object] = {"extra_index_urls": [], "trusted_hosts": [], "find_links": []}
    no_deps = pre = no_index = False
    other: List[str] = []
    words = iter(arguments)
    for word in words:
        name, has_inline_value, inline_value = word.partition("=") if word.startswith("--") else (word, "", "")
        if name in _INDEX_OPTIONS:
            value = inline_value if has_inline_value else next(words, "")
            field = _INDEX_OPTIONS[name]
            if field == "index_url":
                index["index_url"] = value
            else:
                index[field].append(value)  # type: ignore[union-attr]
        elif word == "--no-deps":
            no_deps = True
        elif word == "--pre":
            pre = True
        elif word == "--no-index":
            no_index = True
        elif name in _OTHER_OPTIONS_WITH_VALUE:
            other.append(word if has_inline_value else f"{word} {next(words, '')}")
        elif word.startswith("-"):
            other.append(word)
        else:
            found.append(word)
    options = IndexOptions(
        index_url=index.get("index_url"),  # type: ignore[arg-type]
        extra_index_urls=tuple(index["extra_index_urls"]),  # type: ignore[arg-type]
        trusted_hosts=tuple(index["trusted_hosts"]),  # type: ignore[arg-type]
        find_links=tuple(index["find_links"]),  # type: ignore[arg-type]
        no_index=no_index,
    )
    return PipInstall(requirements=tuple(found), index=options, no_deps=no_deps, pre=pre, other_options=tuple(other))


def _requirement_name(text: str) -> Optional[str]:
    try:
        return packaging_utils.canonicalize_name(packaging_requirements.Requirement(text).name)
    except packaging_requirements.InvalidRequirement:
        return None


# Images ------------------------------------------------------------------------------------------------------------

# `python:3.12`, `docker.io/library/python:3.11-slim`: the official image's tag starts with the version.
_OFFICIAL_PYTHON_TAG = re.compile(r"(?:^|/)python:(?P<major>3)\.(?P<minor>\d{1,2})(?![\d])")
# `.../python-311`, `python3.10`, `python-3.12`, `python_3_11` anywhere in the name.
_PYTHON_IN_NAME = re.compile(r"(?<![a-z0-9])python[-_.]?(?P<major>3)[-_.]?(?P<minor>\d{1,2})(?![a-z0-9])")
# Deep Learning / Vertex images: `base-cpu.py310`, `tf-cpu.2-17.py310`, `pytorch-xla.2-4.py311`.
_PY_IN_NAME = re.compile(r"(?<![a-z0-9])py(?P<major>3)(?P<minor>\d{1,2})(?![a-z0-9])")


def python_version_for_image(image: str) -> Optional[str]:
    """The Python version (`"3.12"`) a task's image provides, read from the image name; None when it names none.

    Recognises the official image (`python:3.12`, `python:3.11-slim`), names carrying `python-311` / `python3.11`,
    and the `.py310` suffix of Google's Deep Learning and Vertex AI images. The digest part (`@sha256:...`) is
    ignored. A name that gives only the major version (`python:3`, `python:latest`) gives None.
    """
    name = image.strip().lower().split("@", 1)[0]
    for pattern in (_OFFICIAL_PYTHON_TAG, _PYTHON_IN_NAME, _PY_IN_NAME):
        match = pattern.search(name)
        if match:
            return f"{match.group('major')}.{int(match.group('minor'))}"
    return None


# Checking an environment ---------------------------------------------------------------------------------------------

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
            installed = installed_version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(RequirementProblem(text, None))
            continue
        if requirement.specifier and not requirement.specifier.contains(
            packaging_version.Version(installed), prereleases=True
        ):
            problems.append(RequirementProblem(text, installed))
    return problems


def is_checkable(requirement_text: str) -> bool:
    """True for a plain PEP 508 requirement (name, extras, versions, marker) whose presence an environment's
    installed versions can confirm; False for URLs, local paths and anything unparsable."""
    try:
        return not packaging_requirements.Requirement(requirement_text).url
    except packaging_requirements.InvalidRequirement:
        return False


_installed: Dict[str, Optional[str]] = {}
_installed_stamp: Tuple[Tuple[str, int], ...] = ()


def installed_version(name: str) -> str:
    """importlib.metadata.version(name), remembered until a directory on sys.path changes: installing, upgrading
    or removing a distribution adds or removes its *.dist-info directory there. A pipeline asks for the same few
    packages once per task, and each lookup scans every directory on sys.path (about 1 ms).

    Raises:
        importlib.metadata.PackageNotFoundError: not installed.
    """
    global _installed_stamp
    stamp = []
    for entry in sys.path:
        try:
            stamp.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            continue
    if tuple(stamp) != _installed_stamp:
        _installed.clear()
        _installed_stamp = tuple(stamp)
    if name not in _installed:
        try:
            _installed[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            _installed[name] = None
    version = _installed[name]
    if version is None:
        raise importlib.metadata.PackageNotFoundError(name)
    return version
