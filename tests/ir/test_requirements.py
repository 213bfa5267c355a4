"""Reading a compiled task's pip prefix and its image's Python (kfp_lineage.ir.requirements).

The commands below are what kfp 2.13.0 and kfp 2.17.3 compile (kfp/dsl/component_factory.py,
`_get_packages_to_install_command`), copied from specs compiled with each; 2.13 installs kfp first, 2.14+ last.
"""

import pytest

from kfp_lineage.ir import requirements

_ENSUREPIP = ('\nif ! [ -x "$(command -v pip)" ]; then\n    python3 -m ensurepip || python3 -m ensurepip --user || '
              'apt-get install python3-pip\nfi\n\n')
_PIP = "PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip install --quiet --no-warn-script-location "
_KFP_213 = "'kfp==2.13.0' '--no-deps' 'typing-extensions>=3.7.4,<5; python_version<\"3.9\"'"
_KFP_2173 = "'kfp==2.17.3' '--no-deps' 'typing-extensions>=3.7.4,<5; python_version<\"3.9\"'"
_INDEXES = ("--index-url https://pypi.org/simple --extra-index-url https://example.com/simple "
            "--trusted-host https://pypi.org/simple --trusted-host https://example.com/simple ")

KFP_213_PLAIN = _ENSUREPIP + _PIP + _KFP_213 + ' && "$0" "$@"\n'
KFP_213_PACKAGES = (_ENSUREPIP + _PIP + _KFP_213 + "  &&  python3 -m pip install --quiet --no-warn-script-location "
                    "'yapf' 'pandas==2.2.3' && \"$0\" \"$@\"\n")
KFP_213_INDEXES = (_ENSUREPIP + _PIP + _INDEXES + _KFP_213 + "  &&  python3 -m pip install --quiet "
                   "--no-warn-script-location " + _INDEXES + "'yapf' && \"$0\" \"$@\"\n")
KFP_2173_PLAIN = _ENSUREPIP + _PIP + _KFP_2173 + ' && "$0" "$@"\n'
KFP_2173_PACKAGES = (_ENSUREPIP + _PIP + "'yapf' 'pandas==2.2.3'  &&  python3 -m pip install --quiet "
                     "--no-warn-script-location " + _KFP_2173 + ' && "$0" "$@"\n')
KFP_2173_INDEXES = (_ENSUREPIP + _PIP + _INDEXES + "'yapf'  &&  python3 -m pip install --quiet "
                    "--no-warn-script-location " + _INDEXES + _KFP_2173 + ' && "$0" "$@"\n')
KFP_2173_ONE_INDEX_NO_TRUST = (_ENSUREPIP + _PIP + "--index-url https://example.com/simple 'yapf'  &&  python3 -m pip "
                               "install --quiet --no-warn-script-location --index-url https://example.com/simple "
                               + _KFP_2173 + ' && "$0" "$@"\n')
KFP_2173_VENV = (_ENSUREPIP + _PIP + "'yapf'  &&  \nexport PIP_DISABLE_PIP_VERSION_CHECK=1\ntmp=$(mktemp -d)\n"
                 "python3 -m venv \"$tmp/venv\" --system-site-packages\n. \"$tmp/venv/bin/activate\"\n python3 -m pip "
                 "install --quiet --no-warn-script-location " + _KFP_2173 + ' && "$0" "$@"\n')
KFP_2173_FROM_SOURCE = (_ENSUREPIP + _PIP + "'git+https://github.com/kubeflow/pipelines.git@refs/pull/12345/merge"
                        "#subdirectory=sdk/python' '--no-deps' && \"$0\" \"$@\"\n")
KFP_2173_USER_KFP = _ENSUREPIP + _PIP + "'kfp-pipeline-spec' && \"$0\" \"$@\"\n"

PROGRAM = ["sh", "-ec", 'program_path=$(mktemp -d)\n\nprintf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
           '_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path '
           '"$program_path/ephemeral_component.py" "$@"\n', "def comp(): pass\n"]
TYPING = 'typing-extensions>=3.7.4,<5; python_version<"3.9"'
INDEXES = requirements.IndexOptions(
    index_url="https://pypi.org/simple", extra_index_urls=("https://example.com/simple",),
    trusted_hosts=("https://pypi.org/simple", "https://example.com/simple"))


def split(script):
    return requirements.split_pip_prefix(["sh", "-c", script] + PROGRAM)


def test_kfp_213_installs_kfp_first_then_the_packages():
    prefix = split(KFP_213_PACKAGES)
    assert prefix.requirements == ("kfp==2.13.0", TYPING, "yapf", "pandas==2.2.3")
    assert [install.requirements for install in prefix.installs] == [("kfp==2.13.0", TYPING), ("yapf", "pandas==2.2.3")]
    assert [install.no_deps for install in prefix.installs] == [True, False]
    assert prefix.installs[0].index.is_default and prefix.installs[1].index.is_default
    assert prefix.kfp_requirement == "kfp==2.13.0" and prefix.kfp_version == "2.13.0"
    assert prefix.command == tuple(PROGRAM) and not prefix.in_venv


def test_kfp_2173_installs_the_packages_first_then_kfp():
    prefix = split(KFP_2173_PACKAGES)
    assert [install.requirements for install in prefix.installs] == [("yapf", "pandas==2.2.3"), ("kfp==2.17.3", TYPING)]
    assert [install.no_deps for install in prefix.installs] == [False, True]
    assert prefix.requirements == ("yapf", "pandas==2.2.3", "kfp==2.17.3", TYPING)
    assert prefix.kfp_version == "2.17.3"
    assert prefix.command == tuple(PROGRAM)


@pytest.mark.parametrize("script, version", [(KFP_213_PLAIN, "2.13.0"), (KFP_2173_PLAIN, "2.17.3")])
def test_a_component_without_packages_installs_only_kfp(script, version):
    prefix = split(script)
    assert len(prefix.installs) == 1
    assert prefix.installs[0] == requirements.PipInstall(
        requirements=(f"kfp=={version}", TYPING), no_deps=True,
        other_options=("--quiet", "--no-warn-script-location"))
    assert prefix.kfp_version == version


@pytest.mark.parametrize("script, order", [(KFP_213_INDEXES, ["kfp", "yapf"]), (KFP_2173_INDEXES, ["yapf", "kfp"])])
def test_pip_index_urls_become_index_options_of_every_install(script, order):
    prefix = split(script)
    assert [install.requirements[0].split("==")[0] for install in prefix.installs] == order
    assert all(install.index == INDEXES for install in prefix.installs)
    assert prefix.requirements[:1] == ("yapf",) if order[0] == "yapf" else ("kfp==2.13.0",)


def test_an_index_without_trusted_hosts():
    prefix = split(KFP_2173_ONE_INDEX_NO_TRUST)
    assert {install.index for install in prefix.installs} == {
        requirements.IndexOptions(index_url="https://example.com/simple")}


def test_the_use_venv_form_is_read_and_flagged():
    prefix = split(KFP_2173_VENV)
    assert prefix.in_venv
    assert [install.requirements for install in prefix.installs] == [("yapf",), ("kfp==2.17.3", TYPING)]
    assert prefix.command == tuple(PROGRAM)


def test_kfp_from_a_source_url_is_the_kfp_requirement_without_a_version():
    prefix = split(KFP_2173_FROM_SOURCE)
    url = "git+https://github.com/kubeflow/pipelines.git@refs/pull/12345/merge#subdirectory=sdk/python"
    assert prefix.installs == (requirements.PipInstall(requirements=(url,), no_deps=True,
                                                       other_options=("--quiet", "--no-warn-script-location")),)
    assert prefix.kfp_requirement == url and prefix.kfp_version is None
    assert not requirements.is_checkable(url)


def test_a_users_kfp_package_is_not_kfp():
    prefix = split(KFP_2173_USER_KFP)
    assert prefix.requirements == ("kfp-pipeline-spec",)
    assert prefix.kfp_requirement is None


def test_other_index_options_and_inline_values():
    script = ("python3 -m pip install -i https://a.example/simple --extra-index-url=https://b.example/simple "
              "-f /wheels --find-links=/more --no-index --trusted-host a.example --pre -r extra.txt "
              "'kfpl-probe>=1' && \"$0\" \"$@\"")
    (install,) = split(script).installs
    assert install.requirements == ("kfpl-probe>=1",)
    assert install.index == requirements.IndexOptions(
        index_url="https://a.example/simple", extra_index_urls=("https://b.example/simple",),
        trusted_hosts=("a.example",), find_links=("/wheels", "/more"), no_index=True)
    assert install.pre and not install.no_deps
    assert install.other_options == ("-r extra.txt",)


def test_pip_without_python_m_and_semicolons_inside_quotes():
    (install,) = split("pip3 install 'a; python_version<\"3.9\"' b==1 && \"$0\" \"$@\"").installs
    assert install.requirements == ('a; python_version<"3.9"', "b==1")


@pytest.mark.parametrize("command", [
    ["python3", "-c", "print(1)"],
    ["sh", "-c", "echo hello", "x"],
    ["sh", "-c", "pip install yapf && run-something", "prog"],  # does not hand over to "$0" "$@"
    ["sh", "-c", "echo 'pip install yapf' && \"$0\" \"$@\"", "prog"],  # no pip install command, only a word
    ["sh", "-c", "pip install 'unbalanced && \"$0\" \"$@\"", "prog"],
])
def test_commands_without_a_pip_prefix(command):
    assert requirements.split_pip_prefix(command) is None


@pytest.mark.parametrize("image, version", [
    ("python:3.12", "3.12"),
    ("python:3.11-slim", "3.11"),
    ("python:3.9", "3.9"),
    ("python:3.10.13-bookworm", "3.10"),
    ("docker.io/library/python:3.13-alpine", "3.13"),
    ("mirror.gcr.io/library/python:3.12@sha256:abc", "3.12"),
    ("us-docker.pkg.dev/team/images/python-311:latest", "3.11"),
    ("quay.io/org/base-python3.10:2024", "3.10"),
    ("ghcr.io/org/runtime-python-3.12", "3.12"),
    ("gcr.io/deeplearning-platform-release/base-cpu.py310", "3.10"),
    ("us-docker.pkg.dev/vertex-ai/training/tf-cpu.2-17.py310:latest", "3.10"),
    ("gcr.io/deeplearning-platform-release/pytorch-gpu.2-4.py311", "3.11"),
    ("python:3", None),
    ("python:latest", None),
    ("python", None),
    ("alpine:3.19", None),
    ("us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-6:latest", None),
    ("gcr.io/ml-pipeline/google-cloud-pipeline-components:2.22.0", None),
    ("pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime", None),
    ("copy2.py310x", None),
])
def test_python_version_for_image(image, version):
    assert requirements.python_version_for_image(image) == version


def test_check_requirements_still_reads_the_runners_environment():
    import importlib.metadata

    click_version = importlib.metadata.version("click")
    problems = requirements.check_requirements(
        ["click", "click==1.0", "kfpl-not-installed", 'never-here; python_version<"3"', "git+https://x/y.git"])
    assert [problem.describe() for problem in problems] == [
        f"click==1.0 (installed: {click_version})", "kfpl-not-installed (not installed)"]


def test_installed_versions_are_remembered_until_a_path_directory_changes(tmp_path, monkeypatch):
    import importlib.metadata
    import os
    import sys

    site = tmp_path / "site"
    (site / "kfpl_probe_dist-1.0.dist-info").mkdir(parents=True)
    (site / "kfpl_probe_dist-1.0.dist-info" / "METADATA").write_text("Name: kfpl-probe-dist\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(site))
    assert requirements.installed_version("kfpl-probe-dist") == "1.0"
    # An upgrade replaces the dist-info directory: the directory's mtime changes, and the new version is read.
    (site / "kfpl_probe_dist-1.0.dist-info").rename(site / "kfpl_probe_dist-2.0.dist-info")
    (site / "kfpl_probe_dist-2.0.dist-info" / "METADATA").write_text("Name: kfpl-probe-dist\nVersion: 2.0\n")
    stat = os.stat(site)
    os.utime(site, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a coarse clock must not hide the change
    assert requirements.installed_version("kfpl-probe-dist") == "2.0"
    sys.path.remove(str(site))
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        requirements.installed_version("kfpl-probe-dist")


def test_a_split_prefix_is_the_same_for_a_list_and_a_tuple_and_cannot_be_changed():
    command = ["sh", "-c", "python3 -m pip install --quiet 'tabulate==0.10.0' && \"$0\" \"$@\"", "sh", "-ec", "x"]
    first = requirements.split_pip_prefix(command)
    assert first == requirements.split_pip_prefix(tuple(command))
    assert first.requirements == ("tabulate==0.10.0",) and first.command == ("sh", "-ec", "x")
    command[2] = "echo"  # the caller's list changing later does not change what was remembered
    assert requirements.split_pip_prefix(command) is None
    assert requirements.split_pip_prefix(tuple(first.command)) is None
