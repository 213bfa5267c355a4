"""The decorator every component is made with: one source, three ways of getting the package's shared code to the task.

KFP ships only a lightweight component's function source; the helpers it imports (`_data`, `_modeling`, ...) must
reach the task some other way. Chosen when the component is defined, from two compile-time settings that
`kfp-lineage compile --components-image / --index-url` (and `make specs IMAGE=... INDEX_URL=...`) set:

    default          a lightweight component whose source carries the helper modules it imports (embedded as
                     text, imported from memory by a finder first on sys.meta_path): the spec needs only PyPI
                     packages, so it runs as it is on any cluster and locally;
    IMAGE_ENV_VAR    a containerized Python component (`target_image`): the task runs `python3 -m
                     kfp.dsl.executor_main` in an image built from components/ (components/Dockerfile), nothing
                     installed at start-up;
    INDEX_ENV_VAR    a lightweight component that pip-installs the `kfp-lineage-components` wheel from the given
                     index URLs (`pip_index_urls`; the first is pip's --index-url, the others --extra-index-url).

The image wins when both are set.
"""

import os
import re
from typing import Callable, Dict, List, Sequence

from kfp import dsl
from kfp.dsl import base_component

from kfp_lineage_components import _packaging

IMAGE_ENV_VAR = "KFP_LINEAGE_COMPONENTS_IMAGE"
INDEX_ENV_VAR = "KFP_LINEAGE_COMPONENTS_INDEX_URLS"  # whitespace-separated

PACKAGE = "kfp_lineage_components"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_IMPORTED_HELPERS = re.compile(rf"^\s*from {PACKAGE} import ([\w, ]+)$", re.M)


def component(packages: Sequence[str]) -> Callable[[Callable], base_component.BaseComponent]:
    """`@component(PACKAGES)`: the function as a KFP component on _packaging.BASE_IMAGE with `packages` pinned,
    shipped as the settings above say (read when the decorator runs, i.e. when the module is imported)."""

    def decorate(func: Callable) -> base_component.BaseComponent:
        image = os.environ.get(IMAGE_ENV_VAR, "").strip()
        index_urls = os.environ.get(INDEX_ENV_VAR, "").split()
        if image:
            # No packages_to_install: the image has them (requirements.txt), and kfp 2.13 would still compile a
            # pip install for them in front of the executor.
            return dsl.component(func, base_image=_packaging.BASE_IMAGE, target_image=image)
        if index_urls:
            return dsl.component(func, base_image=_packaging.BASE_IMAGE, pip_index_urls=index_urls,
                                 packages_to_install=list(packages) + [_packaging.COMPONENTS_REQUIREMENT])
        built = dsl.component(func, base_image=_packaging.BASE_IMAGE, packages_to_install=list(packages))
        command = built.component_spec.implementation.container.command
        command[-1] = embed_helpers(command[-1], func.__name__)  # [pip prefix..., "sh", "-ec", launcher, source]
        return built

    return decorate


def helper_modules(source: str) -> List[str]:
    """The package's modules `source` imports (`from kfp_lineage_components import _data`), with the modules those
    import in turn, sorted: what a task running `source` needs of the package."""
    needed: List[str] = []
    pending = [name.strip() for group in _IMPORTED_HELPERS.findall(source) for name in group.split(",")]
    while pending:
        name = pending.pop()
        if name and name not in needed:
            needed.append(name)
            pending += [n.strip() for group in _IMPORTED_HELPERS.findall(_read_module(name)) for n in group.split(",")]
    return sorted(needed)


def embed_helpers(source: str, function_name: str) -> str:
    """The component source with the helper modules it needs put in front of its function, served from memory by
    an import finder first on sys.meta_path: the function's `from kfp_lineage_components import ...` gets them
    whatever the image holds, and nothing is written to disk. Deterministic (the modules as Python string literals,
    sorted), so recompiling unchanged code gives the same spec."""
    modules: Dict[str, str] = {PACKAGE: _read_module("__init__")}
    for name in helper_modules(source):
        modules[f"{PACKAGE}.{name}"] = _read_module(name)
    entries = "".join(f"        {name!r}: {text!r},\n" for name, text in sorted(modules.items()))
    block = (
        f"# The {PACKAGE} modules this component imports, embedded when it was compiled (kfp-lineage-components"
        f" {_packaging.COMPONENTS_VERSION}).\n"
        "def _kfp_lineage_components_embedded():\n"
        "    import importlib.abc, importlib.util, sys\n"
        "    sources = {\n"
        f"{entries}"
        "    }\n"
        "\n"
        "    class EmbeddedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):\n"
        "        def find_spec(self, name, path=None, target=None):\n"
        "            if name not in sources:\n"
        "                return None\n"
        f"            return importlib.util.spec_from_loader(name, self, is_package=name == {PACKAGE!r})\n"
        "\n"
        "        def create_module(self, spec):\n"
        "            return None\n"
        "\n"
        "        def exec_module(self, module):\n"
        "            # A file name linecache cannot open, so tracebacks show lines from get_source.\n"
        "            filename = '<embedded>/' + module.__name__.replace('.', '/') + '.py'\n"
        "            exec(compile(sources[module.__name__], filename, 'exec'), module.__dict__)\n"
        "\n"
        "        def get_source(self, name):\n"
        "            return sources[name]\n"
        "\n"
        "    sys.meta_path.insert(0, EmbeddedModules())\n"
        "\n"
        "\n"
        "_kfp_lineage_components_embedded()\n"
        "\n"
        "\n"
    )
    marker = f"def {function_name}("
    at = source.index(marker)
    return source[:at] + block + source[at:]


def _read_module(name: str) -> str:
    path = os.path.join(_PACKAGE_DIR, f"{name}.py")
    if not os.path.isfile(path):
        raise ValueError(f"{PACKAGE} has no module {name!r} ({path}): fix the import in the component")
    with open(path, encoding="utf-8") as handle:
        return handle.read()
