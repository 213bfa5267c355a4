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
    spec_path = tmp_path / "fan.yaml"
    compiler.Compiler().compile(pipelines.fan_out_in, str(spec_path))
    runners = [
        subprocess.Popen([KFP_LINEAGE, "run", str(spec_path), "--store", url, "--run-id", f"run-{i}", "--no-cache",
                          "--pipeline-root", str(tmp_path / "root"), "--max-parallel", "2"],
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
        assert len([e for e in view.events if e.type == mlmd_pb.Event.OUTPUT]) == 3
        assert len([e for e in view.events if e.type == mlmd_pb.Event.INPUT]) == 4
    assert len(store.get_artifacts()) == 3 * RUNS
