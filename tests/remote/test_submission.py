"""kfp_lineage.remote.submission: offline argument checks, bounded retries, deadlines, following a run; `submit` input errors."""

import os
import threading

import pytest
from click.testing import CliRunner

from kfp_lineage import cli, errors
from kfp_lineage.ir import spec
from kfp_lineage.remote import submission as submit

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TRAINING = os.path.join(REPO, "specs", "training.yaml")


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def training():
    return spec.load_pipeline(TRAINING)


class Flaky(Exception):
    pass


def test_retry_waits_with_growing_bounded_delays_then_succeeds(monkeypatch):
    monkeypatch.setattr(submit.random, "uniform", lambda low, high: high)  # no jitter, to compare delays
    calls, slept = [], []

    def call():
        calls.append(1)
        if len(calls) < 4:
            raise Flaky("429")
        return "ok"

    policy = submit.RetryPolicy(attempts=5, initial_delay=1.0, max_delay=3.0, multiplier=2.0)
    assert submit.call_with_retry(call, lambda e: isinstance(e, Flaky), policy, sleep=slept.append) == "ok"
    assert slept == [1.0, 2.0, 3.0]
    assert len(calls) == 4


def test_retry_gives_up_after_the_last_attempt_and_never_retries_other_errors():
    slept = []
    with pytest.raises(Flaky):
        submit.call_with_retry(lambda: (_ for _ in ()).throw(Flaky("429")), lambda e: True,
                               submit.RetryPolicy(attempts=3, initial_delay=0.01), sleep=slept.append)
    assert len(slept) == 2
    slept.clear()
    with pytest.raises(KeyError):
        submit.call_with_retry(lambda: {}["x"], lambda e: isinstance(e, Flaky), submit.RetryPolicy(), slept.append)
    assert slept == []


def test_jitter_only_shortens_a_delay():
    delays = list(submit.RetryPolicy(attempts=6, initial_delay=1.0, max_delay=4.0).delays())
    assert len(delays) == 5
    assert all(0.5 * bound <= d <= bound for d, bound in zip(delays, [1.0, 2.0, 4.0, 4.0, 4.0]))


def test_deadline_returns_values_and_reraises_errors_from_the_call():
    assert submit.call_with_deadline(lambda: 42, 5, "call") == 42
    with pytest.raises(Flaky):
        submit.call_with_deadline(lambda: (_ for _ in ()).throw(Flaky("boom")), 5, "call")


def test_deadline_abandons_a_call_that_does_not_answer():
    release = threading.Event()
    with pytest.raises(errors.RemoteError) as excinfo:
        submit.call_with_deadline(lambda: release.wait(10), 0.2, "KFP API at http://127.0.0.1:1")
    release.set()
    assert str(excinfo.value) == (
        "KFP API at http://127.0.0.1:1: no answer within 0.2 s: check that the server is up and reachable, then retry"
    )


def test_arguments_are_checked_offline_and_only_given_ones_are_sent(training):
    assert submit.prepare_arguments(training, {"threshold": "0.5", "project": "p"}) == {"threshold": 0.5,
                                                                                       "project": "p"}
    with pytest.raises(errors.InvalidInputError) as excinfo:
        submit.prepare_arguments(training, {"treshold": "0.5"})
    assert str(excinfo.value).startswith("unknown parameter 'treshold': did you mean 'threshold'? this pipeline takes code_version, ")
    with pytest.raises(errors.InvalidInputError) as excinfo:
        submit.prepare_arguments(training, {"threshold": "high"})
    assert str(excinfo.value) == "parameter 'threshold' expects float, got 'high': pass --param threshold=<float>"


def test_follow_run_reports_each_new_state_once_and_stops_at_a_terminal_one():
    states = iter(["PENDING", "RUNNING", "RUNNING", "SUCCEEDED"])
    seen, slept = [], []

    def fetch():
        return submit.RemoteRun("kfp", "r1", "r1", "http://ui/#/runs/details/r1", next(states))

    final = submit.follow_run(fetch, {"SUCCEEDED", "FAILED"}.__contains__, 0.5, lambda r: seen.append(r.state),
                              sleep=slept.append)
    assert final.state == "SUCCEEDED" and final.succeeded
    assert seen == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert slept == [0.5, 0.5, 0.5]


# --- the command's input checks: exit 2, one line, nothing sent ------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "Error: say where to submit: pass --vertex (with --project and --pipeline-root) or --kfp-host URL, "
             "not both"),
        (["--vertex", "--kfp-host", "http://h"], "Error: say where to submit"),
        (["--vertex", "--pipeline-root", "gs://my-bucket/r"],
         "Error: --project is required with --vertex: pass your Google Cloud project ID, e.g. --project my-project"),
        (["--vertex", "--project", "p-123456"],
         "Error: --pipeline-root is required with --vertex: pass a gs:// directory the job may write, "
         "e.g. --pipeline-root gs://my-bucket/pipeline-root"),
        (["--vertex", "--project", "p-123456", "--pipeline-root", "/tmp/root"],
         "Error: pipeline root '/tmp/root' is not a gs:// URI: Vertex AI writes artifacts to Cloud Storage, "
         "pass e.g. --pipeline-root gs://my-bucket/pipeline-root"),
        (["--vertex", "--project", "p-123456", "--pipeline-root", "gs://b/r"],
         "Error: pipeline root 'gs://b/r' does not start with a bucket name: bucket names are 3 to 63 lowercase "
         "letters, digits, '-', '_' or '.', e.g. gs://my-bucket/pipeline-root"),
        (["--vertex", "--project", "My Project", "--pipeline-root", "gs://my-bucket/r"],
         "Error: project 'My Project' is not a Google Cloud project ID: pass the ID (e.g. my-project-123), "
         "not the display name"),
        (["--vertex", "--project", "p-123456", "--location", "Iowa", "--pipeline-root", "gs://my-bucket/r"],
         "Error: location 'Iowa' is not a Vertex AI region: pass e.g. --location us-central1"),
        (["--vertex", "--project", "p-123456", "--pipeline-root", "gs://my-bucket/r", "--param", "treshold=1"],
         "Error: unknown parameter 'treshold': did you mean 'threshold'? this pipeline takes "),
        (["--vertex", "--project", "p-123456", "--pipeline-root", "gs://my-bucket/r", "--param", "threshold=high"],
         "Error: parameter 'threshold' expects float, got 'high': pass --param threshold=<float>"),
        (["--vertex", "--project", "p-123456", "--pipeline-root", "gs://my-bucket/r", "--job-id", "Run_1"],
         "Error: job ID 'Run_1' is not allowed on Vertex AI: use lowercase letters, digits and '-', "
         "starting with a letter (at most 128)"),
        (["--vertex", "--project", "p-123456", "--pipeline-root", "gs://my-bucket/r", "--label", "Team=ML"],
         "Error: label key 'Team' is not allowed: use at most 63 lowercase letters, digits, '_' or '-', "
         "starting with a letter"),
        (["--vertex", "--project", "p-123456", "--pipeline-root", "gs://my-bucket/r", "--label", "team"],
         "Error: --label 'team' is not KEY=VALUE: write e.g. --label team=ml"),
        (["--vertex", "--project", "p-123456", "--pipeline-root", "gs://my-bucket/r", "--experiment", "exp"],
         "Error: --experiment applies only with --kfp-host: drop it, or submit with --kfp-host"),
        (["--kfp-host", "http://h", "--label", "a=b"],
         "Error: --label applies only with --vertex: drop it, or submit with --vertex"),
        (["--kfp-host", "localhost:8080"],
         "Error: KFP host 'localhost:8080' is not an http(s):// URL: pass e.g. --kfp-host http://localhost:8080"),
        (["--kfp-host", "http://h", "--param", "threshold=high"],
         "Error: parameter 'threshold' expects float, got 'high'"),
    ],
    ids=["no-backend", "two-backends", "no-project", "no-root", "local-root", "bad-bucket", "bad-project",
         "bad-location",
         "unknown-param", "bad-param", "bad-job-id", "bad-label", "label-not-pair", "experiment-on-vertex",
         "label-on-kfp", "kfp-host-without-scheme", "kfp-bad-param"],
)
def test_bad_input_exits_2_with_one_line_before_any_request(args, message):
    result = invoke("submit", TRAINING, "--dry-run", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_bad_spec_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("{not: yaml: at all")
    result = invoke("submit", str(bad), "--kfp-host", "http://127.0.0.1:1")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: pipeline spec {bad} is not valid YAML")


def test_submit_help_has_an_example():
    result = invoke("submit", "--help")
    assert result.exit_code == 0
    assert "kfp-lineage submit specs/training.yaml --vertex" in result.output
    assert "kfp-lineage submit specs/training.yaml --kfp-host" in result.output
