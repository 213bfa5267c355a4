"""The README's Python examples run as written.

Every ```python block of README.md runs, unless the line before its fence is an HTML comment starting
`<!-- not run:` that says why (kept to a few). Blocks run in order, in a scratch directory that has the
repository's specs/ and data/, as a reader copying them into a file at the repository root would; a block that
defines `test_` functions runs under pytest, with the kfp-lineage plugin as any project gets it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from typing import List

import pytest
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from tests import conftest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")
NOT_RUN = "<!-- not run:"
MAX_NOT_RUN = 2


@dataclasses.dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    code: str
    not_run: bool

    @property
    def defines_tests(self) -> bool:
        return re.search(r"^def test_", self.code, re.MULTILINE) is not None


def python_blocks(path: str = README) -> List[Block]:
    """The ```python blocks of a Markdown file, each with whether it is marked not to run."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks, index = [], 0
    while index < len(lines):
        if lines[index].strip() == "```python":
            start = index
            index += 1
            body = []
            while lines[index].strip() != "```":
                body.append(lines[index])
                index += 1
            before = [line for line in lines[:start] if line.strip()]
            marked = bool(before) and before[-1].strip().startswith(NOT_RUN)
            blocks.append(Block(line=start + 1, code="\n".join(body) + "\n", not_run=marked))
        index += 1
    return blocks


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A scratch directory with the repository's specs/ and data/, as the working directory."""
    for name in ("specs", "data"):
        os.symlink(os.path.join(REPO, name), tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_only_a_few_readme_blocks_are_marked_not_to_run():
    blocks = python_blocks()
    assert len(blocks) >= 4
    assert sum(b.not_run for b in blocks) <= MAX_NOT_RUN


def test_the_marker_is_read_from_the_line_before_the_fence(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("intro\n\n<!-- not run: needs a cluster -->\n```python\nboom()\n```\n\ntext\n\n"
                    "```python\nprint(1)\n```\n")
    assert python_blocks(str(page)) == [Block(4, "boom()\n", True), Block(10, "print(1)\n", False)]


def test_readme_examples_run_in_order(workdir, capsys):
    for block in python_blocks():
        if not block.not_run and not block.defines_tests:
            run_block(block)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2  # run_pipeline's state and model; which data trained the model
    state, model_uri = printed[0].split(" ", 1)
    assert state == "COMPLETE" and re.search(r"/train/[0-9a-f-]+/model$", model_uri)
    assert re.fullmatch(r"\['/\S+/ingest/[0-9a-f-]+/train'\]", printed[1])


TINY = """from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output


@dsl.component
def make_data(data: Output[Dataset]):
    with open(data.path, "w") as f:
        f.write("x,y\\n1,2\\n")


@dsl.component
def train(data: Input[Dataset], model: Output[Model]):
    with open(data.path) as source, open(model.path, "w") as f:
        f.write(source.read())


@dsl.pipeline
def tiny():
    train(data=make_data().outputs["data"])
"""


def test_which_data_trained_this_model_answers_for_a_model_served_from_the_cache(workdir, capsys):
    from kfp_lineage import run_pipeline

    (workdir / "tiny.py").write_text(TINY)
    first = run_pipeline("tiny.py", store="sqlite:///mlmd.sqlite")
    second = run_pipeline("tiny.py", store="sqlite:///mlmd.sqlite")
    assert (first.tasks["train"].state, second.tasks["train"].state) == ("COMPLETE", "CACHED")
    # The model now has two OUTPUT events: from the COMPLETE execution and from the CACHED one.
    store = conftest.open_store(str(workdir / "mlmd.sqlite"))
    [model] = store.get_artifacts_by_type("system.Model")
    producers = [e.execution_id for e in store.get_events_by_artifact_ids([model.id])
                 if e.type == mlmd_pb.Event.OUTPUT]
    states = sorted(mlmd_pb.Execution.State.Name(x.last_known_state) for x in store.get_executions_by_id(producers))
    assert states == ["CACHED", "COMPLETE"]

    [snippet] = [b for b in python_blocks() if 'get_artifacts_by_type("system.Model")' in b.code]
    run_block(snippet)
    assert capsys.readouterr().out == f"[{first.tasks['make-data'].outputs['data']['uri']!r}]\n"


def run_block(block: Block) -> None:
    exec(compile(block.code, f"README.md:{block.line}", "exec"), {"__name__": "__readme__"})


def test_readme_pytest_example_passes_under_the_plugin(workdir):
    [block] = [b for b in python_blocks() if not b.not_run and b.defines_tests]
    (workdir / "test_example.py").write_text(block.code)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"],
                          cwd=workdir, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout
