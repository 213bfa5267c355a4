"""Reading a recorded run back with plain ml-metadata calls, for assertions in tests."""

from __future__ import annotations

from typing import Dict, List

from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from kfp_lineage.mlmd import vocabulary


class RunView:
    """One run's executions keyed like RunResult.tasks ("" is the root DAG), with their events."""

    def __init__(self, store, run_id: str):
        self.store = store
        self.run_context = store.get_context_by_type_and_name("system.PipelineRun", run_id)
        assert self.run_context is not None, f"no run context {run_id}"
        self.executions = store.get_executions_by_context(self.run_context.id)
        by_id = {e.id: e for e in self.executions}
        self.by_key: Dict[str, mlmd_pb.Execution] = {}
        for execution in self.executions:
            parts = []
            node = execution
            while "parent_dag_id" in node.custom_properties:
                if "iteration_index" in node.custom_properties:  # a loop iteration: `<loop>/iteration-<i>`
                    parts.append(f"iteration-{node.custom_properties['iteration_index'].int_value}")
                else:
                    parts.append(node.custom_properties["task_name"].string_value)
                node = by_id[node.custom_properties["parent_dag_id"].int_value]
            self.by_key["/".join(reversed(parts))] = execution
        self.events = store.get_events_by_execution_ids([e.id for e in self.executions])

    def execution(self, key: str) -> mlmd_pb.Execution:
        return self.by_key[key]

    def state(self, key: str) -> str:
        return mlmd_pb.Execution.State.Name(self.by_key[key].last_known_state)

    def prop(self, key: str, name: str):
        return vocabulary.python_value(self.by_key[key].custom_properties[name])

    def event_keys(self, key: str, event_type: int) -> Dict[str, List[int]]:
        """Path key -> artifact ids of the execution's events of one type."""
        execution_id = self.by_key[key].id
        found: Dict[str, List[int]] = {}
        for event in self.events:
            if event.execution_id == execution_id and event.type == event_type:
                found.setdefault(event.path.steps[0].key, []).append(event.artifact_id)
        return found

    def inputs(self, key: str) -> Dict[str, List[int]]:
        return self.event_keys(key, mlmd_pb.Event.INPUT)

    def outputs(self, key: str) -> Dict[str, List[int]]:
        return self.event_keys(key, mlmd_pb.Event.OUTPUT)

    def artifact(self, artifact_id: int) -> mlmd_pb.Artifact:
        [artifact] = self.store.get_artifacts_by_id([artifact_id])
        return artifact


def run_and_view(pipeline, tmp_path, store_url: str, run_id: str, **kwargs):
    """Runs `pipeline` into `store_url` (pipeline root under tmp_path) and returns (RunResult, RunView)."""
    from kfp_lineage.engine import run as run_module
    from tests import conftest

    result = run_module.run_pipeline(
        pipeline, kwargs.pop("arguments", {}), store=store_url, pipeline_root=str(tmp_path / "root"),
        run_id=run_id, **kwargs,
    )
    return result, RunView(conftest.open_store(store_url), run_id)
