"""Lineage as text for people: the trace tree, the impact by run, one run, one artifact, and the runs table."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence

from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.mlmd import vocabulary

# Properties KFP writes for its own bookkeeping, left out of one-line summaries.
_BOOKKEEPING = frozenset({vocabulary.DISPLAY_NAME, vocabulary.STORE_SESSION_INFO})
_SUMMARY_KEYS = ("rows", "framework")
_METRICS_TYPES = lineage_graph.METRICS_TYPES
MAX_CONSUMER_LINES = 10  # trace: evaluations, deployments and other uses shown before "... N more"

Graph = lineage_graph.LineageGraph


def trace_text(graph: Graph) -> str:
    """The trace as an indented tree: the artifact, what it was made from (upstream to the sources), the code
    version, and the evaluations and deployments that used it.

    Args:
        graph: a "trace" graph from walk.trace.

    Returns:
        The text, without a trailing newline.
    """
    root = _root(graph)
    producer = graph.producer(root.id)
    lines = [_describe(root) + (f"   ({_origin(root, producer, None)})" if producer or root.run_id else "")]
    _walk_inputs(graph, root, 1, lines, {root.id}, root.run_id)
    code = root.properties.get("code_version") or (producer.parameters.get("code_version") if producer else None)
    if code:
        lines.append(f"  training_code: {code}")
    lines.extend(_consumer_lines(graph, root))
    return "\n".join(lines)


def _root(graph: Graph) -> lineage_graph.Artifact:
    root = graph.root
    if root is None:
        raise ValueError(f"a {graph.view} graph without its artifact")
    return root


def _origin(artifact: lineage_graph.Artifact, producer: Optional[lineage_graph.Execution],
            home_run: Optional[str]) -> str:
    """`run R, task T` (the run only when it differs from home_run)."""
    parts = []
    run_id = artifact.run_id or (producer.run_id if producer else None)
    if run_id and run_id != home_run:
        parts.append(f"run {run_id}")
    if producer:
        parts.append(f"task {_task_label(producer)}")
    return ", ".join(parts)


def _walk_inputs(graph: Graph, artifact: lineage_graph.Artifact, indent: int, lines: List[str], shown: set,
                 home_run: Optional[str]) -> None:
    pad = "  " * indent
    producer = graph.producer(artifact.id)
    if producer is None:
        return
    for event, child in graph.inputs(producer.id):
        child_producer = graph.producer(child.id)
        origin = _origin(child, child_producer, home_run)
        line = f"{pad}{event.key}: {_describe(child)}"
        if child.id in shown:
            lines.append(f"{line}  (artifact {child.id}, shown above)")
            continue
        shown.add(child.id)
        source = child.properties.get("query") or child.properties.get("source_uri")
        has_inputs = child_producer is not None and bool(graph.inputs(child_producer.id))
        if source and not has_inputs:
            lines.append(line)
            lines.append(f"{pad}  sourced_from: {source}" + (f"  ({origin})" if origin else ""))
        else:
            lines.append(line + (f"  ({origin})" if origin else ""))
        _walk_inputs(graph, child, indent + 1, lines, shown, home_run)
    if ("execution", producer.id) in graph.truncated:
        lines.append(f"{pad}... (depth limit reached: trace artifact {artifact.id} to go further)")


def _consumer_lines(graph: Graph, root: lineage_graph.Artifact) -> List[str]:
    lines: List[str] = []
    for event, consumer in graph.consumers(root.id):
        where = f"task {_task_label(consumer)}"
        if consumer.run_id and consumer.run_id != root.run_id:
            where += f", run {consumer.run_id}"
        outputs = [artifact for _, artifact in graph.outputs(consumer.id)]
        shown = False
        for artifact in outputs:
            if artifact.type in _METRICS_TYPES:
                lines.append(f"  metrics: {_metric_values(artifact)}  ({where})")
                shown = True
            elif artifact.is_endpoint:
                when = artifact.properties.get(vocabulary.DEPLOYED_AT)
                lines.append(f"  deployed_to: {artifact.endpoint}  ({where}{', ' + str(when) if when else ''})")
                if artifact.properties.get(vocabulary.DEPLOYED_BY):
                    lines.append(f"  deployed_by: {artifact.properties[vocabulary.DEPLOYED_BY]}")
                shown = True
        if not shown:
            made = ", ".join(f"{a.name or a.type}" for a in outputs)
            lines.append(f"  used_by: {where}, as {event.key}" + (f" -> {made}" if made else ""))
    if len(lines) > MAX_CONSUMER_LINES:
        hidden = len(lines) - MAX_CONSUMER_LINES
        lines = lines[:MAX_CONSUMER_LINES] + [f"  ... {hidden} more lines: kfp-lineage impact {root.id}"]
    elif ("artifact", root.id) in graph.truncated:
        lines.append(f"  ... more consumers: kfp-lineage impact {root.id}")
    return lines


def impact_text(graph: Graph) -> str:
    """Everything downstream of the artifact, grouped by run: each task that read something in the graph, what it
    read, and what it wrote; then the totals.

    Args:
        graph: an "impact" graph from walk.impact.

    Returns:
        The text, without a trailing newline.
    """
    root = _root(graph)
    producer = graph.producer(root.id)
    origin = _origin(root, producer, None)
    lines = [f"impact of {_describe(root)}" + (f"   ({origin})" if origin else "")]
    tasks = 0
    runs = 0
    for run_id, executions in graph.executions_by_run():
        consumers = [e for e in executions if graph.inputs(e.id)]
        if not consumers:
            continue
        runs += 1
        run = graph.runs.get(run_id) if run_id else None
        pipeline = f"  (pipeline {run.pipeline})" if run and run.pipeline else ""
        lines.append(f"run {run_id or '(unknown)'}{pipeline}")
        for execution in consumers:
            tasks += 1
            read = ", ".join(dict.fromkeys(event.key for event, _ in graph.inputs(execution.id)))
            state = execution.state
            reused = execution.properties.get(vocabulary.CACHED_EXECUTION_ID)
            if execution.state == "CACHED" and reused:
                state += f" (re-used execution {reused})"
            outputs = [artifact for event, artifact in graph.outputs(execution.id) if not _is_log(event, artifact)]
            others = sum(1 for a in outputs if not a.details)
            more = f"  (+{_count(others, 'other output')})" if others else ""
            lines.append(f"  {_task_label(execution)}  {state}  reads {read}{more}")
            for artifact in outputs:
                if not artifact.details:
                    continue
                made_elsewhere = artifact.run_id and artifact.run_id != run_id
                elsewhere = f"  (made in run {artifact.run_id})" if made_elsewhere else ""
                lines.append(f"    {_describe_output(artifact)}{elsewhere}")
    logs = {artifact.id for execution_id in graph.executions for event, artifact in graph.outputs(execution_id)
            if _is_log(event, artifact)}
    downstream = [a for a in graph.artifacts.values() if a.id != root.id and a.id not in logs
                  and graph.producer(a.id) is not None and graph.inputs(graph.producer(a.id).id)]
    models = sum(1 for a in downstream if a.is_model)
    endpoints = sum(1 for a in downstream if a.is_endpoint)
    limited = [node_id for kind, node_id in graph.truncated if kind == "artifact"]
    if not tasks and root.id not in limited:  # at --depth 0 the root's readers exist but were not walked
        lines.append("nothing read this artifact")
    lines.append(f"downstream: {_count(runs, 'run')}, {_count(tasks, 'task')}, {_count(len(downstream), 'artifact')}"
                 f" ({_count(models, 'model')}, {_count(endpoints, 'endpoint')})")
    if limited:
        lines.append(f"... depth limit reached at {_count(len(limited), 'artifact')} that other tasks read: "
                     "raise --depth to go further")
    return "\n".join(lines)


def _is_log(event: lineage_graph.Event, artifact: lineage_graph.Artifact) -> bool:
    """Whether the output is the task's log (the backend's `executor-logs` artifact; no user output can spell its key
    with a hyphen): `show` lists it as the task's log after what the task made, `impact` counts it nowhere. The
    summary walk reads no OUTPUT keys, and names a log stub by its display name instead."""
    return event.type == "OUTPUT" and vocabulary.EXECUTOR_LOGS in (event.key, artifact.name)


def _describe_output(artifact: lineage_graph.Artifact) -> str:
    text = _describe(artifact)
    if artifact.type in _METRICS_TYPES:
        values = _metric_values(artifact)
        text += f"  {values}" if values else ""
    elif artifact.is_endpoint:
        text += f"  deployed_to: {artifact.endpoint}"
    return text


def run_text(graph: Graph) -> str:
    """One run: its summary line, its arguments, then every task in the order it was created, with its state,
    duration, parameters, and the artifacts it read and wrote.

    Args:
        graph: a "run" graph from describe.describe_run.

    Returns:
        The text, without a trailing newline.
    """
    run = graph.runs[graph.run_id]  # type: ignore[index]
    lines = [runs_line(run)]
    executions = sorted(graph.executions.values(), key=lambda e: e.id)
    for execution in executions:
        if execution.path == "" and execution.parent_dag_id is None:
            if execution.parameters:
                lines.append(f"  arguments: {_parameters(execution.parameters)}")
            continue
        duration = execution.duration_seconds
        timing = f"  {_duration(duration)}" if duration is not None and not execution.is_dag else ""
        kind = "  (DAG)" if execution.is_dag else ""
        lines.append(f"  {execution.path or _task_label(execution)}  {execution.state}{timing}{kind}")
        if execution.is_dag:
            continue
        if execution.parameters:
            lines.append(f"    params: {_parameters(execution.parameters)}")
        for event, artifact in graph.inputs(execution.id):
            lines.append(f"    in  {event.key}: {_describe(artifact)}  [artifact {artifact.id}]")
        logs = []
        for event, artifact in graph.outputs(execution.id):
            elsewhere = f"  (from run {artifact.run_id})" if artifact.run_id and artifact.run_id != run.run_id else ""
            if _is_log(event, artifact):
                logs.append(f"    log: {artifact.uri}  [artifact {artifact.id}]{elsewhere}")
                continue
            lines.append(f"    out {event.key}: {_describe_output(artifact)}  [artifact {artifact.id}]{elsewhere}")
        lines.extend(logs)
        if execution.output_parameters:
            lines.append(f"    returns: {_parameters(execution.output_parameters)}")
    return "\n".join(lines)


def artifact_text(graph: Graph) -> str:
    """One artifact: type, state, URI, the execution that made it, cache hits that re-used it, when it was made,
    every property, and the executions that read it.

    Args:
        graph: an "artifact" graph from describe.describe_artifact.

    Returns:
        The text, without a trailing newline.
    """
    artifact = _root(graph)
    producer = graph.producer(artifact.id)
    lines = [f"artifact {artifact.id}: {artifact.name or '(no name)'}  {artifact.type}  {artifact.state}",
             f"  uri: {artifact.uri}"]
    if producer:
        lines.append(f"  made by: {_execution_ref(producer)}")
    for event in graph.events:
        if event.type == "OUTPUT" and event.artifact_id == artifact.id and event.execution_id != (
                producer.id if producer else None):
            lines.append(f"  re-used by: {_execution_ref(graph.executions[event.execution_id])}")
    created = lineage_graph.format_time(artifact.create_time)
    if created:
        lines.append(f"  created: {created}")
    if artifact.properties:
        lines.append("  properties:")
        for key in sorted(artifact.properties):
            lines.append(f"    {key}: {_value(artifact.properties[key])}")
    consumers = graph.consumers(artifact.id)
    if consumers:
        lines.append("  read by:")
        for event, execution in consumers:
            lines.append(f"    {_task_label(execution)} as {event.key}  ({_execution_ref(execution, name=False)})")
    return "\n".join(lines)


def _execution_ref(execution: lineage_graph.Execution, name: bool = True) -> str:
    parts = [f"run {execution.run_id}"] if execution.run_id else []
    parts += [f"execution {execution.id}", execution.state]
    inner = ", ".join(parts)
    return f"{_task_label(execution)}  ({inner})" if name else inner


RUNS_HEADER = ("RUN", "PIPELINE", "STATE", "STARTED", "DURATION", "TASKS")


def runs_table(runs: Sequence[lineage_graph.Run]) -> str:
    """The runs as an aligned table, one per line, under a header.

    Args:
        runs: summarized runs, from runs.list_runs.

    Returns:
        The table, without a trailing newline.
    """
    rows = [RUNS_HEADER] + [
        (run.run_id, run.pipeline or "-", run.state or "-", _start(run), _duration(run.duration_seconds),
         _task_counts(run.task_states))
        for run in runs
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(RUNS_HEADER) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
                     for row in rows)


def runs_line(run: lineage_graph.Run) -> str:
    """`run ID  pipeline P  STATE  started T  took D  tasks: ...`"""
    return (f"run {run.run_id}  pipeline {run.pipeline or '-'}  {run.state}  started {_start(run)}  "
            f"took {_duration(run.duration_seconds)}  tasks: {_task_counts(run.task_states)}")


def _start(run: lineage_graph.Run) -> str:
    stamp = lineage_graph.format_time(run.start_time)
    return stamp[:19] + "Z" if stamp else "-"


def _task_counts(states: Optional[Dict[str, int]]) -> str:
    if not states:
        return "none"
    return ", ".join(f"{count} {state.lower()}" for state, count in sorted(states.items()))


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "running"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _task_label(execution: lineage_graph.Execution) -> str:
    if execution.path:  # set where two tasks of a run share a name (placement.name_namesakes), and in run views
        return execution.path
    label = execution.label
    if execution.iteration_index is not None:
        label += f"[{execution.iteration_index}]"
    return label


def _describe(artifact: lineage_graph.Artifact) -> str:
    parts = [artifact.name or f"artifact {artifact.id}", artifact.type, artifact.uri]
    digest = artifact.properties.get("sha256")
    if digest:
        parts.append(f"sha256:{str(digest)[:12]}")
    for key in _SUMMARY_KEYS:
        if key in artifact.properties:
            parts.append(f"{key}={_number(artifact.properties[key])}")
    return "  ".join(str(p) for p in parts if p)


def _metric_values(artifact: lineage_graph.Artifact) -> str:
    return " ".join(f"{key}={_number(value)}" for key, value in sorted(artifact.properties.items())
                    if key not in _BOOKKEEPING)


def _parameters(values: Dict[str, Any]) -> str:
    return ", ".join(f"{key}={_short(json.dumps(value, sort_keys=True, default=str))}"
                     for key, value in sorted(values.items()))


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _value(value: Any) -> str:
    """A property value in full: JSON for structs and lists, integral floats without ".0"."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    return str(value)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
