"""Images run from the directory they are built from (kfp_lineage.engine.exec.image_sources, and the decisions
environment_plan makes for them): the Dockerfile's Python and installs, kfp_config.ini, and one-line errors."""

import os

import pytest
from click.testing import CliRunner

from kfp_lineage import cli
from kfp_lineage import errors
from kfp_lineage.engine.exec import environment_plan
from kfp_lineage.engine.exec import image_sources
from kfp_lineage.engine.exec import interpreters

IMAGE = "registry.example/team/trainer:1"
EXECUTOR = ("python3", "-m", "kfp.dsl.executor_main")


def write_source(directory, dockerfile=None, config="[Components]\ntrain = pkg/train.py\n", requirements=None):
    directory.mkdir(exist_ok=True)
    (directory / "Dockerfile").write_text(dockerfile if dockerfile is not None else (
        "# a comment\nFROM --platform=linux/amd64 python:3.11-slim\nWORKDIR /usr/local/src/kfp/components\n"
        "COPY requirements.txt requirements.txt\n"
        "RUN pip install --no-cache-dir \\\n    -r requirements.txt\n"
        "RUN python3 -m pip install --no-cache-dir 'kfp==2.13.0' && rm -rf /tmp/x\nCOPY . .\n"))
    (directory / "requirements.txt").write_text(requirements or "# pins\npandas==3.1.1  # data\n\njoblib==1.6.0\n")
    if config is not None:
        (directory / "kfp_config.ini").write_text(config)
    return str(directory)


def test_the_dockerfile_gives_the_python_and_each_install_with_its_requirement_files(tmp_path):
    source = image_sources.read_image_source(IMAGE, write_source(tmp_path / "src"))

    assert (source.base_image, source.python_version) == ("python:3.11-slim", "3.11")
    assert [install.requirements for install in source.installs] == [("pandas==3.1.1", "joblib==1.6.0"),
                                                                     ("kfp==2.13.0",)]
    assert [install.other_options for install in source.installs] == [("--no-cache-dir",), ("--no-cache-dir",)]
    assert source.components == {"train": str(tmp_path / "src" / "pkg" / "train.py")}


@pytest.mark.parametrize("dockerfile, config, message", [
    (None, None, r"needs kfp_config.ini there .*: cannot read .*kfp_config.ini"),
    ("RUN pip install x\n", "", r"Dockerfile has no FROM line: give it the image's base, e.g. FROM python:3.11-slim"),
    ("FROM ubuntu:24.04\n", "", r"FROM ubuntu:24.04 does not name its Python version: use a base such as"),
])
def test_a_directory_that_cannot_say_what_the_image_holds_is_one_line(tmp_path, dockerfile, config, message):
    directory = write_source(tmp_path / "src", dockerfile=dockerfile, config=config)
    with pytest.raises(errors.InvalidInputError, match=message):
        image_sources.read_image_source(IMAGE, directory)


def test_the_function_a_containerized_component_runs():
    assert image_sources.executor_function(EXECUTOR, ("--executor_input", "{{$}}", "--function_to_execute",
                                                      "train")) == "train"
    assert image_sources.executor_function(EXECUTOR, ("--function_to_execute=evaluate",)) == "evaluate"
    assert image_sources.executor_function(("python3", "train.py"), ("--function_to_execute", "train")) is None


def test_image_source_pairs(tmp_path):
    assert image_sources.parse_image_sources([f"{IMAGE}={tmp_path}"]) == {IMAGE: str(tmp_path)}
    with pytest.raises(errors.InvalidInputError, match=r"^--image-source 'trainer' is not IMAGE=DIR: pass e.g."):
        image_sources.parse_image_sources(["trainer"])
    with pytest.raises(errors.InvalidInputError, match=r"is not a directory: pass the directory the image is built"):
        image_sources.parse_image_sources([f"{IMAGE}={tmp_path / 'missing'}"])


def test_the_source_digest_changes_with_the_code_and_not_with_caches(tmp_path):
    directory = write_source(tmp_path / "src")
    before = image_sources.source_digest(directory)
    (tmp_path / "src" / "__pycache__").mkdir()
    (tmp_path / "src" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert image_sources.source_digest(directory) == before
    (tmp_path / "src" / "requirements.txt").write_text("pandas==3.1.1\n")
    assert image_sources.source_digest(directory) != before


def _task(label, command, args=(), image=IMAGE):
    return environment_plan.TaskRequest(label, f"exec-{label}", image, tuple(command), tuple(args))


def test_a_mapped_image_runs_isolated_in_every_mode_with_its_module_path(tmp_path):
    directory = write_source(tmp_path / "src")
    task = _task("train", EXECUTOR, ("--executor_input", "{{$}}", "--function_to_execute", "train"))
    runner = interpreters.runner_interpreter()
    for mode in environment_plan.MODES:
        plan = environment_plan.plan_environments([task], mode, image_sources={IMAGE: directory},
                                                  find_interpreter=lambda version: runner)
        decision = plan.decisions["exec-train"]
        assert decision.kind == environment_plan.ISOLATED
        assert decision.reason == f"image {IMAGE!r} built from {directory}"
        assert decision.arguments == ("--component_module_path", os.path.join(directory, "pkg", "train.py"))
        assert [install.requirements for install in decision.spec.installs] == [
            ("pandas==3.1.1", "joblib==1.6.0"), ("kfp==2.13.0",)]


def test_a_mapping_that_cannot_apply_is_refused_or_noted(tmp_path):
    directory = write_source(tmp_path / "src")
    not_python = _task("echo", ("echo", "hi"))
    with pytest.raises(errors.InvalidInputError, match=r"^task 'echo' runs image .*, but its command is not "
                                                       r"`python3 -m kfp.dsl.executor_main`: only containerized"):
        environment_plan.plan_environments([not_python], "auto", image_sources={IMAGE: directory})
    unlisted = _task("evaluate", EXECUTOR, ("--function_to_execute", "evaluate"))
    with pytest.raises(errors.InvalidInputError, match=r"kfp_config.ini does not list it: add `evaluate = <file>.py`"):
        environment_plan.plan_environments([unlisted], "auto", image_sources={IMAGE: directory})
    plan = environment_plan.plan_environments([_task("echo", ("echo", "hi"), image="alpine")], "auto",
                                              image_sources={IMAGE: directory})
    assert plan.notices[-1] == f"--image-source {IMAGE}: no task of this pipeline runs that image"


def test_the_run_command_refuses_a_bad_mapping_or_find_links_before_running(tmp_path):
    spec = os.path.join(os.path.dirname(__file__), "..", "..", "..", "specs", "training.yaml")
    for option, message in ((["--image-source", "nope"], "Error: --image-source 'nope' is not IMAGE=DIR"),
                            (["--find-links", str(tmp_path / "missing")], "is not a directory: pass a directory of "
                                                                          "wheels or a URL")):
        result = CliRunner().invoke(cli.main, ["run", spec, "--store", str(tmp_path / "s.sqlite")] + option)
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert not (tmp_path / "s.sqlite").exists()
