"""A synthetic ML Metadata store shaped like many KFP v2 training runs, for the lineage benchmarks.

Each run is what the KFP backend records for ingest -> train -> evaluate -> gated deploy: a root DAG
(`run/<run id>`), three container tasks, a condition DAG and the deploy task inside it, with INPUT/OUTPUT events,
both contexts, and the custom properties the backend writes. Runs read one of a few shared source datasets
(so one dataset is consumed by ~1k runs at the default size); some runs fail at evaluate, some skip the
deploy (condition CANCELED), some are cache hits (train CACHED, OUTPUT events pointing at an earlier run's
artifacts).

Built with bulk ml-metadata calls (put_contexts, put_executions, put_artifacts, put_events,
put_attributions_and_associations), a few hundred runs per call, so 10k runs take about a minute.

Three kinds, each built once and cached:
- `load_or_build(runs)`: a SQLite file with kfp-lineage's covering indexes (mlmd/indexes.py), as `kfp-lineage run`
  creates its stores; `indexed=False` gives the same store on MLMD's schema alone (as the KFP backend writes it).
- `load_or_build_server(base_url, runs)`: the same runs in a MySQL/MariaDB or PostgreSQL database named
  `kfpl_bench_<runs>_v<shape>`, whose table `kfpl_bench_store` holds the summary once the build is complete.

    python bench/synthetic_store.py [--runs 10000] [--path bench/.cache/synthetic-10000.sqlite]
        [--server mysql://root@127.0.0.1:3306/x] [--server postgresql://postgres@127.0.0.1:5432/x]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import shutil
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from kfp_lineage.mlmd import indexes as store_indexes  # noqa: E402
from kfp_lineage.mlmd import recorder  # noqa: E402
from kfp_lineage.mlmd import store as store_module  # noqa: E402
from kfp_lineage.mlmd import vocabulary  # noqa: E402

CACHE_DIR = os.path.join(ROOT, "bench", ".cache")
# Bump when the shape changes, so a stale cached file is never reused.
SHAPE_VERSION = 2
PIPELINES = ("training", "training-gpu", "retraining", "training-eu", "training-us")
IMAGE = "python:3.11-slim"
SESSION = vocabulary.LOCAL_STORE_SESSION_INFO

_STATE = mlmd_pb.Execution.State


@dataclasses.dataclass
class Summary:
    """What was built: counts, and ids the benchmarks start from."""

    runs: int
    executions: int
    artifacts: int
    events: int
    sources: Dict[int, int]  # source dataset id -> runs that read it
    models: List[int]  # model ids made by a COMPLETE train (not cache hits)
    cached_models: List[int]  # model ids that a CACHED train re-points at
    seconds: float

    def to_json(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def default_path(runs: int) -> str:
    """Where the cached store of `runs` runs lives: bench/.cache/synthetic-<runs>-v<shape>.sqlite."""
    return os.path.join(CACHE_DIR, f"synthetic-{runs}-v{SHAPE_VERSION}.sqlite")


def load_or_build(runs: int = 10_000, path: Optional[str] = None, seed: int = 7, *, indexed: bool = True
                  ) -> Tuple[str, Summary]:
    """The cached store file of `runs` runs and its summary, building it first when it is missing.

    Args:
        runs: pipeline runs in the store.
        path: the file (default default_path(runs)); the indexed copy is `<path without .sqlite>-kfpl<version>`.
        seed: random seed of the build.
        indexed: with kfp-lineage's covering indexes, as the runner creates stores (False: MLMD's schema alone).

    Returns:
        (path of the SQLite file, summary).
    """
    path = path or default_path(runs)
    if not indexed:
        return _load_or_build_plain(runs, path, seed)
    plain, summary = _load_or_build_plain(runs, path, seed)
    indexed_path = f"{os.path.splitext(plain)[0]}-kfpl{store_indexes.INDEX_VERSION}.sqlite"
    if not os.path.exists(indexed_path):
        shutil.copyfile(plain, indexed_path + ".part")
        store_indexes.add_indexes(store_module.parse_store_url(indexed_path + ".part"))
        os.replace(indexed_path + ".part", indexed_path)
    return indexed_path, summary


def _load_or_build_plain(runs: int, path: str, seed: int) -> Tuple[str, Summary]:
    summary_path = path + ".json"
    if os.path.exists(path) and os.path.exists(summary_path):
        with open(summary_path) as f:
            data = json.load(f)
        data["sources"] = {int(k): v for k, v in data["sources"].items()}
        return path, Summary(**data)
    for stale in (path, summary_path):
        if os.path.exists(stale):
            os.remove(stale)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    store = store_module.open_store(store_module.parse_store_url(path))
    summary = build(store, runs, seed=seed)
    with open(summary_path, "w") as f:
        json.dump(summary.to_json(), f)
    return path, summary


BENCH_MARKER_TABLE = "kfpl_bench_store"


def server_database(runs: int) -> str:
    """The database name of the cached server store of `runs` runs."""
    return f"kfpl_bench_{runs}_v{SHAPE_VERSION}"


def load_or_build_server(base_url: str, runs: int = 10_000, seed: int = 7) -> Tuple[str, Summary]:
    """The cached MySQL/MariaDB or PostgreSQL store of `runs` runs and its summary, built first when missing.

    Args:
        base_url: a URL of the server (its database part is replaced by server_database(runs)).

    Returns:
        (the store URL, summary).
    """
    prefix, _, _ = base_url.rpartition("/")
    url = f"{prefix}/{server_database(runs)}"
    parsed = store_module.parse_store_url(url)
    summary = _server_summary(parsed)
    if summary is not None:
        return url, summary
    _drop_database(parsed)  # a build that did not finish
    store = store_module.open_store(parsed)
    summary = build(store, runs, seed=seed)
    # A server gathers planner statistics on its own (autovacuum, InnoDB's persistent statistics) some time after a
    # bulk load; the benchmark measures the store as it is then, not in the minute after the load.
    if parsed.scheme == "postgresql":
        _execute(parsed, ["VACUUM ANALYZE"])
    else:
        _execute(parsed, ["ANALYZE TABLE Artifact, ArtifactProperty, Execution, ExecutionProperty, Event, EventPath, "
                          "Context, ContextProperty, ParentContext, Association, Attribution"])
    text = "LONGTEXT" if parsed.scheme == "mysql" else "TEXT"  # MySQL's TEXT holds 64 KB, the summary more
    _execute(parsed, [f"CREATE TABLE {BENCH_MARKER_TABLE} (summary {text} NOT NULL)",
                      (f"INSERT INTO {BENCH_MARKER_TABLE} (summary) VALUES (%s)", json.dumps(summary.to_json()))])
    return url, summary


def _connect(url: store_module.StoreURL, database: Optional[str] = None) -> Any:
    if url.scheme == "mysql":
        import pymysql

        return pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                               database=database, autocommit=True)
    import psycopg

    return psycopg.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                           dbname=database or "postgres", autocommit=True)


def _execute(url: store_module.StoreURL, statements: List[Any], database: Optional[str] = "") -> List[tuple]:
    connection = _connect(url, url.database if database == "" else database)
    try:
        rows: List[tuple] = []
        for statement in statements:
            sql, params = (statement, None) if isinstance(statement, str) else statement
            cursor = connection.cursor()
            cursor.execute(sql, params if params is None else [params])
            rows = list(cursor.fetchall()) if cursor.description else []
            cursor.close()
        return rows
    finally:
        connection.close()


def _server_summary(url: store_module.StoreURL) -> Optional[Summary]:
    try:
        rows = _execute(url, [f"SELECT summary FROM {BENCH_MARKER_TABLE}"])
    except Exception:  # no such database or table: not built yet
        return None
    if not rows:
        return None
    data = json.loads(rows[0][0])
    data["sources"] = {int(k): v for k, v in data["sources"].items()}
    return Summary(**data)


def _drop_database(url: store_module.StoreURL) -> None:
    name = url.database
    quoted = f"`{name}`" if url.scheme == "mysql" else f'"{name}"'
    _execute(url, [f"DROP DATABASE IF EXISTS {quoted}"], database=None)


class _Types:
    def __init__(self, store: metadata_store.MetadataStore):
        self.store = store
        self.ids: Dict[Tuple[str, str], int] = {}

    def execution(self, name: str) -> int:
        if ("e", name) not in self.ids:
            self.ids[("e", name)] = self.store.put_execution_type(mlmd_pb.ExecutionType(name=name))
        return self.ids[("e", name)]

    def artifact(self, name: str) -> int:
        if ("a", name) not in self.ids:
            self.ids[("a", name)] = self.store.put_artifact_type(mlmd_pb.ArtifactType(name=name))
        return self.ids[("a", name)]

    def context(self, name: str) -> int:
        if ("c", name) not in self.ids:
            self.ids[("c", name)] = self.store.put_context_type(mlmd_pb.ContextType(name=name))
        return self.ids[("c", name)]


def _execution(type_id: int, state: int, props: Dict[str, Any], name: str = "") -> mlmd_pb.Execution:
    execution = mlmd_pb.Execution(type_id=type_id, last_known_state=state)
    if name:
        execution.name = name
    recorder.set_custom_properties(execution, props)
    return execution


def _artifact(type_id: int, uri: str, key: str, props: Dict[str, Any]) -> mlmd_pb.Artifact:
    artifact = mlmd_pb.Artifact(type_id=type_id, uri=uri, state=mlmd_pb.Artifact.LIVE)
    recorder.set_custom_properties(artifact, {**props, "display_name": key, "store_session_info": SESSION})
    return artifact


def _event(kind: int, execution_id: int, artifact_id: int, key: str) -> mlmd_pb.Event:
    event = mlmd_pb.Event(type=kind, execution_id=execution_id, artifact_id=artifact_id)
    event.path.steps.add().key = key
    return event


@dataclasses.dataclass
class _Run:
    """One planned run before insertion."""

    index: int
    run_id: str
    pipeline: str
    source: int  # index into the shared source datasets
    fate: str  # "deployed", "skipped" (condition false), "failed" (evaluate fails), "cached" (ingest, train hit)
    context_id: int = 0
    execution_ids: Dict[str, int] = dataclasses.field(default_factory=dict)
    artifact_ids: Dict[str, int] = dataclasses.field(default_factory=dict)  # "task/output" -> id, made by this run
    original: Optional[Dict[str, int]] = None  # for cache hits: the original run's execution and artifact ids


_OUTPUTS = {
    "ingest": [("train", "system.Dataset"), ("test", "system.Dataset"), ("validation", "system.Dataset"),
               ("stats", "system.Artifact")],
    "train": [("model", "system.Model"), ("metrics", "system.Metrics"), ("feature_importance", "system.Artifact")],
    "evaluate": [("metrics", "system.Metrics"), ("classification_metrics", "system.ClassificationMetrics"),
                 ("report", "system.Markdown"), ("predictions", "system.Dataset")],
    "deploy": [("endpoint", "system.Artifact")],
}
_CACHEABLE = ("ingest", "train")


def build(store: metadata_store.MetadataStore, runs: int, seed: int = 7, sources: Optional[int] = None,
          chunk: int = 250) -> Summary:
    """Writes `runs` synthetic runs into an empty store.

    Args:
        store: an empty ml-metadata store.
        runs: how many pipeline runs.
        seed: random seed; the same seed gives the same store.
        sources: shared source datasets (default one per 1,000 runs, at least 2).
        chunk: runs written per bulk call.

    Returns:
        The summary of what was written.
    """
    started = time.perf_counter()
    rng = random.Random(seed)
    types = _Types(store)
    pipeline_type = types.context(vocabulary.PIPELINE_CONTEXT_TYPE)
    n_sources = sources or max(2, runs // 1000)
    pipeline_ids = dict(zip(PIPELINES, store.put_contexts(
        [mlmd_pb.Context(type_id=pipeline_type, name=name) for name in PIPELINES])))
    source_ids = store.put_artifacts([
        _artifact(types.artifact("system.Dataset"), f"bq://project.warehouse.events_{k}", "source",
                  {"query": f"SELECT * FROM `project.warehouse.events_{k}`", "rows": 1_000_000.0 + k})
        for k in range(n_sources)
    ])
    state = _BuildState(pipeline_ids=pipeline_ids, source_ids=source_ids, artifacts=n_sources)
    for k, artifact_id in enumerate(source_ids):
        state.attribute(pipeline_ids[PIPELINES[k % len(PIPELINES)]], artifact_id)
    store.put_attributions_and_associations(state.take_attributions(), [])

    plan: List[_Run] = []
    for i in range(runs):
        roll = rng.random()
        fate = "failed" if roll < 0.03 else "skipped" if roll < 0.15 else "cached" if roll < 0.23 else "deployed"
        plan.append(_Run(index=i, run_id=f"run-{i:06d}-{rng.getrandbits(24):06x}",
                         pipeline=PIPELINES[i % len(PIPELINES)], source=i % n_sources, fate=fate))
    models: List[int] = []
    cached_models: List[int] = []
    consumers = {a: 0 for a in source_ids}
    for start in range(0, runs, chunk):
        batch = plan[start:start + chunk]
        for run in batch:
            if run.fate == "cached":
                if run.source in state.last_complete:
                    run.original = state.last_complete[run.source]
                else:
                    run.fate = "deployed"
        _write_chunk(store, types, batch, state)
        for run in batch:
            consumers[source_ids[run.source]] += 1
            if run.original:
                cached_models.append(run.original["train/model"])
            else:
                models.append(run.artifact_ids["train/model"])
                if run.fate != "failed":
                    state.last_complete[run.source] = {
                        **{k: v for k, v in run.artifact_ids.items() if k.split("/")[0] in _CACHEABLE},
                        **{k: run.execution_ids[k] for k in _CACHEABLE},
                    }
    return Summary(runs=runs, executions=state.executions, artifacts=state.artifacts, events=state.events,
                   sources=consumers, models=models, cached_models=sorted(set(cached_models)),
                   seconds=round(time.perf_counter() - started, 1))


@dataclasses.dataclass
class _BuildState:
    """What carries over from one chunk to the next."""

    pipeline_ids: Dict[str, int]
    source_ids: List[int]
    executions: int = 0
    artifacts: int = 0
    events: int = 0
    # source index -> ids of the newest run that ran ingest and train for it ("ingest", "train/model", ...)
    last_complete: Dict[int, Dict[str, int]] = dataclasses.field(default_factory=dict)
    attributed: set = dataclasses.field(default_factory=set)
    attributions: List[mlmd_pb.Attribution] = dataclasses.field(default_factory=list)

    def attribute(self, context_id: int, artifact_id: int) -> None:
        if (context_id, artifact_id) not in self.attributed:
            self.attributed.add((context_id, artifact_id))
            self.attributions.append(mlmd_pb.Attribution(context_id=context_id, artifact_id=artifact_id))

    def take_attributions(self) -> List[mlmd_pb.Attribution]:
        taken, self.attributions = self.attributions, []
        return taken


def _write_chunk(store: metadata_store.MetadataStore, types: _Types, batch: List[_Run], state: _BuildState) -> None:
    """Writes one chunk of planned runs with a handful of bulk calls, parents before children."""
    run_type = types.context(vocabulary.RUN_CONTEXT_TYPE)
    dag_type = types.execution(vocabulary.DAG_EXECUTION_TYPE)
    container_type = types.execution(vocabulary.CONTAINER_EXECUTION_TYPE)
    contexts = []
    for run in batch:
        context = mlmd_pb.Context(type_id=run_type, name=run.run_id)
        recorder.set_custom_properties(context, {
            "namespace": "kubeflow", "resource_name": "run-resource",
            "pipeline_root": f"gs://bucket/pipeline-root/{run.pipeline}/{run.run_id}", "store_session_info": SESSION,
        })
        contexts.append(context)
    for run, context_id in zip(batch, store.put_contexts(contexts)):
        run.context_id = context_id
    store.put_parent_contexts([
        mlmd_pb.ParentContext(child_id=run.context_id, parent_id=state.pipeline_ids[run.pipeline]) for run in batch
    ])

    # Level 1: root DAGs.
    roots = [
        _execution(dag_type, _STATE.FAILED if run.fate == "failed" else _STATE.COMPLETE, {
            "display_name": "", "task_name": "",
            "inputs": {"source_uri": f"bq://project.warehouse.events_{run.source}", "threshold": 0.9,
                       "code_version": _commit(run)},
        }, name=f"run/{run.run_id}")
        for run in batch
    ]
    for run, execution_id in zip(batch, store.put_executions(roots)):
        run.execution_ids["root"] = execution_id

    # Level 2: the container tasks under the root, and the condition DAG.
    planned: List[Tuple[_Run, str, mlmd_pb.Execution]] = []
    for run in batch:
        root = run.execution_ids["root"]
        for task, inputs in (
            ("ingest", {"source_uri": f"bq://project.warehouse.events_{run.source}", "label_column": "label",
                        "test_fraction": 0.25, "seed": 7}),
            ("train", {"label_column": "label", "code_version": _commit(run), "n_estimators": 200, "max_depth": 8}),
        ):
            props = {"display_name": task, "task_name": task, "parent_dag_id": root, "image": IMAGE,
                     "inputs": inputs, "cache_fingerprint": f"{task}-{run.source:060x}"}
            if run.original:
                props["cached_execution_id"] = str(run.original[task])
            planned.append((run, task, _execution(
                container_type, _STATE.CACHED if run.original else _STATE.COMPLETE, props)))
        planned.append((run, "evaluate", _execution(
            container_type, _STATE.FAILED if run.fate == "failed" else _STATE.COMPLETE, {
                "display_name": "evaluate", "task_name": "evaluate", "parent_dag_id": root, "image": IMAGE,
                "inputs": {"label_column": "label", "threshold": 0.9},
                **({} if run.fate == "failed" else {"outputs": {"passed": run.fate != "skipped"}}),
            })))
        if run.fate != "failed":
            planned.append((run, "condition-1", _execution(
                dag_type, _STATE.CANCELED if run.fate == "skipped" else _STATE.COMPLETE, {
                    "display_name": "condition-1", "task_name": "condition-1", "parent_dag_id": root,
                    "inputs": {"pipelinechannel--evaluate-passed": run.fate != "skipped"}, "total_dag_tasks": 1,
                })))
    for (run, task, _), execution_id in zip(planned, store.put_executions([e for _, _, e in planned])):
        run.execution_ids[task] = execution_id

    # Level 3: deploy inside the condition.
    deploys = [
        (run, _execution(container_type, _STATE.COMPLETE, {
            "display_name": "deploy", "task_name": "deploy", "parent_dag_id": run.execution_ids["condition-1"],
            "image": IMAGE, "inputs": {"model_name": "churn", "deployed_by": "https://ci.example/build/1"},
        }))
        for run in batch if run.fate in ("deployed", "cached")
    ]
    for (run, _), execution_id in zip(deploys, store.put_executions([e for _, e in deploys])):
        run.execution_ids["deploy"] = execution_id
    state.executions += len(roots) + len(planned) + len(deploys)

    # Artifacts: every output of every task that ran (a cache hit makes none).
    artifacts: List[Tuple[_Run, str, mlmd_pb.Artifact]] = []
    for run in batch:
        root_uri = f"gs://bucket/pipeline-root/{run.pipeline}/{run.run_id}"
        tasks = [] if run.original else ["ingest", "train"]
        tasks += [] if run.fate == "failed" else ["evaluate"]
        tasks += ["deploy"] if "deploy" in run.execution_ids else []
        for task in tasks:
            for key, type_name in _OUTPUTS[task]:
                uri = f"{root_uri}/{task}/{run.index:08x}-0000-4000-8000-{run.source:012x}/{key}"
                artifacts.append((run, f"{task}/{key}", _artifact(types.artifact(type_name), uri, key,
                                                                   _metadata(run, task, key))))
    for (run, name, _), artifact_id in zip(artifacts, store.put_artifacts([a for _, _, a in artifacts])):
        run.artifact_ids[name] = artifact_id
    state.artifacts += len(artifacts)

    events: List[mlmd_pb.Event] = []
    associations: List[mlmd_pb.Association] = []
    IN, OUT = mlmd_pb.Event.INPUT, mlmd_pb.Event.OUTPUT
    for run in batch:
        ids = run.execution_ids
        made = {**(run.original or {}), **run.artifact_ids}  # a cache hit's outputs are the original artifacts
        source = state.source_ids[run.source]
        linked = {source}
        events.append(_event(IN, ids["ingest"], source, "source"))
        events.append(_event(IN, ids["train"], made["ingest/train"], "train_data"))
        events.append(_event(IN, ids["evaluate"], made["train/model"], "model"))
        events.append(_event(IN, ids["evaluate"], made["ingest/test"], "test_data"))
        for task in ("ingest", "train", "evaluate", "deploy"):
            if task == "evaluate" and run.fate == "failed" or task == "deploy" and "deploy" not in ids:
                continue
            for key, _ in _OUTPUTS[task]:
                events.append(_event(OUT, ids[task], made[f"{task}/{key}"], key))
                linked.add(made[f"{task}/{key}"])
        if "deploy" in ids:
            events.append(_event(IN, ids["condition-1"], made["train/model"], "pipelinechannel--train-model"))
            events.append(_event(IN, ids["deploy"], made["train/model"], "model"))
        for artifact_id in sorted(linked):
            state.attribute(run.context_id, artifact_id)
            state.attribute(state.pipeline_ids[run.pipeline], artifact_id)
        for execution_id in ids.values():
            for context_id in (run.context_id, state.pipeline_ids[run.pipeline]):
                associations.append(mlmd_pb.Association(context_id=context_id, execution_id=execution_id))
    store.put_events(events)
    state.events += len(events)
    store.put_attributions_and_associations(state.take_attributions(), associations)


def _commit(run: _Run) -> str:
    return f"{run.index * 2654435761 % (1 << 160):040x}"


def _metadata(run: _Run, task: str, key: str) -> Dict[str, Any]:
    digest = hashlib.sha256(f"{run.run_id}/{task}/{key}".encode()).hexdigest()
    if task == "ingest":
        meta = {"sha256": digest, "split": key, "columns": ["f1", "f2", "f3", "label"],
                "source_uri": f"bq://project.warehouse.events_{run.source}"}
        if key != "stats":
            meta["rows"] = float(1000 + run.index % 500)
        return meta
    if task == "train":
        if key == "model":
            return {"framework": "scikit-learn", "framework_version": "1.5.2", "sha256": digest,
                    "code_version": _commit(run), "hyperparameters": {"n_estimators": 200.0}}
        if key == "metrics":
            return {"train_accuracy": 0.95 + (run.index % 40) / 1000}
        return {"top_feature": "f1"}
    if task == "evaluate":
        if key == "metrics":
            return {"accuracy": 0.9 + (run.index % 90) / 1000, "f1": 0.88 + (run.index % 70) / 1000}
        if key == "predictions":
            return {"rows": 250.0}
        return {}
    return {"endpoint_uri": f"https://endpoints.example/churn/v{run.index}", "model_version": f"v{run.index}",
            "deployed_by": "https://ci.example/build/1", "deployed_at": "2026-11-26T05:56:48Z"}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--path", help="SQLite file (default bench/.cache/synthetic-<runs>-v<shape>.sqlite)")
    parser.add_argument("--server", action="append", default=[], metavar="URL",
                        help="also build the store on this MySQL/PostgreSQL server (repeatable)")
    args = parser.parse_args(argv)
    built = [load_or_build(args.runs, args.path)] + [load_or_build_server(url, args.runs) for url in args.server]
    for path, summary in built:
        shown = store_module.parse_store_url(path).redacted
        print(f"{shown}: {summary.runs} runs, {summary.executions} executions, {summary.artifacts} artifacts, "
              f"{summary.events} events (built in {summary.seconds} s)")


if __name__ == "__main__":
    main()
