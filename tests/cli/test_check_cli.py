"""`kfp-lineage check` and `kfp-lineage expect`: exit codes 0/1/2, the diff, --json, and expect -> check."""

import json

import pytest
import yaml
from click.testing import CliRunner

from kfp_lineage import cli
from kfp_lineage.engine import run as run_module
from tests.fixtures import broken_pipelines, pipelines


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """good.sqlite: mini run `good`, then a `linear` run (the newest run, of another pipeline);
    broken.sqlite: mini run `wrong_model`. Plus the mini spec file."""
    tmp = tmp_path_factory.mktemp("check-cli")
    good, broken = str(tmp / "good.sqlite"), str(tmp / "broken.sqlite")
    for pipeline, store, run_id in [(broken_pipelines.good, good, "good"), (pipelines.linear, good, "linear-1"),
                                    (broken_pipelines.wrong_model, broken, "wrong_model")]:
        result = run_module.run_pipeline(pipeline, store=store, pipeline_root=str(tmp / "root"), run_id=run_id,
                                         cwd=str(tmp))
        assert result.state == "COMPLETE"
    spec = tmp / "mini.lineage.yaml"
    spec.write_text(broken_pipelines.GOOD_SPEC)
    return {"good": good, "broken": broken, "spec": str(spec), "tmp": tmp}


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


def test_check_passes_on_the_newest_run_of_the_specs_pipeline(stores):
    result = invoke("check", stores["spec"], "--store", stores["good"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"OK run good of pipeline mini matches {stores['spec']}: 6 tasks, 11 events\n"
    assert result.stderr == ""


def test_check_fails_with_exit_1_and_a_diff(stores):
    result = invoke("check", stores["spec"], "--store", stores["broken"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"FAIL run wrong_model of pipeline mini does not match {stores['spec']}: 3 differences"
    assert lines[3].startswith(f"  {stores['spec']}:40: condition-1/ship: wrong producer: INPUT model comes from "
                               "fit-2.model (artifact ")
    assert lines[4] == "recorded lineage of the tasks involved:"
    assert "    INPUT   model     system.Model     from fit-2.model" in lines


def test_check_json(stores):
    result = invoke("check", stores["spec"], "--store", stores["broken"], "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["ok"], data["run_id"], data["pipeline"], data["spec"]) == (False, "wrong_model", "mini",
                                                                           stores["spec"])
    assert [d["kind"] for d in data["differences"]] == ["missing event", "unexpected event", "wrong producer"]
    assert set(data["differences"][0]) == {"task", "kind", "detail", "line"}
    ok = json.loads(invoke("check", stores["spec"], "--store", stores["good"], "--run", "good", "--json").stdout)
    assert ok == {"ok": True, "run_id": "good", "pipeline": "mini", "spec": stores["spec"], "differences": []}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--run", "latest"], "Error: run linear-1 is a run of pipeline 'linear', not 'mini': pass a run of 'mini' "
                              "or the lineage spec of its pipeline"),
        (["--run", "nope"], "Error: no run 'nope' in this store: pass a run id from `kfp-lineage run`, or `latest`"),
    ],
)
def test_check_of_a_wrong_run_exits_2(stores, args, message):
    result = invoke("check", stores["spec"], "--store", stores["good"], *args)
    assert result.exit_code == 2
    assert result.stderr == message + "\n" and result.stdout == ""


def test_check_of_a_bad_spec_exits_2_with_one_line(stores, tmp_path):
    bad = tmp_path / "bad.lineage.yaml"
    fit = "  fit:\n    type: system.ContainerExecution\n    state: "
    bad.write_text(broken_pipelines.GOOD_SPEC.replace(fit + "COMPLETE", fit + "DONE"))
    result = invoke("check", str(bad), "--store", stores["good"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {bad}:11: tasks.fit.state: 'DONE' is not allowed; "
        "use one of COMPLETE, FAILED, CANCELED, CACHED, RUNNING, NEW, or a list of them\n"
    )


def test_check_without_a_store_or_a_run_of_the_pipeline_exits_2(stores, tmp_path):
    missing = tmp_path / "none.sqlite"
    result = invoke("check", stores["spec"], "--store", str(missing))
    assert result.exit_code == 2 and result.stderr == f"Error: no store at {missing}: run a pipeline first, or pass --store\n"
    assert not missing.exists()
    result = invoke("check", stores["spec"], "--store", stores["good"], "--run", "linear-1")
    assert result.exit_code == 2 and "is a run of pipeline 'linear'" in result.stderr
    spec = tmp_path / "other.lineage.yaml"
    spec.write_text(broken_pipelines.GOOD_SPEC.replace("pipeline: mini", "pipeline: other"))
    result = invoke("check", str(spec), "--store", stores["good"])
    assert result.exit_code == 2
    assert result.stderr == ("Error: the store has no runs of pipeline 'other': run it first (kfp-lineage run ...) "
                             "or pass --store\n")


@pytest.mark.parametrize("run_id, store", [("good", "good"), ("latest", "good"), ("wrong_model", "broken")])
def test_expect_prints_a_spec_that_check_passes(stores, tmp_path, run_id, store):
    result = invoke("expect", run_id, "--store", stores[store])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("# Expected lineage of pipeline ")
    data = yaml.safe_load(result.stdout)
    assert data["version"] == 1 and data["pipeline"] in ("mini", "linear")
    spec = tmp_path / "expected.lineage.yaml"
    spec.write_text(result.stdout)
    checked = invoke("check", str(spec), "--store", stores[store], "--run", run_id)
    assert checked.exit_code == 0, checked.stdout


def test_expect_writes_the_lineage_as_recorded(stores):
    result = invoke("expect", "good", "--store", stores["good"], "--no-metadata")
    assert result.stdout.splitlines()[:10] == [
        "# Expected lineage of pipeline mini, as run good recorded it (kfp-lineage expect).",
        "# Review before committing; check with: kfp-lineage check <this file>. Format: docs/lineage-spec.md",
        "version: 1",
        "pipeline: mini",
        "tasks:",
        "  make-data:",
        "    type: system.ContainerExecution",
        "    state: COMPLETE",
        "    outputs:",
        "      data: {type: system.Dataset}",
    ]
    data = yaml.safe_load(result.stdout)
    assert data["tasks"]["condition-1/ship"] == {
        "type": "system.ContainerExecution", "state": "COMPLETE",
        "inputs": {"model": {"type": "system.Model", "from": "fit.model"}},
        "outputs": {"endpoint": {"type": "system.Artifact"}},
    }
    assert data["tasks"]["condition-1"]["inputs"] == {
        "pipelinechannel--fit-model": {"type": "system.Model", "from": "fit.model"}
    }


def test_expect_of_an_unknown_run_exits_2(stores):
    result = invoke("expect", "nope", "--store", stores["good"])
    assert result.exit_code == 2
    assert result.stderr == "Error: no run 'nope' in this store: pass a run id from `kfp-lineage run`, or `latest`\n"


@pytest.mark.parametrize("command", ["check", "expect"])
def test_help_has_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and f"kfp-lineage {command} " in result.stdout
