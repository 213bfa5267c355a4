"""The `executor-logs` artifact of every launched container, as KFP 2.17 publishes it (PUBLISH_LOGS): one per
attempt at `<task dir>/executor-logs-<retry index>`, failed attempts included, secrets scrubbed; a cache hit points
at the original's. Real runs, read back with ml-metadata."""

import os

from kfp import dsl

from kfp_lineage.expect import record
from tests import conftest
from tests.mlmd_view import run_and_view

IMAGE = "python:3.11-slim"


@dsl.component(base_image=IMAGE)
def flaky(marker: str) -> str:
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    print("second attempt works")
    return "ok"


@dsl.pipeline(name="flaky")
def flaky_pipeline(marker: str):
    flaky(marker=marker).set_retry(num_retries=1, backoff_duration="0s").set_caching_options(False)


@dsl.component(base_image=IMAGE)
def shout(api_key: str, text: str) -> str:
    print(f"using {api_key} for {text}")
    return text.upper()


@dsl.pipeline(name="shout")
def shout_pipeline(api_key: str, text: str = "hi"):
    shout(api_key=api_key, text=text)


def test_each_attempt_of_a_retried_task_publishes_its_own_log(tmp_path, sqlite_url):
    result, view = run_and_view(flaky_pipeline, tmp_path, sqlite_url, "flaky-1",
                                arguments={"marker": str(tmp_path / "marker")})
    assert result.state == "COMPLETE" and result.tasks["flaky"].attempts == 2
    outputs = view.outputs("flaky")
    assert set(outputs) == {"executor-logs"}
    first, second = (view.artifact(i) for i in outputs["executor-logs"])
    assert os.path.dirname(first.uri) == os.path.dirname(second.uri)
    assert first.uri.startswith(os.path.join(result.run_root, "flaky") + os.sep)
    assert [os.path.basename(first.uri), os.path.basename(second.uri)] == ["executor-logs-0", "executor-logs-1"]
    first_text, second_text = open(first.uri).read(), open(second.uri).read()
    assert "RuntimeError: first attempt fails" in first_text and "second attempt works" not in first_text
    assert "second attempt works" in second_text and "RuntimeError" not in second_text
    assert view.state("flaky") == "COMPLETE"


def test_a_published_log_has_the_task_secrets_scrubbed(tmp_path, sqlite_url):
    token = "hf_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7"
    result, view = run_and_view(shout_pipeline, tmp_path, sqlite_url, "shout-1", arguments={"api_key": token})
    assert result.state == "COMPLETE"
    [log_id] = view.outputs("shout")["executor-logs"]
    text = open(view.artifact(log_id).uri).read()
    assert "using *** for hi" in text and token not in text


def test_a_cache_hit_points_at_the_original_log_and_the_checker_ignores_logs(tmp_path, sqlite_url):
    first, first_view = run_and_view(shout_pipeline, tmp_path, sqlite_url, "shout-1", arguments={"api_key": "k"})
    second, view = run_and_view(shout_pipeline, tmp_path, sqlite_url, "shout-2", arguments={"api_key": "k"})
    assert view.state("shout") == "CACHED"
    assert view.outputs("shout") == first_view.outputs("shout") != {}
    assert "executor-logs" not in second.tasks["shout"].outputs  # not a result of the task
    # A log is the task's, not its lineage: the expected-lineage checker's record leaves it out.
    recorded = record.read_run(conftest.open_store(sqlite_url), "shout-2")
    assert recorded.tasks["shout"].outputs == {}
