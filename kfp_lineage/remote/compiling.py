"""Compiling a project's pipelines and components to checked-in IR YAML (`kfp-lineage compile`).

Needs kfp only, not ml-metadata: `python -m kfp_lineage.remote.compiling [--check]` does what `kfp-lineage compile`
does in an environment that has just kfp (`make specs` compiles with the current stack's kfp that way).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import filecmp
import importlib
import importlib.util
import os
import pkgutil
import re
import sys
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence

import kfp
from kfp import compiler
from kfp.dsl import base_component, graph_component

from kfp_lineage import errors


# The compile-time settings a project's component decorators read when their modules are imported (components/
# kfp_lineage_components/_component.py): the image of containerized components, the index URLs of the wheel that
# lightweight ones install. compile_project sets both (or clears them) and imports the components afresh.
IMAGE_ENV_VAR = "KFP_LINEAGE_COMPONENTS_IMAGE"
INDEX_ENV_VAR = "KFP_LINEAGE_COMPONENTS_INDEX_URLS"


@dataclasses.dataclass(frozen=True)
class ShippingOptions:
    """How compiled components get their package's shared code (see README, "Running the components on Vertex AI /
    Kubeflow").

    Attributes:
        components_image: build containerized components running in this image (`make image`); "" for lightweight.
        index_urls: lightweight components pip-install the components' wheel from these indexes (the first is
            pip's --index-url, the others --extra-index-url); empty: the shared modules are embedded in each spec.
    """

    components_image: str = ""
    index_urls: Sequence[str] = ()


@dataclasses.dataclass(frozen=True)
class CompiledFile:
    """One spec file and whether compiling changed it."""

    path: str
    kind: str  # "pipeline" or "component"
    changed: bool


def find_pipelines(pipelines_dir: str) -> Dict[str, graph_component.GraphComponent]:
    """Every `@dsl.pipeline` defined at module level in the .py files of `pipelines_dir`, by pipeline name.

    Raises:
        InvalidInputError: the directory is missing, or two pipelines share a name.
    """
    if not os.path.isdir(pipelines_dir):
        raise errors.InvalidInputError(f"pipelines directory {pipelines_dir} does not exist: pass --pipelines-dir")
    found: Dict[str, graph_component.GraphComponent] = {}
    for filename in sorted(os.listdir(pipelines_dir)):
        if not filename.endswith(".py") or filename.startswith("_"):
            continue
        path = os.path.join(pipelines_dir, filename)
        module_name = f"_kfp_lineage_pipelines_{filename[:-3]}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
        for value in vars(module).values():
            defined_here = getattr(getattr(value, "pipeline_func", None), "__module__", None) == module_name
            if isinstance(value, graph_component.GraphComponent) and defined_here:
                name = value.component_spec.name
                if name in found and found[name] is not value:
                    raise errors.InvalidInputError(f"two pipelines are named {name!r} in {pipelines_dir}")
                found[name] = value
    return found


def find_components(components_dir: str) -> Dict[str, base_component.BaseComponent]:
    """Every component (not pipeline) defined at module level in the packages under `components_dir`.

    Private modules (`_name.py`) are skipped; a component is listed under its KFP name (`deploy_local` ->
    `deploy-local`).
    """
    if not os.path.isdir(components_dir):
        raise errors.InvalidInputError(f"components directory {components_dir} does not exist: pass --components-dir")
    found: Dict[str, base_component.BaseComponent] = {}
    sys.path.insert(0, os.path.abspath(components_dir))
    try:
        for package in sorted(os.listdir(components_dir)):
            if not os.path.isfile(os.path.join(components_dir, package, "__init__.py")):
                continue
            importlib.import_module(package)
            for info in pkgutil.iter_modules([os.path.join(components_dir, package)]):
                if info.name.startswith("_"):
                    continue
                module = importlib.import_module(f"{package}.{info.name}")
                for value in vars(module).values():
                    defined_here = getattr(getattr(value, "python_func", None), "__module__", None) == module.__name__
                    is_pipeline = isinstance(value, graph_component.GraphComponent)
                    if isinstance(value, base_component.BaseComponent) and defined_here and not is_pipeline:
                        found[value.name] = value
    finally:
        sys.path.remove(os.path.abspath(components_dir))
    return found


def compile_project(pipelines_dir: str, components_dir: str, output_dir: str, check: bool = False,
                    shipping: Optional[ShippingOptions] = None) -> List[CompiledFile]:
    """Compiles pipelines to `<output_dir>/<name>.yaml` and components to `<output_dir>/components/<name>.yaml`.

    Args:
        check: compile to a temporary place and only report which files differ; write nothing.
        shipping: how the components get their shared code (default: embedded, PyPI requirements only).

    Returns:
        One entry per spec, with `changed` telling whether it differs from what was on disk.

    Raises:
        InvalidInputError: with `check`, a spec on disk differs and was compiled by another kfp version than this
            one (the difference would say nothing about the source); or a directory is missing.
    """
    with _shipping_settings(shipping or ShippingOptions(), components_dir):
        return _compile_project(pipelines_dir, components_dir, output_dir, check)


def _compile_project(pipelines_dir: str, components_dir: str, output_dir: str, check: bool) -> List[CompiledFile]:
    targets = [(name, "pipeline", comp, os.path.join(output_dir, f"{name}.yaml"))
               for name, comp in sorted(find_pipelines(pipelines_dir).items())]
    targets += [(name, "component", comp, os.path.join(output_dir, "components", f"{name}.yaml"))
                for name, comp in sorted(find_components(components_dir).items())]
    results: List[CompiledFile] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind, component, destination in targets:
            fresh = os.path.join(tmp, f"{kind}-{name}.yaml")
            compiler.Compiler().compile(component, fresh)
            changed = not (os.path.isfile(destination) and filecmp.cmp(fresh, destination, shallow=False))
            if changed and check and os.path.isfile(destination):
                _check_same_kfp(destination)
            if changed and not check:
                os.makedirs(os.path.dirname(destination), exist_ok=True)
                _copy(fresh, destination)
            results.append(CompiledFile(destination, kind, changed))
    expected = {destination for _, _, _, destination in targets}
    for directory, kind in ((output_dir, "pipeline"), (os.path.join(output_dir, "components"), "component")):
        if os.path.isdir(directory):
            for filename in sorted(os.listdir(directory)):
                path = os.path.join(directory, filename)
                if filename.endswith(".yaml") and not filename.endswith(".lineage.yaml") and path not in expected:
                    results.append(CompiledFile(path, f"stale {kind} (no source)", True))
    return results


@contextlib.contextmanager
def _shipping_settings(shipping: ShippingOptions, components_dir: str) -> Iterator[None]:
    """Sets the component decorators' settings for the compile and makes the packages under `components_dir` be
    imported afresh (their components are built when imported); puts back the environment and modules after."""
    packages = {name for name in (os.listdir(components_dir) if os.path.isdir(components_dir) else ())
                if os.path.isfile(os.path.join(components_dir, name, "__init__.py"))}
    settings = {IMAGE_ENV_VAR: shipping.components_image.strip(), INDEX_ENV_VAR: " ".join(shipping.index_urls)}
    saved_env = {name: os.environ.get(name) for name in settings}
    saved_modules = {name: module for name, module in sys.modules.items() if name.split(".")[0] in packages}
    for name in saved_modules:
        del sys.modules[name]
    for name, value in settings.items():
        if value:
            os.environ[name] = value
        else:
            os.environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for name in [name for name in sys.modules if name.split(".")[0] in packages]:
            del sys.modules[name]
        sys.modules.update(saved_modules)


_SDK_VERSION = re.compile(r"^sdkVersion: kfp-(\S+)\s*$", re.M)


def compiled_with(path: str) -> Optional[str]:
    """The kfp version that compiled the spec at `path` (its top-level `sdkVersion: kfp-X`), or None."""
    try:
        with open(path, encoding="utf-8") as f:
            match = _SDK_VERSION.search(f.read())
    except (OSError, UnicodeDecodeError):
        return None
    return match.group(1) if match else None


def _check_same_kfp(path: str) -> None:
    version = compiled_with(path)
    if version is not None and version != kfp.__version__:
        raise errors.InvalidInputError(
            f"{path} was compiled with kfp {version} and this environment has kfp {kfp.__version__}, so a fresh "
            f"compile differs whatever the source says: check with kfp {version}, or recompile with this kfp "
            "(kfp-lineage compile)"
        )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m kfp_lineage.remote.compiling [--check]`: prints one line per spec, as `kfp-lineage compile` does.

    Returns:
        0; 1 when `--check` finds a stale spec; 2 on invalid input (the message on stderr).
    """
    parser = argparse.ArgumentParser(prog="python -m kfp_lineage.remote.compiling", description=main.__doc__)
    parser.add_argument("--pipelines-dir", default="pipelines")
    parser.add_argument("--components-dir", default="components")
    parser.add_argument("--output-dir", default="specs")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a spec is stale")
    parser.add_argument("--components-image", default="", metavar="IMAGE",
                        help="containerized components running in IMAGE (built by `make image`)")
    parser.add_argument("--index-url", dest="index_urls", action="append", default=[], metavar="URL",
                        help="lightweight components installing the components' wheel from URL (repeatable)")
    options = parser.parse_args(argv)
    shipping = ShippingOptions(options.components_image, tuple(options.index_urls))
    try:
        results = compile_project(options.pipelines_dir, options.components_dir, options.output_dir, options.check,
                                  shipping)
    except errors.InvalidInputError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    for result in results:
        status = ("stale" if options.check else "updated") if result.changed else "up to date"
        print(f"{status:<10} {result.kind:<9} {result.path}  (kfp {kfp.__version__})")
    return 1 if options.check and any(r.changed for r in results) else 0


def _copy(source: str, destination: str) -> None:
    with open(source, "rb") as f:
        data = f.read()
    temporary = destination + ".tmp"
    with open(temporary, "wb") as f:
        f.write(data)
    os.replace(temporary, destination)


if __name__ == "__main__":
    sys.exit(main())
