"""Every command against a KFP cluster's metadata service: `run` records into it, `check`, `trace`, `runs`, `show`,
`impact`, `expect` and `verify` read it, as they read the same store embedded; an unreachable or silent service
is one line and exit 2 (tests/standins/mlmd_grpc.py serves ml-metadata's gRPC API from a real SQLite store)."""

import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from kfp_lineage import cli
from tests import readme_examples
from tests.standins.mlmd_grpc import LOOPBACK, MlmdGrpcStandIn, silent_server, unused_port

pytest_plugins = ["tests.standins.fixtures"]
pytestmark = pytest.mark.usefixtures("grpc_to_loopback")

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TRAINING = os.path.join(REPO, "specs", "training.yaml")
TRAINING_LINEAGE = os.path.join(REPO, "specs", "training.lineage.yaml")
DATA = os.path.join(REPO, "data", "breast_cancer.csv")
KFP_LINEAGE = os.path.join(os.path.dirname(sys.executable), "kfp-lineage")
READS = [
    ["runs"],
    ["show", "training-grpc"],
    ["show", "latest/train/model"],
    ["trace", "latest/train/model"],
    ["impact", "training-grpc/ingest/train"],
]


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args))


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The metadata service, holding one run of the training pipeline recorded through it by `kfp-lineage run`."""
    tmp = tmp_path_factory.mktemp("grpc-cli")
    with MlmdGrpcStandIn(str(tmp / "mlmd.sqlite")) as server:
        completed = subprocess.run(
            [KFP_LINEAGE, "run", TRAINING, "--store", server.url, "--run-id", "training-grpc",
             "--param", f"source_uri={DATA}", "--param", "code_version=abc123",
             "--pipeline-root", str(tmp / "root")],
            cwd=tmp, capture_output=True, text=True, timeout=300, env={**os.environ, "no_grpc_proxy": LOOPBACK},
        )
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout == "COMPLETE run training-grpc\n"
        yield server


def test_a_run_recorded_through_grpc_passes_its_lineage_spec(service):
    result = invoke("check", TRAINING_LINEAGE, "--store", service.url)
    assert result.exit_code == 0, result.output
    assert result.output == (f"OK run training-grpc of pipeline training matches {TRAINING_LINEAGE}: "
                             "9 tasks, 15 events\n")
    assert invoke("expect", "latest", "--store", service.url).output == \
        invoke("expect", "latest", "--store", service.sqlite_path).output


@pytest.mark.parametrize("args", READS, ids=[" ".join(a) for a in READS])
def test_reads_over_grpc_print_what_the_embedded_store_prints(service, args):
    over_grpc = invoke(*args, "--json", "--store", service.url)
    embedded = invoke(*args, "--json", "--store", service.sqlite_path)
    assert over_grpc.exit_code == embedded.exit_code == 0, over_grpc.output
    assert over_grpc.output == embedded.output
    assert invoke(*args, "--store", service.url).output == invoke(*args, "--store", service.sqlite_path).output


def test_verify_rehashes_the_artifacts_a_grpc_store_records(service):
    result = invoke("verify", "training-grpc", "--store", service.url)
    assert result.exit_code == 0, result.output
    states = [line.split("  ")[0] for line in result.output.splitlines()]
    # 4 outputs and the 5 tasks' executor-logs have a sha256; the metrics record none
    assert states.count("ok") == 4 + 5 and states.count("no digest recorded") == 3
    assert result.output == invoke("verify", "training-grpc", "--store", service.sqlite_path).output


COMMANDS = [["runs"], ["show", "latest"], ["trace", "latest/train/model"], ["impact", "1"], ["expect", "latest"],
            ["check", TRAINING_LINEAGE], ["verify", "latest"], ["recover"]]


@pytest.mark.parametrize("args", COMMANDS, ids=[a[0] for a in COMMANDS])
def test_nothing_listening_is_one_line_and_exit_2(args):
    url = f"grpc://127.0.0.1:{unused_port()}"
    result = invoke(*args, "--store", url)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: cannot reach the metadata store {url} (GetContextTypes: ")
    assert result.output.count("\n") == 1


def test_run_refuses_an_unreachable_store_before_any_task_runs(tmp_path):
    url = f"grpc://127.0.0.1:{unused_port()}"
    completed = subprocess.run([KFP_LINEAGE, "run", TRAINING, "--store", url], cwd=tmp_path, capture_output=True,
                               text=True, timeout=120, env={**os.environ, "no_grpc_proxy": LOOPBACK})
    assert completed.returncode == 2
    errors = [line for line in completed.stderr.splitlines() if not line.startswith("[")]  # not progress lines
    assert len(errors) == 1 and errors[0].startswith(f"Error: cannot reach the metadata store {url} ")
    assert "Traceback" not in completed.stderr
    assert not os.path.exists(tmp_path / ".kfp-lineage" / "pipeline-root")


def test_a_silent_service_times_out_in_one_line_instead_of_hanging():
    with silent_server() as address:
        started = time.monotonic()
        completed = subprocess.run([KFP_LINEAGE, "show", "latest", "--store", f"grpc://{address}?timeout=1"],
                                   capture_output=True, text=True, timeout=60,
                                   env={**os.environ, "no_grpc_proxy": LOOPBACK})
        elapsed = time.monotonic() - started
    assert completed.returncode == 2 and elapsed < 30
    assert completed.stderr.startswith(f"Error: got no answer in time from the metadata store grpc://{address}"
                                       "?timeout=1 (GetContextTypes: Deadline Exceeded): ")
    assert completed.stderr.count("\n") == 1


def test_the_readme_shows_real_output_of_a_grpc_store(service, tmp_path):
    transcripts = [(args, printed) for args, printed in readme_examples.transcripts("Checking a run on Kubeflow or Vertex AI")
                   if "--store" in args]
    [(runs, runs_printed), (check, check_printed), (refused, refused_printed)] = transcripts
    assert runs == ["runs", "--store", "grpc://localhost:8080"]
    assert runs_printed[0].split() == ["RUN", "PIPELINE", "STATE", "STARTED", "DURATION", "TASKS"]
    run_id = runs_printed[1].split()[0]
    port = service.url.rsplit(":", 1)[1]
    local = {"grpc://localhost:8080": f"grpc://localhost:{port}", "specs/training.lineage.yaml": TRAINING_LINEAGE}
    result = invoke(*[local.get(a, a) for a in check])
    assert result.exit_code == 0
    assert result.output.replace("training-grpc", run_id).replace(TRAINING_LINEAGE, "specs/training.lineage.yaml") \
        .splitlines() == check_printed
    port = unused_port()
    result = invoke(*[a.replace("localhost:8080", f"localhost:{port}") for a in refused])
    assert result.exit_code == 2
    assert result.output.replace(str(port), "8080").splitlines() == refused_printed
