"""Benchmark of the lineage queries on a synthetic store of 10k KFP runs: `trace` of a model and `impact` of a
dataset read by ~1k runs, each beside a naive one-node-at-a-time ml-metadata walk and ml-metadata's own
get_lineage_subgraph, measured in the same process on the same store, on every store kind:

- SQLite with kfp-lineage's covering indexes (a store `kfp-lineage run` created), and the same file on MLMD's
  schema alone (a store the KFP backend wrote);
- MySQL/MariaDB and PostgreSQL, when their servers are given (--mysql/--postgresql, default: the servers of
  KFP_LINEAGE_TEST_MYSQL_URL / KFP_LINEAGE_TEST_POSTGRESQL_URL), each read through the SQL reader and through
  ml-metadata calls.

    python bench/bench_queries.py [--runs 10000] [--trace-samples 200] [--impact-rounds 5] [--output FILE]

Prints a table and writes bench/results-queries.md. Every store is built once and cached (bench/.cache/ for
SQLite, a versioned database on each server: bench/synthetic_store.py).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from importlib import metadata as importlib_metadata
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

os.environ.setdefault("GLOG_minloglevel", "1")  # before ml-metadata loads: no INFO line per server connection
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from ml_metadata.metadata_store import metadata_store  # noqa: E402
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb  # noqa: E402

from bench import synthetic_store  # noqa: E402
from kfp_lineage.lineage import queries  # noqa: E402
from kfp_lineage.lineage import reader as lineage_reader  # noqa: E402
from kfp_lineage.mlmd import store as store_module  # noqa: E402

DEPTH = queries.DEFAULT_DEPTH
RESULTS = os.path.join(ROOT, "bench", "results-queries.md")
INPUT, OUTPUT = mlmd_pb.Event.INPUT, mlmd_pb.Event.OUTPUT
TRACE_TARGET_MS, IMPACT_TARGET_MS = 5.0, 100.0


# --- the baselines -------------------------------------------------------------------------------------------


def naive_trace(store: metadata_store.MetadataStore, artifact_id: int, runs: bool) -> Tuple[Set[int], Set[int]]:
    """Upstream the way most MLMD code walks: one call per node (and, with `runs`, the run of each execution
    from its contexts); plus the artifact's consumers and their outputs. Returns the artifact and execution ids
    seen."""
    seen_artifacts: Set[int] = {artifact_id}
    seen_executions: Set[int] = set()
    store.get_artifacts_by_id([artifact_id])
    frontier = [(artifact_id, 0)]
    while frontier:
        current, depth = frontier.pop()
        for event in store.get_events_by_artifact_ids([current]):
            if event.type != OUTPUT or event.execution_id in seen_executions:
                continue
            seen_executions.add(event.execution_id)
            store.get_executions_by_id([event.execution_id])
            if runs:
                store.get_contexts_by_execution(event.execution_id)
            if depth >= DEPTH:
                continue
            for upstream in store.get_events_by_execution_ids([event.execution_id]):
                if upstream.type == INPUT and upstream.artifact_id not in seen_artifacts:
                    seen_artifacts.add(upstream.artifact_id)
                    store.get_artifacts_by_id([upstream.artifact_id])
                    frontier.append((upstream.artifact_id, depth + 1))
    for event in store.get_events_by_artifact_ids([artifact_id]):
        if event.type == INPUT and event.execution_id not in seen_executions:
            seen_executions.add(event.execution_id)
            store.get_executions_by_id([event.execution_id])
            if runs:
                store.get_contexts_by_execution(event.execution_id)
            for output in store.get_events_by_execution_ids([event.execution_id]):
                if output.type == OUTPUT and output.artifact_id not in seen_artifacts:
                    seen_artifacts.add(output.artifact_id)
                    store.get_artifacts_by_id([output.artifact_id])
    return seen_artifacts, seen_executions


def naive_impact(store: metadata_store.MetadataStore, artifact_id: int, runs: bool) -> Tuple[Set[int], Set[int]]:
    """Downstream one call per node (and, with `runs`, the run of each execution from its contexts). Returns the
    artifact and execution ids seen."""
    seen_artifacts: Set[int] = {artifact_id}
    seen_executions: Set[int] = set()
    frontier = [(artifact_id, 0)]
    while frontier:
        current, depth = frontier.pop()
        if depth >= DEPTH:
            continue
        for event in store.get_events_by_artifact_ids([current]):
            if event.type != INPUT or event.execution_id in seen_executions:
                continue
            seen_executions.add(event.execution_id)
            store.get_executions_by_id([event.execution_id])
            if runs:
                store.get_contexts_by_execution(event.execution_id)
            for output in store.get_events_by_execution_ids([event.execution_id]):
                if output.type == OUTPUT and output.artifact_id not in seen_artifacts:
                    seen_artifacts.add(output.artifact_id)
                    store.get_artifacts_by_id([output.artifact_id])
                    frontier.append((output.artifact_id, depth + 1))
    return seen_artifacts, seen_executions


_SUBGRAPH_MASK = ["artifacts", "executions", "events"]


def lineage_subgraph(store: metadata_store.MetadataStore, artifact_id: int, direction: int, hops: int
                     ) -> Tuple[Set[int], Set[int]]:
    """ml-metadata's server-side walk. Its starting nodes can only be given as a filter_query (`id = N`); it is
    measured here as a baseline only, kfp-lineage never uses filter_query. Returns artifact and execution ids."""
    options = mlmd_pb.LineageSubgraphQueryOptions(max_num_hops=hops, direction=direction)
    options.starting_artifacts.filter_query = f"id = {int(artifact_id)}"
    graph = store.get_lineage_subgraph(options, _SUBGRAPH_MASK)
    return {a.id for a in graph.artifacts}, {e.id for e in graph.executions}


def subgraph_trace(store: metadata_store.MetadataStore, artifact_id: int) -> Tuple[Set[int], Set[int]]:
    up = lineage_subgraph(store, artifact_id, mlmd_pb.LineageSubgraphQueryOptions.UPSTREAM, 2 * DEPTH)
    down = lineage_subgraph(store, artifact_id, mlmd_pb.LineageSubgraphQueryOptions.DOWNSTREAM, 2)
    return up[0] | down[0], up[1] | down[1]


# --- measuring -------------------------------------------------------------------------------------------------


class Method:
    """One way to answer the question, with its timings."""

    def __init__(self, name: str, call: Callable[[int], Tuple[Set[int], Set[int]]], note: str = ""):
        self.name = name
        self.call = call
        self.note = note
        self.wall: List[float] = []
        self.cpu: List[float] = []
        self.nodes: List[int] = []

    def run(self, artifact_id: int) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        artifacts, executions = self.call(artifact_id)
        self.cpu.append(time.process_time() - cpu)
        self.wall.append(time.perf_counter() - wall)
        self.nodes.append(len(artifacts) + len(executions))

    def p(self, q: float, values: Optional[List[float]] = None) -> float:
        values = sorted(values if values is not None else self.wall)
        return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000

    @property
    def p50(self) -> float:
        return statistics.median(self.wall) * 1000

    @property
    def cpu50(self) -> float:
        return statistics.median(self.cpu) * 1000


def measure(methods: Sequence[Method], samples: Sequence[int], warmup: int = 3) -> None:
    """Runs every method on every sample, rotating the order so machine noise falls on all of them alike."""
    for artifact_id in samples[:warmup]:
        for method in methods:
            method.call(artifact_id)
    for index, artifact_id in enumerate(samples):
        for offset in range(len(methods)):
            methods[(index + offset) % len(methods)].run(artifact_id)


def impact_breakdown(store: metadata_store.MetadataStore, sources: Sequence[int], rounds: int = 5
                     ) -> Dict[str, float]:
    """Where a summary impact's CPU time goes: the SQL statements it runs, replayed alone (SQLite's work with every
    column computed, then Python's row conversion), the garbage collector's pauses during the call, and the rest
    (building the graph). Medians over the datasets of the fastest of `rounds` repeats, in ms."""
    import gc

    from kfp_lineage.lineage import reader as lineage_reader
    from kfp_lineage.lineage import sqlite_reader as lineage_sql

    reader = lineage_reader.reader_for(store)
    if not isinstance(reader, lineage_sql.SqliteReader):
        return {}
    results: Dict[str, List[float]] = {"whole call": [], "SQLite engine": [], "rows to Python": [],
                                       "garbage collector": []}
    paused = [0.0, 0.0]  # time in collections so far, start of the current one

    def on_collection(phase: str, info: dict) -> None:
        if phase == "start":
            paused[1] = time.process_time()
        else:
            paused[0] += time.process_time() - paused[1]

    original = lineage_sql.SqliteReader._select
    for source in sources:
        statements: List[tuple] = []

        def recording(self, sql, ids, before=(), after=(), _statements=statements):
            _statements.append((sql, list(ids), tuple(before), tuple(after)))
            return original(self, sql, ids, before, after)

        lineage_sql.SqliteReader._select = recording
        try:
            queries.impact(store, source)
        finally:
            lineage_sql.SqliteReader._select = original
        calls, engine, rows = [], [], []
        for _ in range(rounds):
            gc.callbacks.append(on_collection)
            paused[0] = 0.0
            started = time.process_time()
            queries.impact(store, source)
            calls.append((time.process_time() - started, paused[0]))
            gc.callbacks.remove(on_collection)
            engine.append(_replay(reader, statements, materialize=True))
            rows.append(_replay(reader, statements, materialize=False))
        whole, collecting = min(calls)
        results["whole call"].append(whole)
        results["SQLite engine"].append(min(engine))
        results["rows to Python"].append(min(rows) - min(engine))
        results["garbage collector"].append(collecting)
    found = {name: statistics.median(values) * 1000 for name, values in results.items()}
    found["graph building in Python"] = (found["whole call"] - found["SQLite engine"] - found["rows to Python"]
                                         - found["garbage collector"])
    return found


def _replay(reader, statements: Sequence[tuple], materialize: bool) -> float:
    """CPU seconds to run these statements again: fetching every row, or (materialize) only having SQLite compute
    every column of every row into a temporary table and count them."""
    started = time.process_time()
    for sql, ids, before, after in statements:
        for start in range(0, max(len(ids), 1), 900):
            chunk = ids[start:start + 900]
            text = sql.format(ids=",".join("?" * len(chunk)))
            if materialize:
                text = f"WITH t AS MATERIALIZED ({text}) SELECT count(*) FROM t"
            reader.connection.execute(text, (*before, *chunk, *after)).fetchall()
    return time.process_time() - started


def graph_nodes(graph) -> Tuple[Set[int], Set[int]]:
    return set(graph.artifacts), set(graph.executions)


# --- report ----------------------------------------------------------------------------------------------------


def machine(server_versions: Dict[str, str]) -> Dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = f"{names[0]} ({os.cpu_count()} cores)" if names else cpu
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        pass
    found = {
        "cpu": cpu,
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    for package in ("ml-metadata",):
        try:
            found[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            found[package] = "not installed"
    found.update(server_versions)
    found["kfp-lineage"] = _commit()
    return found


def _driver_version(module: str) -> str:
    package = {"MySQLdb": "mysqlclient", "pymysql": "PyMySQL"}.get(module, module)
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return "(version unknown)"


def _commit() -> str:
    import subprocess

    try:
        return "commit " + subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                          text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def table(title: str, methods: Sequence[Method], reference: Method, target_ms: float) -> List[str]:
    lines = [f"### {title}", "",
             "| method | p50 ms | p95 ms | CPU p50 ms | nodes | p50 vs kfp-lineage |",
             "|---|---:|---:|---:|---:|---:|"]
    for method in methods:
        ratio = "1" if method is reference else f"{method.p50 / reference.p50:.1f}x slower"
        if method is not reference and method.p50 < reference.p50:
            ratio = f"{reference.p50 / method.p50:.1f}x faster"
        lines.append(f"| {method.name} | {method.p50:.2f} | {method.p(0.95):.2f} | {method.cpu50:.2f} | "
                     f"{statistics.median(method.nodes):.0f} | {ratio} |")
    verdict = "meets" if reference.p50 <= target_ms else "MISSES"
    lines += ["", f"Target p50 <= {target_ms:g} ms: {reference.name} {verdict} it ({reference.p50:.2f} ms, "
              f"{len(reference.wall)} samples).", ""]
    notes = [f"- {m.name}: {m.note}" for m in methods if m.note]
    return lines + notes + [""]


def naive_ratio(method: Method, reference: Method) -> str:
    return f"{method.p50 / reference.p50:.1f}x"


# --- the stores ------------------------------------------------------------------------------------------------


class Kind:
    """One store kind: its open ml-metadata store, and the methods measured on it."""

    def __init__(self, name: str, url: str, note: str = ""):
        self.name = name
        self.url = url
        self.note = note
        self.store = store_module.open_store(store_module.parse_store_url(url))
        self.reader = lineage_reader.reader_for(self.store)
        self.trace: List[Method] = []
        self.impact: List[Method] = []
        self.slow_impact: List[Method] = []


def server_kinds(args: argparse.Namespace, runs: int) -> Tuple[List[Kind], List[str], Dict[str, str]]:
    """The server stores to measure, the reasons others are left out, and the servers' versions."""
    kinds, skipped, versions = [], [], {}
    for scheme, given, variable in (("mysql", args.mysql, "KFP_LINEAGE_TEST_MYSQL_URL"),
                                    ("postgresql", args.postgresql, "KFP_LINEAGE_TEST_POSTGRESQL_URL")):
        base = given or os.environ.get(variable)
        if not base:
            skipped.append(f"{scheme}: no server given (--{scheme} URL or {variable})")
            continue
        started = time.time()
        url, _ = synthetic_store.load_or_build_server(base, runs)
        print(f"{scheme} store: {store_module.parse_store_url(url).redacted} ({time.time() - started:.0f} s)")
        kind = Kind(scheme, url)
        if kind.reader.kind != scheme:
            skipped.append(f"{scheme}: the SQL reader is unavailable ({kind.reader.kind} reader): install "
                           f"kfp-lineage[{scheme}]")
            continue
        row = kind.reader._query("SELECT VERSION()")  # type: ignore[attr-defined]
        versions[f"{scheme} server"] = str(row[0][0]).split(" on ")[0]
        driver = type(kind.reader.connection).__module__.split(".")[0]  # type: ignore[attr-defined]
        versions[f"{scheme} driver"] = f"{driver} {_driver_version(driver)}"
        kinds.append(kind)
    return kinds, skipped, versions


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the synthetic store")
    parser.add_argument("--trace-samples", type=int, default=200, help="models traced")
    parser.add_argument("--impact-rounds", type=int, default=5, help="passes over the shared datasets")
    parser.add_argument("--naive-impacts", type=int, default=2, help="datasets walked by the slow baselines")
    parser.add_argument("--mysql", metavar="URL", help="a MySQL/MariaDB server (its database part is replaced)")
    parser.add_argument("--postgresql", metavar="URL", help="a PostgreSQL server (its database part is replaced)")
    parser.add_argument("--output", default=RESULTS, help="the Markdown report (default bench/results-queries.md)")
    args = parser.parse_args(argv)

    started = time.time()
    path, summary = synthetic_store.load_or_build(args.runs)
    plain_path, _ = synthetic_store.load_or_build(args.runs, indexed=False)
    print(f"store: {path} ({os.path.getsize(path) / 1e6:.0f} MB; {os.path.getsize(plain_path) / 1e6:.0f} MB without "
          f"kfp-lineage's indexes): {summary.runs} runs, {summary.executions} executions, {summary.artifacts} "
          f"artifacts, {summary.events} events (built in {summary.seconds} s)")
    servers, skipped, versions = server_kinds(args, args.runs)
    load_before = load_average()
    indexed, plain = Kind("sqlite", path), Kind("sqlite", plain_path)
    store = indexed.store

    rng = random.Random(11)
    models = rng.sample(summary.models, min(args.trace_samples, len(summary.models)))
    sources = sorted(summary.sources)
    median_consumers = statistics.median(summary.sources.values())

    def sql_trace(kind: Kind) -> Callable[[int], Tuple[Set[int], Set[int]]]:
        return lambda a: graph_nodes(queries.trace(kind.store, queries.find_artifact(kind.store, str(a))))

    trace_methods = [
        Method("kfp-lineage trace (read-only SQL, kfp-lineage indexes)", sql_trace(indexed)),
        Method("kfp-lineage trace (read-only SQL, MLMD schema only)", sql_trace(plain),
               "the same file without kfp-lineage's indexes, as the KFP backend writes a store"),
        Method("kfp-lineage trace (ml-metadata calls)",
               lambda a: graph_nodes(queries.trace(store, queries.find_artifact(store, str(a)), sql=False)),
               "the same walk through the ml-metadata API, batched per level"),
        Method("naive walk, one call per node", lambda a: naive_trace(store, a, runs=False),
               "get_events/get_executions/get_artifacts with one id each; no run ids"),
        Method("naive walk + run of each execution", lambda a: naive_trace(store, a, runs=True),
               "as above plus get_contexts_by_execution per execution (unindexed in MLMD's SQLite schema)"),
        Method("get_lineage_subgraph", lambda a: subgraph_trace(store, a),
               f"UPSTREAM {2 * DEPTH} hops + DOWNSTREAM 2 hops, artifacts/executions/events only (no runs)"),
    ]
    print(f"trace, SQLite: {len(models)} models x {len(trace_methods)} methods")
    measure(trace_methods, models)

    impact_samples = sources * args.impact_rounds
    impact_methods = [
        Method("kfp-lineage impact (read-only SQL, kfp-lineage indexes)",
               lambda a: graph_nodes(queries.impact(store, a))),
        Method("kfp-lineage impact, full=True (read-only SQL, kfp-lineage indexes)",
               lambda a: graph_nodes(queries.impact(store, a, full=True)),
               "every property of every node and every event key (what --format json/html read)"),
        Method("kfp-lineage impact (read-only SQL, MLMD schema only)",
               lambda a: graph_nodes(queries.impact(plain.store, a))),
        Method("kfp-lineage impact, full=True (read-only SQL, MLMD schema only)",
               lambda a: graph_nodes(queries.impact(plain.store, a, full=True))),
        Method("kfp-lineage impact (ml-metadata calls)", lambda a: graph_nodes(queries.impact(store, a, sql=False)),
               "the same walk through the ml-metadata API, batched per level"),
        Method("get_lineage_subgraph", lambda a: lineage_subgraph(
            store, a, mlmd_pb.LineageSubgraphQueryOptions.DOWNSTREAM, 2 * DEPTH),
            f"DOWNSTREAM {2 * DEPTH} hops, artifacts/executions/events only (no runs)"),
    ]
    print(f"impact, SQLite: {len(impact_samples)} walks of datasets read by {median_consumers:.0f} runs x "
          f"{len(impact_methods)} methods")
    measure(impact_methods, impact_samples, warmup=1)
    naive_methods = [
        Method("naive walk, one call per node", lambda a: naive_impact(store, a, runs=False),
               "one id per call; no run ids"),
        Method("naive walk + run of each execution", lambda a: naive_impact(store, a, runs=True),
               "as above plus get_contexts_by_execution per execution"),
    ]
    print(f"impact, naive baselines: {args.naive_impacts} datasets")
    measure(naive_methods, sources[:args.naive_impacts], warmup=0)
    breakdown = impact_breakdown(store, sources)

    for kind in servers:
        label = {"mysql": "MySQL/MariaDB", "postgresql": "PostgreSQL"}[kind.name]
        kind.trace = [
            Method(f"kfp-lineage trace (read-only SQL, {label})", sql_trace(kind)),
            Method(f"kfp-lineage trace (ml-metadata calls, {label})",
                   lambda a, k=kind: graph_nodes(queries.trace(k.store, queries.find_artifact(k.store, str(a)),
                                                               sql=False))),
            Method(f"naive walk, one call per node ({label})", lambda a, k=kind: naive_trace(k.store, a, runs=False)),
        ]
        print(f"trace, {label}: {len(models)} models x {len(kind.trace)} methods")
        measure(kind.trace, models)
        kind.impact = [
            Method(f"kfp-lineage impact (read-only SQL, {label})",
                   lambda a, k=kind: graph_nodes(queries.impact(k.store, a))),
            Method(f"kfp-lineage impact, full=True (read-only SQL, {label})",
                   lambda a, k=kind: graph_nodes(queries.impact(k.store, a, full=True))),
        ]
        print(f"impact, {label}: {len(impact_samples)} walks x {len(kind.impact)} methods")
        measure(kind.impact, impact_samples, warmup=1)
        kind.slow_impact = [
            Method(f"kfp-lineage impact (ml-metadata calls, {label})",
                   lambda a, k=kind: graph_nodes(queries.impact(k.store, a, sql=False))),
            Method(f"naive walk, one call per node ({label})", lambda a, k=kind: naive_impact(k.store, a, runs=False)),
        ]
        print(f"impact, {label}, slow baselines: {args.naive_impacts} datasets")
        measure(kind.slow_impact, sources[:args.naive_impacts], warmup=0)
    load_after = load_average()

    trace_ref, impact_ref = trace_methods[0], impact_methods[0]
    info = machine(versions)
    overview = [("SQLite, kfp-lineage indexes", trace_methods[0], impact_methods[0], impact_methods[1],
                 trace_methods[3], naive_methods[0]),
                ("SQLite, MLMD schema only", trace_methods[1], impact_methods[2], impact_methods[3],
                 trace_methods[3], naive_methods[0])]
    for kind in servers:
        label = {"mysql": "MySQL/MariaDB", "postgresql": "PostgreSQL"}[kind.name]
        overview.append((label, kind.trace[0], kind.impact[0], kind.impact[1], kind.trace[2], kind.slow_impact[1]))
    lines = [
        "# Lineage query benchmark",
        "",
        f"Written by `bench/bench_queries.py` on {datetime.date.today().isoformat()} "
        f"({time.time() - started:.0f} s). Wall-clock times of library calls (`kfp_lineage.trace` / `impact` on an "
        "open ml-metadata store; each trace includes resolving the artifact id); CPU is this process's CPU time. "
        "The methods of a table take turns on every sample, so machine noise falls on all of them alike.",
        "",
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in info.items()),
        f"- load average (1, 5, 15 min) before: {load_before}; after: {load_after} "
        "(a shared machine: other work inflates wall-clock times; CPU times are less affected)",
        "",
        "## Store",
        "",
        f"`bench/synthetic_store.py`: {summary.runs} runs of 5 pipelines, {summary.executions} executions, "
        f"{summary.artifacts} artifacts, {summary.events} events, built in {summary.seconds} s with bulk "
        f"ml-metadata calls: {os.path.getsize(plain_path) / 1e6:.0f} MB of SQLite on MLMD's schema, "
        f"{os.path.getsize(path) / 1e6:.0f} MB with kfp-lineage's covering indexes (`kfp-lineage run` creates its "
        "stores with them; `kfp-lineage index` adds them), and the same runs in a MySQL/MariaDB and a PostgreSQL "
        "database. Each run is ingest -> train -> evaluate -> deploy inside a condition, as the KFP backend "
        "records it; 3% fail at evaluate, 12% skip the deploy, 8% are cache hits of ingest and train; "
        f"{len(summary.sources)} shared source datasets are each read by about {median_consumers:.0f} runs.",
        "",
        "## Every store kind (p50 ms)",
        "",
        "| store | trace | impact | impact, full (JSON) | naive trace | naive impact | impact vs naive |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(f"| {name} | {t.p50:.2f} | {i.p50:.1f} | {f.p50:.1f} | {nt.p50:.2f} | {ni.p50:.0f} | "
          f"{ni.p50 / i.p50:.0f}x faster |" for name, t, i, f, nt, ni in overview),
        "",
        f"Targets: trace p50 <= {TRACE_TARGET_MS:g} ms, impact p50 <= {IMPACT_TARGET_MS:g} ms. "
        + " ".join(f"{name}: trace {'meets' if t.p50 <= TRACE_TARGET_MS else 'MISSES'}, impact "
                   f"{'meets' if i.p50 <= IMPACT_TARGET_MS else 'MISSES'}." for name, t, i, _, _, _ in overview),
        *([""] + [f"Not measured: {reason}." for reason in skipped] if skipped else []),
        "",
        "## SQLite",
        "",
        *table(f"trace of a model ({len(models)} random models)", trace_methods, trace_ref, TRACE_TARGET_MS),
        *table(f"impact of a dataset read by ~{median_consumers:.0f} runs ({len(sources)} datasets x "
               f"{args.impact_rounds})", impact_methods + naive_methods, impact_ref, IMPACT_TARGET_MS),
        "### Where a summary impact's time goes (SQLite, kfp-lineage indexes)",
        "",
        "CPU time of one `impact` call, warm (the fastest of 5 repeats of each dataset, median over the datasets),",
        "split by replaying its SQL statements alone: SQLite computing every column of every row (into a temporary",
        "table, which slightly overstates it), then Python turning the rows into tuples; the walk runs with the",
        "garbage collector held off (ms). A call in the table above mostly runs on cold CPU caches (the methods take",
        "turns), which costs more:",
        "",
        "| part | ms |",
        "|---|---:|",
        *(f"| {name} | {value:.1f} |" for name, value in breakdown.items()),
        "",
    ]
    for kind in servers:
        label = {"mysql": "MySQL/MariaDB", "postgresql": "PostgreSQL"}[kind.name]
        lines += [f"## {label}", "",
                  *table(f"trace of a model ({len(models)} random models)", kind.trace, kind.trace[0],
                         TRACE_TARGET_MS),
                  *table(f"impact of a dataset read by ~{median_consumers:.0f} runs ({len(sources)} datasets x "
                         f"{args.impact_rounds}; the slow baselines {args.naive_impacts} datasets)",
                         kind.impact + kind.slow_impact, kind.impact[0], IMPACT_TARGET_MS)]
    lines += [
        "## Ratios",
        "",
        f"- trace (SQLite): naive walk {naive_ratio(trace_methods[3], trace_ref)}, naive walk with runs "
        f"{naive_ratio(trace_methods[4], trace_ref)}, get_lineage_subgraph "
        f"{naive_ratio(trace_methods[5], trace_ref)} the time of kfp-lineage.",
        f"- impact (SQLite): naive walk {naive_ratio(naive_methods[0], impact_ref)}, naive walk with runs "
        f"{naive_ratio(naive_methods[1], impact_ref)}, get_lineage_subgraph "
        f"{naive_ratio(impact_methods[5], impact_ref)} the time of kfp-lineage.",
        *(f"- {kind.name}: trace naive walk {naive_ratio(kind.trace[2], kind.trace[0])}, impact naive walk "
          f"{naive_ratio(kind.slow_impact[1], kind.impact[0])}, impact through ml-metadata calls "
          f"{naive_ratio(kind.slow_impact[0], kind.impact[0])} the time of kfp-lineage's SQL reader."
          for kind in servers),
        "",
        "`make bench` reruns this (the stores are cached: bench/.cache/ and a versioned database per server).",
        "",
    ]
    report = "\n".join(lines)
    print()
    print(report)
    with open(args.output, "w") as f:
        f.write(report)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
