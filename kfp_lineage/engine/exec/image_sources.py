"""Images built from a source directory on this machine (`kfp-lineage run --image-source IMAGE=DIR`): what such an
image holds, read from the directory, so a containerized Python component can run without the image.

The directory is what `kfp component build` (or a hand-written equivalent) builds an image from:
    Dockerfile       `FROM <python image>`, and `RUN pip install ...` lines (with `-r FILE` read from the directory);
    kfp_config.ini   which file holds each component function (`python3 -m kfp.dsl.executor_main` reads it from the
                     image's working directory, the directory's copy);
and the code itself. The task then runs in an environment holding what the Dockerfile installs, on the Python its
base image names, with the directory first on PYTHONPATH and `--component_module_path` pointing at the function's
file, as executor_main finds it in the image. The image's name is what the run records, as on a cluster.
"""

from __future__ import annotations

import configparser
import dataclasses
import hashlib
import os
import re
import shlex
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from kfp_lineage import errors
from kfp_lineage.ir import requirements

EXECUTOR_COMMAND = ("python3", "-m", "kfp.dsl.executor_main")  # what KFP compiles a containerized component to
_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(?P<image>\S+)", re.I | re.M)
_RUN = re.compile(r"^\s*RUN\s+(?P<command>.+)$", re.I)


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """What the image built from `directory` holds.

    Attributes:
        image: the image's name, as the spec gives it.
        directory: the source directory (absolute).
        base_image: the Dockerfile's FROM.
        python_version: the base image's Python `X.Y` (requirements.python_version_for_image).
        installs: the Dockerfile's `pip install` commands, in order, `-r FILE` replaced by the file's requirements.
        components: function name -> its file (absolute), from kfp_config.ini.
    """

    image: str
    directory: str
    base_image: str
    python_version: str
    installs: Tuple[requirements.PipInstall, ...]
    components: Mapping[str, str]

    def module_path(self, function_name: str, label: str) -> str:
        """The file holding `function_name`, for executor_main's --component_module_path.

        Raises:
            InvalidInputError: kfp_config.ini does not list it.
        """
        if function_name not in self.components:
            raise errors.InvalidInputError(
                f"task {label!r} runs component {function_name!r} from image {self.image!r}, and "
                f"{os.path.join(self.directory, 'kfp_config.ini')} does not list it: add `{function_name} = "
                "<file>.py` under [Components], or map the image to the directory it is built from")
        return self.components[function_name]


_NOT_SOURCE = {"__pycache__", "build", "dist", ".git", ".pytest_cache"}


def source_digest(directory: str) -> str:
    """The sha256 of the directory's files (paths and contents; caches and build output left out): what an image
    built from it would be named by, so a task's cached result is not reused after its code changed."""
    digest = hashlib.sha256()
    for root, directories, files in os.walk(directory):
        directories[:] = sorted(d for d in directories if d not in _NOT_SOURCE and not d.endswith(".egg-info"))
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, directory).encode() + b"\0")
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


def parse_image_sources(pairs: Sequence[str]) -> Dict[str, str]:
    """`IMAGE=DIR` strings (the CLI's --image-source) as image -> absolute directory.

    Raises:
        InvalidInputError: a pair without `=`, or a directory that does not exist.
    """
    found: Dict[str, str] = {}
    for pair in pairs:
        image, separator, directory = pair.rpartition("=")
        if not separator or not image or not directory:
            raise errors.InvalidInputError(
                f"--image-source {pair!r} is not IMAGE=DIR: pass e.g. --image-source "
                "REGISTRY/kfp-lineage-components:0.1.0=components")
        if not os.path.isdir(directory):
            raise errors.InvalidInputError(
                f"--image-source {pair!r}: {directory} is not a directory: pass the directory the image is built from")
        found[image] = os.path.abspath(directory)
    return found


def read_image_source(image: str, directory: str) -> ImageSource:
    """Reads the Dockerfile and kfp_config.ini of the directory `image` is built from.

    Raises:
        InvalidInputError: no Dockerfile, no FROM, a base image whose Python the name does not give, or no
            kfp_config.ini; each message names the file and the fix.
    """
    dockerfile = os.path.join(directory, "Dockerfile")
    text = _read(dockerfile, f"--image-source {image}={directory} needs a Dockerfile there (the one the image is "
                             "built from)")
    bases = _FROM.findall(text)
    if not bases:
        raise errors.InvalidInputError(f"{dockerfile} has no FROM line: give it the image's base, e.g. FROM "
                                       "python:3.11-slim")
    base = bases[-1]
    python_version = requirements.python_version_for_image(base)
    if python_version is None:
        raise errors.InvalidInputError(
            f"{dockerfile}: FROM {base} does not name its Python version: use a base such as python:3.11-slim")
    installs = tuple(_expand_requirement_files(install, directory)
                     for install in _pip_installs(_logical_lines(text)))
    config_path = os.path.join(directory, "kfp_config.ini")
    parser = configparser.ConfigParser()
    parser.optionxform = str  # function names are case-sensitive
    parser.read_string(_read(config_path, f"--image-source {image}={directory} needs kfp_config.ini there (which "
                                          "file holds each component; `kfp component build` writes one)"))
    components = {name: os.path.normpath(os.path.join(directory, path))
                  for name, path in (parser.items("Components") if parser.has_section("Components") else [])}
    return ImageSource(image=image, directory=directory, base_image=base, python_version=python_version,
                       installs=installs, components=components)


def executor_function(command: Sequence[str], args: Sequence[str]) -> Optional[str]:
    """The component function a containerized Python component's task runs (`--function_to_execute NAME`), or None
    when the command is not `python3 -m kfp.dsl.executor_main`."""
    if tuple(command[:3]) != EXECUTOR_COMMAND:
        return None
    words = list(command[3:]) + list(args)
    for at, word in enumerate(words):
        if word == "--function_to_execute" and at + 1 < len(words):
            return words[at + 1]
        if word.startswith("--function_to_execute="):
            return word.split("=", 1)[1]
    return None


def _read(path: str, missing: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as e:
        raise errors.InvalidInputError(f"{missing}: cannot read {path} ({e.strerror})") from e


def _logical_lines(text: str) -> List[str]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    lines: List[str] = []
    current = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def _pip_installs(lines: Sequence[str]) -> List[requirements.PipInstall]:
    """The `pip install` commands of the RUN instructions (shell form)."""
    found: List[requirements.PipInstall] = []
    for line in lines:
        match = _RUN.match(line)
        if match is None:
            continue
        # A script the pip-prefix reader understands: one `sh -c` whose program is the usual "$0" "$@".
        prefix = requirements.split_pip_prefix(["sh", "-c", f'{match.group("command")} && "$0" "$@"', "true"])
        if prefix is not None:
            found.extend(prefix.installs)
    return found


def _expand_requirement_files(install: requirements.PipInstall, directory: str) -> requirements.PipInstall:
    """The install with each `-r FILE` (FILE in the build context) replaced by the file's requirements."""
    texts = list(install.requirements)
    others = []
    for option in install.other_options:
        words = shlex.split(option)
        if words and words[0] in ("-r", "--requirement") and len(words) == 2:
            texts += _requirement_lines(os.path.join(directory, words[1]))
        elif words and words[0].startswith("--requirement="):
            texts += _requirement_lines(os.path.join(directory, words[0].split("=", 1)[1]))
        else:
            others.append(option)
    return dataclasses.replace(install, requirements=tuple(texts), other_options=tuple(others))


def _requirement_lines(path: str) -> List[str]:
    text = _read(path, "a `pip install -r` of the Dockerfile names a file the build context lacks")
    return [line.split(" #", 1)[0].strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith(("#", "-"))]
