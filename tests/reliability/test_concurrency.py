"""Eight runs at once against one store (SQLite file, MariaDB, PostgreSQL): none fails, every record complete."""

import os
import subprocess
import sys

import pytest
from kfp import compiler
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from tests import conftest
from tests.fixtures import pipelines
from tests.mlmd_view import RunView

KFP_LINEAGE = os.path.join(os.path.dirname(sys.executable), "kfp-lineage")
RUNS = 8


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "mysql", "postgresql"])
def test_eight_concurrent_runs_on_one_fresh_store(tmp_path, kind):
    url = str(tmp_path / "mlmd.sqlite") if kind == "sqlite" else conftest.fresh_database_url(kind)
    run_eight_at_once(_compile_fan_out_in(tmp_path), url, tmp_path / "root")


# Racing runners on a fresh server database meet deadlocks and schema-creation races that a single round hits only
# now and then (2 runs in 19 failed on MariaDB before transient errors were retried): repeat the round.
SOAK_ROUNDS = 20


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mysql", "postgresql"])
def test_eight_concurrent_runs_soak(tmp_path, kind):
    spec_path = _compile_fan_out_in(tmp_path)
    for round_number in range(SOAK_ROUNDS):
        url = conftest.fresh_database_url(kind)
        try:
            run_eight_at_once(spec_path, url, tmp_path / "root")
        except AssertionError as e:
            raise AssertionError(f"round {round_number + 1} of {SOAK_ROUNDS}: {e}") from None
        finally:
            conftest.drop_database(url)


def _compile_fan_out_in(tmp_path) -> str:
    spec_path = tmp_path / "fan.yaml"
    compiler.Compiler().compile(pipelines.fan_out_in, str(spec_path))
    return str(spec_path)


def run_eight_at_once(spec_path: str, url: str, pipeline_root) -> None:
    """Starts eight `kfp-lineage run`s of the fan-out-in pipeline on one store at once; asserts every one succeeded
    and recorded all of its run."""
    runners = [
        subprocess.Popen([KFP_LINEAGE, "run", spec_path, "--store", url, "--run-id", f"run-{i}", "--no-cache",
                          "--pipeline-root", str(pipeline_root), "--max-parallel", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(RUNS)
    ]
    outcomes = [(r.wait(timeout=300), r.stderr.read()) for r in runners]
    assert [code for code, _ in outcomes] == [0] * RUNS, [err[-500:] for code, err in outcomes if code]
    assert not any("locked" in err for _, err in outcomes)

    store = conftest.open_store(url)
    assert len(store.get_contexts_by_type("system.PipelineRun")) == RUNS
    assert len(store.get_contexts_by_type("system.Pipeline")) == 1
    for i in range(RUNS):
        view = RunView(store, f"run-{i}")
        assert len(view.executions) == 6  # root + 5 tasks
        assert {mlmd_pb.Execution.State.Name(e.last_known_state) for e in view.executions} == {"COMPLETE"}
        assert len([e for e in view.events if e.type == mlmd_pb.Event.OUTPUT]) == 3 + 5  # and each task's log
        assert len([e for e in view.events if e.type == mlmd_pb.Event.INPUT]) == 4
    assert len(store.get_artifacts()) == (3 + 5) * RUNS
