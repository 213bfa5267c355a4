"""Importing `@dsl.pipeline` functions from Python files and modules, with errors that name the file and line."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import sysconfig
import traceback
from typing import Any, Iterator

from kfp.dsl import graph_component

from kfp_lineage import errors


def import_pipeline(target: str) -> graph_component.GraphComponent:
    """The `@dsl.pipeline` that `FILE.py[:FUNC]` or `package.module[:FUNC]` names.

    A file is run with its directory first on sys.path, as `python FILE` would; a module is imported with the
    current directory first on sys.path, as `python -m` would; sys.path is restored afterwards.

    Raises:
        InvalidInputError: the file or module does not exist; it fails to import (a SyntaxError, an exception in
            its code or in a pipeline body, which `@dsl.pipeline` runs, such as kfp's InvalidTopologyException),
            named by file and line; it has no such pipeline, or several and FUNC is missing.
    """
    module_part, _, func_name = target.partition(":")
    module = _import_file(module_part) if module_part.endswith(".py") else _import_module(module_part)
    pipelines = {
        name: value for name, value in vars(module).items() if isinstance(value, graph_component.GraphComponent)
    }
    if func_name:
        if func_name not in pipelines:
            raise errors.InvalidInputError(
                f"{module_part} has no @dsl.pipeline named {func_name!r}; it has: {', '.join(sorted(pipelines)) or 'none'}"
            )
        return pipelines[func_name]
    if len(pipelines) == 1:
        return next(iter(pipelines.values()))
    raise errors.InvalidInputError(
        f"{module_part} defines {len(pipelines)} pipelines ({', '.join(sorted(pipelines)) or 'none'}): "
        f"name one as {module_part}:FUNC"
    )


def _describe_failure(error: BaseException, fallback: str) -> str:
    """`Type at FILE, line N: message`, on one line, for an error raised by the user's pipeline code.

    The place is the line a SyntaxError names, else the innermost traceback frame in the user's code (outside
    Python, installed packages and kfp-lineage), else `fallback` (the file or module).
    """
    place = None
    if isinstance(error, SyntaxError) and error.filename and not error.filename.startswith("<"):
        place = (error.filename, error.lineno or 0)
    else:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if _is_user_file(f.filename)]
        if frames:
            place = (frames[-1].filename, frames[-1].lineno or 0)
    where = _show_place(*place) if place else fallback
    message = error.msg if isinstance(error, SyntaxError) and error.msg else str(error)
    message = " ".join(message.split())
    return f"{type(error).__name__} at {where}" + (f": {message}" if message else "")


def _import_file(path: str) -> Any:
    if not os.path.isfile(path):
        raise errors.InvalidInputError(f"pipeline module {path} does not exist")
    module_name = "_kfp_lineage_pipeline_" + os.path.splitext(os.path.basename(path))[0]
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        with _first_on_sys_path(os.path.dirname(os.path.abspath(path))):
            module_spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise errors.InvalidInputError(
            f"cannot load pipeline module {path}: {_describe_failure(e, fallback=path)}"
        ) from None
    return module


def _import_module(name: str) -> Any:
    try:
        with _first_on_sys_path(os.getcwd()):
            return importlib.import_module(name)
    except Exception as e:
        if isinstance(e, ModuleNotFoundError) and e.name and (name == e.name or name.startswith(e.name + ".")):
            # The module itself is missing (rather than something it imports).
            raise errors.InvalidInputError(
                f"cannot import pipeline module {name!r} ({e}): pass a .yaml spec, FILE.py[:FUNC] or a "
                "package.module[:FUNC] importable from the current directory"
            ) from None
        raise errors.InvalidInputError(
            f"cannot load pipeline module {name}: {_describe_failure(e, fallback=name)}"
        ) from None


@contextlib.contextmanager
def _first_on_sys_path(directory: str) -> Iterator[None]:
    """`directory` first on sys.path for the duration, then sys.path as it was."""
    saved = list(sys.path)
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        sys.path[:] = saved


def _show_place(path: str, line: int) -> str:
    if os.path.isabs(path) and _is_within(path, os.getcwd()):
        path = os.path.relpath(path)
    return f"{path}, line {line}" if line else path


def _is_user_file(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    return not any(_is_within(filename, root) for root in _library_roots())


def _library_roots() -> Iterator[str]:
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            yield paths[key]
    yield os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the kfp_lineage package


def _is_within(path: str, directory: str) -> bool:
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)
