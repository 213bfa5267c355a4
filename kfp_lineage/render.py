"""Rendering lineage for people: the indented text tree `kfp-lineage trace` prints."""

from __future__ import annotations

from typing import Any, List

from kfp_lineage import queries

_SKIPPED_PROPERTIES = {"display_name", "store_session_info"}


def trace_text(node: queries.ArtifactNode) -> str:
    """The trace as an indented tree, the starting artifact first."""
    lines: List[str] = []
    where = []
    if node.run_id:
        where.append(f"run {node.run_id}")
    if node.producer:
        where.append(f"task {node.producer.task_name}")
    lines.append(f"{_describe(node)}" + (f"   ({', '.join(where)})" if where else ""))
    _walk(node, 1, lines)
    code = node.properties.get("code_version") or (node.producer.parameters.get("code_version") if node.producer else None)
    if code:
        lines.append(f"  training_code: {code}")
    for evaluation in node.evaluations:
        shown = " ".join(f"{k}={_number(v)}" for k, v in sorted(evaluation["metrics"].items()))
        lines.append(f"  metrics: {shown}  (task {evaluation['task']})")
    for deployment in node.deployments:
        when = f", {deployment['deployed_at']}" if deployment.get("deployed_at") else ""
        lines.append(f"  deployed_to: {deployment['endpoint']}  (task {deployment['task']}{when})")
        if deployment.get("deployed_by"):
            lines.append(f"  deployed_by: {deployment['deployed_by']}")
    return "\n".join(lines)


def _walk(node: queries.ArtifactNode, indent: int, lines: List[str]) -> None:
    pad = "  " * indent
    for edge in node.inputs:
        lines.append(f"{pad}{edge.key}: {_describe(edge.node)}")
        source = edge.node.properties.get("query") or edge.node.properties.get("source_uri")
        if source and not edge.node.inputs:
            task = f"  (task {edge.node.producer.task_name})" if edge.node.producer else ""
            lines.append(f"{pad}  sourced_from: {source}{task}")
        _walk(edge.node, indent + 1, lines)
    if node.truncated:
        lines.append(f"{pad}... (depth limit reached)")


def _describe(node: queries.ArtifactNode) -> str:
    parts = [node.name or f"artifact {node.artifact_id}", node.type_name, node.uri]
    digest = node.properties.get("sha256")
    if digest:
        parts.append(f"sha256:{str(digest)[:12]}")
    for key in ("rows", "framework"):
        if key in node.properties:
            parts.append(f"{key}={_number(node.properties[key])}")
    return "  ".join(str(p) for p in parts if p)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    return str(value)
