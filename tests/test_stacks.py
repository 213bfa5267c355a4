"""The two dependency stacks: pyproject ranges, the locks in constraints/, the stack `make setup` picks."""

import ast
import importlib.metadata
import os
import pathlib
import subprocess
import sys

import pytest
from packaging import requirements, version

try:
    import tomllib
except ImportError:  # Python 3.10; tomli is in both locks there
    import tomli as tomllib

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "constraints"))
import stack as stack_module  # noqa: E402  (constraints/stack.py: a script, not a package)

sys.path.remove(str(REPO / "constraints"))

# stack -> (Pythons it claims, sys_platform values it claims)
CLAIMS = {"current": (("3.10", "3.11", "3.12", "3.13"), ("linux", "darwin")), "legacy": (("3.10", "3.11"), ("linux",))}


def project(path="pyproject.toml"):
    return tomllib.loads((REPO / path).read_text())["project"]


def lock(stack, python, platform="linux"):
    """name -> version of the lock's lines that apply on `python` and `platform`."""
    found = {}
    for line in (REPO / "constraints" / f"{stack}.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = requirements.Requirement(line)
            environment = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": platform}
            if requirement.marker is None or requirement.marker.evaluate(environment):
                name = requirement.name.lower().replace("_", "-")
                assert name not in found, f"{stack}.txt pins {name} twice on Python {python} {platform}"
                [pin] = requirement.specifier
                found[name] = pin.version
    return found


def declared():
    """Every requirement pyproject.toml and components/pyproject.toml declare, extras included (ours left out)."""
    found = []
    for path in ("pyproject.toml", "components/pyproject.toml"):
        data = project(path)
        for text in data["dependencies"] + [r for extra in data["optional-dependencies"].values() for r in extra]:
            requirement = requirements.Requirement(text)
            if not requirement.name.startswith("kfp-lineage"):
                found.append(requirement)
    return found


@pytest.mark.parametrize("stack", sorted(CLAIMS))
def test_each_lock_pins_every_declared_requirement_inside_its_range_on_every_python_it_claims(stack):
    pythons, platforms = CLAIMS[stack]
    for python in pythons:
        for platform in platforms:
            pins = lock(stack, python, platform)
            for requirement in declared():
                name = requirement.name.lower().replace("_", "-")
                assert name in pins, f"{stack}.txt has no pin of {name} for Python {python} {platform}"
                assert requirement.specifier.contains(pins[name]), (stack, python, name, pins[name])


def test_the_stacks_are_what_the_readme_says():
    for python in CLAIMS["current"][0]:
        pins = lock("current", python)
        assert (pins["kfp"], pins["ml-metadata"], pins["kfp-pipeline-spec"]) == ("2.17.3", "1.21.0", "2.17.3")
        assert pins["protobuf"].startswith("6.")
    for python in CLAIMS["legacy"][0]:
        pins = lock("legacy", python)
        assert (pins["kfp"], pins["ml-metadata"], pins["protobuf"]) == ("2.13.0", "1.17.1", "4.25.9")
    # numpy 2.3+ and pandas 3 need Python 3.11: Python 3.10 gets its own pins rather than a broken claim.
    assert version.Version(lock("legacy", "3.10")["numpy"]) < version.Version("2.3")
    assert lock("legacy", "3.11")["numpy"] == lock("current", "3.11")["numpy"]


def test_requires_python_covers_exactly_the_claimed_pythons():
    for path in ("pyproject.toml", "components/pyproject.toml"):
        allowed = requirements.Requirement(f"x{project(path)['requires-python']}").specifier
        claimed = set(CLAIMS["current"][0]) | set(CLAIMS["legacy"][0])
        assert {p for p in ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14") if allowed.contains(f"{p}.0")} == claimed


def test_installing_the_tool_brings_no_component_dependency():
    core = {requirements.Requirement(r).name.lower() for r in project()["dependencies"]}
    assert not core & {"pandas", "pyarrow", "scikit-learn", "numpy", "kfp-lineage-components",
                       "google-cloud-pipeline-components"}
    assert project()["optional-dependencies"]["components"] == ["kfp-lineage-components[gcp]>=0.1,<0.2"]


def test_this_environment_was_installed_from_a_lock():
    python = "%d.%d" % sys.version_info[:2]
    installed = {name: importlib.metadata.version(name) for name in ("kfp", "ml-metadata", "protobuf")}
    matches = [stack for stack in CLAIMS if python in CLAIMS[stack][0]
               and all(lock(stack, python)[name] == installed[name] for name in installed)]
    assert matches, f"kfp, ml-metadata and protobuf {installed} match no lock for Python {python}: run make setup"


def info(version="3.11", system="Linux", machine="x86_64", libc=("glibc", "2.36"), implementation="CPython"):
    return {"version": version, "full": version + ".7", "implementation": implementation, "system": system,
            "machine": machine, "libc": libc}


@pytest.mark.parametrize("probe, expected", [
    (info(), (False, "ml-metadata 1.21 needs glibc >= 2.39, this machine has glibc 2.36")),
    (info(libc=("glibc", "2.39")), (True, "glibc 2.39 x86_64")),
    (info(version="3.13", libc=("glibc", "2.41")), (True, "glibc 2.41 x86_64")),
    (info(version="3.14", libc=("glibc", "2.41")), (False, "ml-metadata 1.21 has wheels for CPython 3.10-3.13, not "
                                                          "CPython 3.14")),
    (info(system="Darwin", machine="arm64", libc=("", "")), (True, "macOS arm64")),
    (info(system="Darwin", machine="x86_64", libc=("", "")), (False, "ml-metadata 1.21 has macOS wheels for arm64 "
                                                                     "only, this Mac is x86_64")),
    (info(machine="aarch64", libc=("glibc", "2.39")), (False, "ml-metadata 1.21 has no wheel for Linux aarch64")),
    (info(libc=("", "")), (False, "ml-metadata 1.21 needs glibc >= 2.39, this machine has no glibc")),
])
def test_the_current_stack_is_picked_where_ml_metadata_1_21_has_a_wheel(probe, expected):
    assert stack_module.current_stack_installs(probe) == expected


def test_the_stack_script_names_this_interpreter_and_a_stack():
    result = subprocess.run([sys.executable, str(REPO / "constraints" / "stack.py"), "--python", sys.executable],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    picked, python, reason = result.stdout.split(" ", 2)
    assert picked in CLAIMS and python == sys.executable and reason.startswith(f"Python {sys.version.split()[0]}")
    refused = subprocess.run([sys.executable, str(REPO / "constraints" / "stack.py"), "--python", "/nonexistent"],
                             capture_output=True, text=True)
    assert (refused.returncode, refused.stderr) == (
        2, "error: cannot run /nonexistent: pass PYTHON=path/to/python3.X\n")


def test_no_code_calls_filter_query():
    """ml-metadata 1.21 removed filter_query (ZetaSQL): the shipped code must never need it."""
    offenders = []
    for root in ("kfp_lineage", "components", "pipelines"):
        for path in sorted((REPO / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                named = (isinstance(node, ast.Attribute) and node.attr == "filter_query") or (
                    isinstance(node, ast.keyword) and node.arg == "filter_query")
                if named:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}" if hasattr(node, "lineno")
                                     else str(path.relative_to(REPO)))
    assert not offenders, f"filter_query is gone in ml-metadata 1.21: {offenders}"
