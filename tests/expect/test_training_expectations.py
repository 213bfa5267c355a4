"""The project's own pipelines against their lineage specs (specs/<pipeline>.lineage.yaml), and the README's
example of a passing and a failing check."""

import glob
import os
import re

import pytest
import yaml
from click.testing import CliRunner

from kfp_lineage import cli
from kfp_lineage.expect import check as expectations
from kfp_lineage.expect import spec as expectations_spec
from kfp_lineage.expect import pytest_plugin
from kfp_lineage.engine import run as run_module
from tests import conftest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPECS = os.path.join(REPO, "specs")
TRAINING = os.path.join(SPECS, "training.yaml")
TRAINING_LINEAGE = os.path.join(SPECS, "training.lineage.yaml")
DATA = os.path.join(REPO, "data", "breast_cancer.csv")


def run_training(tmp, run_id, **arguments):
    """One run of specs/training.yaml into its own store; cwd and pipeline root in tmp so nothing lands in the
    repository. Returns the store path."""
    store = str(tmp / f"{run_id}.sqlite")
    result = run_module.run_pipeline(
        TRAINING, {"source_uri": DATA, "code_version": "abc123", **arguments}, store=store,
        pipeline_root=str(tmp / "root"), run_id=run_id, cwd=str(tmp),
    )
    assert result.state == "COMPLETE", {k: t.error for k, t in result.tasks.items() if t.error}
    return store


@pytest.fixture(scope="module")
def training_store(tmp_path_factory):
    """The training pipeline run once with its defaults: the model is deployed locally."""
    return run_training(tmp_path_factory.mktemp("training-lineage"), "training-ok")


def test_every_pipeline_spec_has_a_lineage_spec_for_its_pipeline():
    pipelines = [p for p in glob.glob(os.path.join(SPECS, "*.yaml")) if not p.endswith(".lineage.yaml")]
    assert pipelines
    for path in pipelines:
        with open(path) as f:
            name = next(yaml.safe_load_all(f))["pipelineInfo"]["name"]
        lineage = path[: -len(".yaml")] + ".lineage.yaml"
        assert os.path.exists(lineage), f"{os.path.basename(path)} needs {os.path.basename(lineage)}: " \
                                        f"write it with `kfp-lineage expect RUN_ID`, then tidy it"
        assert expectations_spec.load_lineage_spec(lineage).pipeline == name


def test_the_training_run_matches_its_lineage_spec(training_store):
    result = expectations.check_lineage(conftest.open_store(training_store), TRAINING_LINEAGE)
    assert result.ok, result.to_text()


def test_the_training_lineage_spec_checks_through_the_cli_and_the_plugin(training_store):
    store = training_store
    result = CliRunner().invoke(cli.main, ["check", TRAINING_LINEAGE, "--store", store])
    assert result.exit_code == 0, result.stdout
    assert result.stdout == f"OK run training-ok of pipeline training matches {TRAINING_LINEAGE}: 9 tasks, 15 events\n"
    lineage = pytest_plugin.assert_lineage("training-ok", store)
    lineage.matches(TRAINING_LINEAGE)
    lineage.task("train").consumed("ingest.train", key="train_data").produced("model", "system.Model", ["sha256"])
    lineage.task("deploy-local").consumed("train.model", artifact_type="system.Model").state("COMPLETE")


@pytest.mark.slow
def test_a_model_that_is_not_deployed_fails_the_check_as_the_readme_shows(tmp_path):
    store = run_training(tmp_path, "training-strict", threshold=0.9999)
    result = expectations.check_lineage(conftest.open_store(store), TRAINING_LINEAGE)
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    section = readme[readme.index("## Testing your pipeline's lineage"):]
    shown = re.search(r"\$ kfp-lineage check specs/training.lineage.yaml\n(FAIL .*?)\n```", section, re.S).group(1)
    actual = result.to_text().replace(TRAINING_LINEAGE, "specs/training.lineage.yaml")
    # The README's run was another run: its id and execution ids differ, the lineage does not.
    def normalised(text):
        return re.sub(r"execution \d+", "execution N", text.replace("training-strict", "RUN"))

    shown = re.sub(r"run training-\d{8}-\d{6}-[0-9a-f]{6} ", "run RUN ", shown)
    assert normalised(actual) == normalised(shown)


def test_the_readme_spec_excerpt_is_the_real_spec():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    section = readme[readme.index("## Testing your pipeline's lineage"):]
    excerpt = re.search(r"```yaml\n(.*?)```", section, re.S).group(1).splitlines()
    with open(TRAINING_LINEAGE) as f:
        remaining = iter(f.read().splitlines())
    # Every excerpt line appears in the spec file, in order (the excerpt leaves tasks out).
    missing = [line for line in excerpt if not any(line == spec_line for spec_line in remaining)]
    assert not missing, f"README excerpt lines not in {TRAINING_LINEAGE} (in order): {missing}"
