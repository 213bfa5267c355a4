"""Serving tasks from the cache, end to end: real pipelines run twice into one store, read back with ml-metadata.

Each test here failed before the fix it pins (issue 16: redaction fed the cache, custom cache keys collided across
components, metrics-only outputs were never cached, redacted outputs were handed downstream).
"""


from kfp import dsl
from kfp.dsl import Metrics, Output

from kfp_lineage.engine import run as run_module
from tests import conftest
from tests.mlmd_view import RunView

IMAGE = "python:3.11-slim"


@dsl.component(base_image=IMAGE)
def budget(max_tokens: int) -> int:
    return max_tokens


@dsl.component(base_image=IMAGE)
def use(value: int) -> str:
    return f"used:{value}"


@dsl.pipeline(name="token-budget")
def token_budget(max_tokens: int = 256):
    use(value=budget(max_tokens=max_tokens).output)


@dsl.component(base_image=IMAGE)
def left() -> str:
    return "left"


@dsl.component(base_image=IMAGE)
def right() -> str:
    return "right"


@dsl.pipeline(name="shared-cache-key")
def shared_cache_key():
    left().set_caching_options(True, cache_key="v1")
    right().set_caching_options(True, cache_key="v1")


@dsl.component(base_image=IMAGE)
def log_only(metrics: Output[Metrics]):
    metrics.log_metric("accuracy", 0.9)


@dsl.pipeline(name="metrics-only")
def metrics_only():
    log_only()


@dsl.component(base_image=IMAGE)
def issue_token() -> str:
    return "ghp_" + "a1B2c3D4e5" * 4  # shaped like a GitHub token: recorded as ***


@dsl.component(base_image=IMAGE)
def prefix(text: str) -> str:
    return text[:6]


@dsl.pipeline(name="secret-output")
def secret_output():
    prefix(text=issue_token().output)


def _run(pipeline, tmp_path, store, run_id, **arguments):
    return run_module.run_pipeline(pipeline, arguments, store=store, pipeline_root=str(tmp_path / "root"),
                                   run_id=run_id)


def test_a_parameter_named_like_tokens_is_a_real_cache_input(tmp_path, sqlite_url):
    first = _run(token_budget, tmp_path, sqlite_url, "tb-1", max_tokens=256)
    second = _run(token_budget, tmp_path, sqlite_url, "tb-2", max_tokens=1024)
    assert first.tasks["use"].outputs["Output"] == {"value": "used:256"}
    assert second.tasks["budget"].state == "COMPLETE"  # not the cached result of max_tokens=256
    assert second.tasks["use"].outputs["Output"] == {"value": "used:1024"}
    view = RunView(conftest.open_store(sqlite_url), "tb-2")
    assert view.prop("budget", "inputs") == {"max_tokens": 1024}


def test_the_same_custom_cache_key_on_two_components_never_shares_a_result(tmp_path, sqlite_url):
    _run(shared_cache_key, tmp_path, sqlite_url, "key-1")
    second = _run(shared_cache_key, tmp_path, sqlite_url, "key-2")
    assert {name: task.outputs["Output"]["value"] for name, task in second.tasks.items()} == {
        "left": "left", "right": "right"}
    assert {task.state for task in second.tasks.values()} == {"CACHED"}


def test_a_task_whose_outputs_are_logged_metrics_only_is_cached(tmp_path, sqlite_url):
    first = _run(metrics_only, tmp_path, sqlite_url, "m-1")
    second = _run(metrics_only, tmp_path, sqlite_url, "m-2")
    assert first.tasks["log-only"].state == "COMPLETE"
    assert second.tasks["log-only"].state == "CACHED"
    assert second.tasks["log-only"].cached_execution_id == first.tasks["log-only"].execution_id


def test_an_output_recorded_redacted_is_not_served_from_the_cache(tmp_path, sqlite_url):
    _run(secret_output, tmp_path, sqlite_url, "s-1")
    second = _run(secret_output, tmp_path, sqlite_url, "s-2")
    assert second.tasks["issue-token"].state == "COMPLETE"  # the store holds ***, not the token
    assert second.tasks["prefix"].outputs["Output"] == {"value": "ghp_a1"}
    assert RunView(conftest.open_store(sqlite_url), "s-2").prop("issue-token", "outputs") == {"Output": "***"}
