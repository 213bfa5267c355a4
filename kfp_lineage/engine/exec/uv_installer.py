"""Running uv (the `uv` package's binary) for task environments: making a virtual environment, installing one
`pip install` of a task's prefix into it, listing what it holds; a failure becomes one line naming the task and the
requirement.

Every command names its target interpreter explicitly and runs without VIRTUAL_ENV and friends, so uv can only ever
write into the environment being built, and never downloads a Python.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.parse
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from packaging import requirements as packaging_requirements
from packaging import utils as packaging_utils

from kfp_lineage import errors
from kfp_lineage.ir import requirements


class EnvironmentBuildError(errors.InvalidInputError):
    """A task's environment cannot be built (a requirement cannot be installed, uv or the interpreter fails)."""


def find_uv() -> str:
    """The uv executable the `uv` package ships.

    Raises:
        EnvironmentBuildError: the package is not installed.
    """
    try:
        import uv  # noqa: PLC0415 -- only building an environment needs it
        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError) as e:
        raise EnvironmentBuildError(
            f"building task environments needs uv, which is not installed here ({e}): pip install uv") from e



# Variables that would point uv at another environment or interpreter than the one each command names.
_UV_UNSET = ("VIRTUAL_ENV", "CONDA_PREFIX", "UV_PYTHON", "UV_SYSTEM_PYTHON", "UV_PROJECT_ENVIRONMENT",
             "PYTHONHOME", "PYTHONPATH")


def uv_environment(environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment variables uv runs with: `environ` (default os.environ) less those naming another
    environment or interpreter, with Python downloads off."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if k not in _UV_UNSET}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["UV_NO_PROGRESS"] = "1"
    return env


def run_uv(argv: List[str], env: Mapping[str, str], cwd: str, describe: Callable[[str], str]) -> str:
    """Runs one uv command and returns its stdout.

    Raises:
        EnvironmentBuildError: uv failed; the message is `describe(uv's reason as one line)`.
    """
    # cwd is the cache root: uv reads no project configuration (pyproject.toml, uv.toml) of the user's directory.
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, env=dict(env), cwd=cwd)
    except OSError as e:
        raise EnvironmentBuildError(describe(str(e))) from e
    if completed.returncode != 0:
        raise EnvironmentBuildError(describe(_uv_reason(completed.stderr)))
    return completed.stdout


def install_into(uv_bin: str, python_path: str, install: requirements.PipInstall, python_version: str, who: str,
                 env: Mapping[str, str], cwd: str) -> None:
    """Installs one `pip install` of a prefix (its requirements, index options, --no-deps, --pre) into the
    environment whose interpreter is `python_path`; `who` names its tasks in errors (`task 'train'`).

    Raises:
        EnvironmentBuildError: `task 'LABEL': cannot install REQUIREMENT on Python X.Y: <uv's reason>`.
    """
    # --compile-bytecode: as pip does; tasks then import from .pyc even where Python may not write it
    # (PYTHONDONTWRITEBYTECODE, a read-only cache), and each forked task does not compile its imports again.
    argv = [uv_bin, "pip", "install", "--quiet", "--compile-bytecode", "--python", python_path,
            "--no-python-downloads"]
    argv += _index_arguments(install.index)
    if install.no_deps:
        argv.append("--no-deps")
    if install.pre:
        argv += ["--prerelease", "allow"]
    argv += list(install.requirements)

    def describe(detail: str) -> str:
        culprit = _culprit(install.requirements, detail)
        return (f"{who}: cannot install {culprit} on Python {python_version}: {detail}" if culprit
                else f"{who}: cannot install {' '.join(install.requirements)} on Python "
                     f"{python_version}: {detail}")

    run_uv(argv, env, cwd, describe)


def _index_arguments(index: requirements.IndexOptions) -> List[str]:
    """pip's index options as uv's. pip picks the best version across all indexes; uv's default takes the first
    index that has the package, so with extra indexes uv is told to behave like pip."""
    argv: List[str] = []
    if index.index_url:
        argv += ["--index-url", index.index_url]
    for url in index.extra_index_urls:
        argv += ["--extra-index-url", url]
    if index.extra_index_urls:
        argv += ["--index-strategy", "unsafe-best-match"]
    for host in index.trusted_hosts:
        argv += ["--allow-insecure-host", trusted_host(host)]
    for link in index.find_links:
        argv += ["--find-links", link]
    if index.no_index:
        argv.append("--no-index")
    return argv


def trusted_host(value: str) -> str:
    """pip's --trusted-host value as uv's --allow-insecure-host takes it: `host` or `host:port`. KFP compiles
    `pip_index_urls` without `pip_trusted_hosts` to `--trusted-host <each index URL>`, which uv refuses
    (`invalid port`): a URL becomes its host and port."""
    if "://" not in value:
        return value
    location = urllib.parse.urlsplit(value)
    return location.netloc.rpartition("@")[2] or value


def _uv_reason(stderr: str) -> str:
    """uv's explanation as one line: its `error:` headline and each `cause:` after it, joined with `: `; hints and
    box-drawing (on a terminal) left out."""
    text = ""
    for raw in stderr.splitlines():
        arrow = "╰─▶" in raw  # a cause, in uv's terminal format
        line = re.sub(r"^[\s×╰─▶│├┬╭╮╯]+", "", raw).strip()
        if not line or line.startswith(("Using Python", "hint:", "help:")):
            continue
        cause = re.match(r"^(?:cause|caused by):\s*", line, flags=re.IGNORECASE)
        line = re.sub(r"^(?:error|cause|caused by):\s*", "", line, flags=re.IGNORECASE)
        if not text:
            text = line
        elif cause or arrow:
            text = f"{text.rstrip(':')}: {line}"
        else:  # a long line wrapped on a terminal
            text = f"{text} {line}"
    text = text or "uv failed without a message"
    return text if len(text) <= 400 else text[:397] + "..."


def _culprit(requirement_texts: Sequence[str], detail: str) -> Optional[str]:
    """The requirement uv's message is about: the first whose name it mentions."""
    spoken = packaging_utils.canonicalize_name(re.sub(r"[^A-Za-z0-9._-]+", "-", detail.lower()))
    for text in requirement_texts:
        try:
            name = packaging_utils.canonicalize_name(packaging_requirements.Requirement(text).name)
        except packaging_requirements.InvalidRequirement:
            name = packaging_utils.canonicalize_name(text)
        if re.search(rf"(?:^|-){re.escape(name)}(?:$|-)", spoken):
            return text
    return requirement_texts[0] if len(requirement_texts) == 1 else None


def uv_version(uv_bin: str, env: Mapping[str, str]) -> str:
    """`uv 0.13.9`, for the manifest; empty when it cannot be asked."""
    try:
        return subprocess.run([uv_bin, "--version"], capture_output=True, text=True, env=dict(env)).stdout.strip()
    except OSError:
        return ""

