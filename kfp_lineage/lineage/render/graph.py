"""Lineage as a drawable graph: Graphviz DOT and Mermaid flowchart text, and the node and edge list they share.

Artifacts and executions are nodes, events are edges (artifact -> execution for INPUT, execution -> artifact for
OUTPUT), grouped into one box per run. DAG executions only pass artifacts on, so they are left out.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, List, Optional, Tuple

from kfp_lineage.lineage import graph as lineage_graph

# Fill colours: artifacts by kind, executions by state.
ARTIFACT_COLORS = {
    "dataset": "#dbeafe",
    "model": "#fde68a",
    "metrics": "#dcfce7",
    "endpoint": "#fbcfe8",
    "artifact": "#f3f4f6",
}
STATE_COLORS = {
    "COMPLETE": "#bbf7d0",
    "CACHED": "#bfdbfe",
    "FAILED": "#fecaca",
    "CANCELED": "#e5e7eb",
    "RUNNING": "#fef08a",
}
_DEFAULT_STATE_COLOR = "#ffffff"


@dataclasses.dataclass
class Node:
    """A node to draw."""

    id: str  # "a<artifact id>" or "e<execution id>"
    kind: str  # "artifact" or "execution"
    label: List[str]  # lines
    group: str  # artifact kind (dataset, model, metrics, endpoint, artifact) or execution state
    color: str
    run_id: Optional[str]
    is_root: bool = False


@dataclasses.dataclass
class Edge:
    """An edge to draw: an event."""

    source: str
    target: str
    label: str
    event_type: str


def artifact_kind(artifact: lineage_graph.Artifact) -> str:
    """dataset, model, metrics, endpoint or artifact: what colour an artifact gets."""
    if artifact.is_endpoint:
        return "endpoint"
    name = artifact.type.rsplit(".", 1)[-1].lower()
    if "model" in name:
        return "model"
    if "metrics" in name:
        return "metrics"
    if "dataset" in name or "table" in name:
        return "dataset"
    return "artifact"


def drawable(graph: lineage_graph.LineageGraph) -> Tuple[List[Node], List[Edge]]:
    """The nodes and edges of a lineage graph, in a stable order (by id)."""
    nodes: List[Node] = []
    for artifact in sorted(graph.artifacts.values(), key=lambda a: a.id):
        kind = artifact_kind(artifact)
        nodes.append(Node(
            id=f"a{artifact.id}", kind="artifact", group=kind, color=ARTIFACT_COLORS[kind], run_id=artifact.run_id,
            label=[artifact.name or f"artifact {artifact.id}", artifact.type, f"artifact {artifact.id}"],
            is_root=artifact.id == graph.artifact_id,
        ))
    shown = {e.id for e in graph.executions.values() if not e.is_dag}
    for execution in sorted(graph.executions.values(), key=lambda e: e.id):
        if execution.id not in shown:
            continue
        label = execution.label + (f"[{execution.iteration_index}]" if execution.iteration_index is not None else "")
        nodes.append(Node(
            id=f"e{execution.id}", kind="execution", group=execution.state,
            color=STATE_COLORS.get(execution.state, _DEFAULT_STATE_COLOR), run_id=execution.run_id,
            label=[label, execution.state, f"execution {execution.id}"],
        ))
    edges: List[Edge] = []
    for event in sorted(graph.events, key=lambda e: (e.execution_id, e.type, e.key, e.artifact_id)):
        if event.execution_id not in shown or event.artifact_id not in graph.artifacts:
            continue
        artifact, execution = f"a{event.artifact_id}", f"e{event.execution_id}"
        if event.type == "OUTPUT":
            edges.append(Edge(execution, artifact, event.key, event.type))
        else:
            edges.append(Edge(artifact, execution, event.key, event.type))
    return nodes, edges


def _runs_in_order(nodes: List[Node]) -> List[Optional[str]]:
    return list(dict.fromkeys(n.run_id for n in nodes))


def to_dot(graph: lineage_graph.LineageGraph, title: str = "lineage") -> str:
    """The graph as Graphviz DOT (`dot -Tsvg`), left to right, one cluster per run.

    Args:
        graph: any lineage graph.
        title: the graph's label.

    Returns:
        DOT text ending with a newline.
    """
    nodes, edges = drawable(graph)
    lines = [
        "digraph lineage {",
        "  rankdir=LR;",
        f"  label={_dot_string(title)}; labelloc=t; fontname=\"Helvetica\";",
        '  node [fontname="Helvetica", fontsize=10, style="filled"];',
        '  edge [fontname="Helvetica", fontsize=9, color="#6b7280"];',
    ]
    by_run: Dict[Optional[str], List[Node]] = {}
    for node in nodes:
        by_run.setdefault(node.run_id, []).append(node)
    for index, run_id in enumerate(_runs_in_order(nodes)):
        indent = "  "
        if run_id is not None:
            lines.append(f"  subgraph cluster_{index} {{")
            lines.append(f"    label={_dot_string('run ' + run_id)}; style=\"rounded,dashed\"; color=\"#9ca3af\";")
            indent = "    "
        for node in by_run[run_id]:
            shape = "note" if node.kind == "artifact" else "box"
            extra = ", penwidth=3" if node.is_root else ""
            lines.append(f"{indent}{node.id} [label={_dot_string(chr(10).join(node.label))}, shape={shape}, "
                         f"fillcolor=\"{node.color}\"{extra}];")
        if run_id is not None:
            lines.append("  }")
    for edge in edges:
        label = f" [label={_dot_string(edge.label)}]" if edge.label else ""
        lines.append(f"  {edge.source} -> {edge.target}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_string(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as \\n (centred lines)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n")
    return f'"{escaped}"'


def to_mermaid(graph: lineage_graph.LineageGraph, title: str = "lineage") -> str:
    """The graph as a Mermaid flowchart (renders in GitHub and GitLab Markdown), left to right, one subgraph per
    run, artifacts as stadiums and executions as boxes, coloured with classDefs.

    Args:
        graph: any lineage graph.
        title: written as the front-matter title.

    Returns:
        Mermaid text ending with a newline.
    """
    nodes, edges = drawable(graph)
    lines = ["---", f"title: {_mermaid_title(title)}", "---", "flowchart LR"]
    by_run: Dict[Optional[str], List[Node]] = {}
    for node in nodes:
        by_run.setdefault(node.run_id, []).append(node)
    for index, run_id in enumerate(_runs_in_order(nodes)):
        indent = "  "
        if run_id is not None:
            lines.append(f'  subgraph run{index}["{_mermaid_text("run " + run_id)}"]')
            indent = "    "
        for node in by_run[run_id]:
            text = "<br/>".join(_mermaid_text(line) for line in node.label)
            shape = f'(["{text}"])' if node.kind == "artifact" else f'["{text}"]'
            lines.append(f"{indent}{node.id}{shape}")
        if run_id is not None:
            lines.append("  end")
    for edge in edges:
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"  {edge.source} -->{label} {edge.target}")
    groups: Dict[str, List[str]] = {}
    colors: Dict[str, str] = {}
    for node in nodes:
        css_class = _css_class(node)
        groups.setdefault(css_class, []).append(node.id)
        colors[css_class] = node.color
    for css_class in sorted(groups):
        lines.append(f"  classDef {css_class} fill:{colors[css_class]},stroke:#374151,color:#111827")
        lines.append(f"  class {','.join(groups[css_class])} {css_class}")
    roots = [n.id for n in nodes if n.is_root]
    if roots:
        lines.append("  classDef root stroke-width:4px")
        lines.append(f"  class {','.join(roots)} root")
    return "\n".join(lines) + "\n"


def _css_class(node: Node) -> str:
    prefix = "artifact_" if node.kind == "artifact" else "state_"
    return prefix + re.sub(r"[^A-Za-z0-9]", "_", node.group.lower())


_MERMAID_ENTITIES = {'"': "#quot;", "<": "#lt;", ">": "#gt;", "#": "#35;", "|": "#124;", "`": "#96;"}


def _mermaid_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label: quotes, angle brackets, #, | and backticks as entity codes."""
    return "".join(_MERMAID_ENTITIES.get(ch, ch) for ch in text.replace("\n", " "))


def _mermaid_title(text: str) -> str:
    return re.sub(r"[\r\n]", " ", text).replace(":", " -")


def layered_positions(nodes: List[Node], edges: List[Edge], sizes: Dict[str, Tuple[float, float]],
                      gap_x: float = 70, gap_y: float = 26) -> Dict[str, Tuple[float, float]]:
    """A left-to-right layered layout: each node's column is the longest path to it from a source (edges that
    close a cycle are ignored), rows in a column follow the average row of the node's predecessors.

    Args:
        nodes: the nodes, in the order to break ties in.
        edges: the edges.
        sizes: node id -> (width, height) in pixels.
        gap_x: space between columns; gap_y: space between nodes in a column.

    Returns:
        node id -> (x, y) of its centre.
    """
    order = {n.id: i for i, n in enumerate(nodes)}
    successors: Dict[str, List[str]] = {n.id: [] for n in nodes}
    predecessors: Dict[str, List[str]] = {n.id: [] for n in nodes}
    for edge in edges:
        if edge.source in successors and edge.target in successors:
            successors[edge.source].append(edge.target)
    # Drop edges that close a cycle: iterative DFS from every node in order, an edge to a node on the stack is
    # a back edge.
    state: Dict[str, int] = {}
    kept: Dict[str, List[str]] = {n: [] for n in successors}
    for start in successors:
        if start in state:
            continue
        stack = [(start, iter(successors[start]))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                continue  # back edge
            else:
                kept[node].append(child)
                if child not in state:
                    state[child] = 1
                    stack.append((child, iter(successors[child])))
    for source, targets in kept.items():
        for target in targets:
            predecessors[target].append(source)
    # Longest-path layering in topological order (Kahn).
    indegree = {n: len(p) for n, p in predecessors.items()}
    ready = sorted((n for n, d in indegree.items() if d == 0), key=order.__getitem__)
    column: Dict[str, int] = {}
    while ready:
        node = ready.pop(0)
        column[node] = max((column[p] + 1 for p in predecessors[node]), default=0)
        for child in kept[node]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    columns: Dict[int, List[str]] = {}
    for node in sorted(column, key=lambda n: (column[n], order[n])):
        columns.setdefault(column[node], []).append(node)
    positions: Dict[str, Tuple[float, float]] = {}
    x = 0.0
    for index in sorted(columns):
        members = columns[index]
        rank = {m: sum(positions[p][1] for p in predecessors[m]) / len(predecessors[m])
                if predecessors[m] else float(order[m]) * 1e-6 for m in members}
        members.sort(key=lambda m: (rank[m], order[m]))
        width = max(sizes[m][0] for m in members)
        total = sum(sizes[m][1] for m in members) + gap_y * (len(members) - 1)
        y = -total / 2
        for member in members:
            height = sizes[member][1]
            positions[member] = (x + width / 2, y + height / 2)
            y += height + gap_y
        x += width + gap_x
    return positions
