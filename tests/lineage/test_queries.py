"""The old import path kfp_lineage.lineage.queries keeps every public name, as the modules that own them now."""

import kfp_lineage
from kfp_lineage.lineage import describe, placement, queries, references, runs, walk


def test_the_old_module_re_exports_the_same_objects():
    assert queries.trace is walk.trace and queries.impact is walk.impact
    assert queries.describe is describe.describe and queries.describe_run is describe.describe_run
    assert queries.describe_artifact is describe.describe_artifact
    assert queries.find_artifact is references.find_artifact and queries.latest_run is references.latest_run
    assert queries.list_runs is runs.list_runs and queries.summarize_run is runs.summarize_run
    assert queries.task_paths is placement.task_paths
    assert (queries.DEFAULT_DEPTH, queries.DEFAULT_RUN_LIMIT) == (walk.DEFAULT_DEPTH, runs.DEFAULT_RUN_LIMIT) == (20, 20)
    assert all(hasattr(queries, name) for name in queries.__all__)


def test_the_public_api_maps_to_the_owning_modules():
    assert kfp_lineage.trace is walk.trace and kfp_lineage.impact is walk.impact
    assert kfp_lineage.describe is describe.describe and kfp_lineage.list_runs is runs.list_runs
    assert kfp_lineage.find_artifact is references.find_artifact
