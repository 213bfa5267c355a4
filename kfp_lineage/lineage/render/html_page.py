"""Lineage as one self-contained HTML page: an interactive Cytoscape.js graph (pan, zoom, click a node for its
properties) with the library and the data inlined, so it opens offline and makes no network request."""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any, Dict, List

from kfp_lineage.lineage import graph as lineage_graph
from kfp_lineage.lineage.render import graph as render_graph
from kfp_lineage.mlmd import vocabulary

CYTOSCAPE_VERSION = "3.34.4"
CYTOSCAPE_SHA256 = "081591ab735b2b6a3b31a3c60f8f3a3e2fee8c92939e0c7820ad1208571b6cd8"
TEMPLATE = "lineage-graph.html"
_CHAR_WIDTH, _LINE_HEIGHT = 6.2, 13  # px per character and per line at the page's 10px node font


def read_asset(name: str) -> str:
    """A file of kfp_lineage/assets as text."""
    return resources.files("kfp_lineage").joinpath("assets", name).read_text(encoding="utf-8")


def to_html(graph: lineage_graph.LineageGraph, title: str) -> str:
    """The graph as a standalone HTML page.

    Args:
        graph: any lineage graph.
        title: the page title and heading.

    Returns:
        The page; it embeds Cytoscape.js and the graph's data, and loads nothing else.
    """
    nodes, edges = render_graph.drawable(graph)
    details = _details(graph)
    legend: Dict[str, str] = {}
    sizes = {n.id: (round(max(len(line) for line in n.label) * _CHAR_WIDTH + 18), len(n.label) * _LINE_HEIGHT + 12)
             for n in nodes}
    positions = render_graph.layered_positions(nodes, edges, sizes)
    elements: List[Dict[str, Any]] = []
    for node in nodes:
        legend.setdefault(f"{node.kind}: {node.group.lower()}", node.color)
        title_text, subtitle, rows = details[node.id]
        x, y = positions.get(node.id, (0.0, 0.0))
        elements.append({"data": {
            "id": node.id, "label": "\n".join(node.label), "kind": node.kind, "color": node.color,
            "root": node.is_root, "width": sizes[node.id][0], "height": sizes[node.id][1],
            "title": title_text, "subtitle": subtitle, "details": rows,
        }, "position": {"x": round(x, 1), "y": round(y, 1)}})
    edge_elements = [
        {"data": {"id": f"{e.source}-{e.target}", "source": e.source, "target": e.target, "label": e.label}}
        for e in edges
    ]
    executions = sum(1 for n in nodes if n.kind == "execution")
    runs = len({n.run_id for n in nodes if n.run_id})
    data = {
        "title": title,
        "summary": f"{len(nodes) - executions} artifacts, {executions} executions, {runs} run"
                   + ("" if runs == 1 else "s"),
        "nodes": elements,
        "edges": edge_elements,
        "legend": [{"label": label, "color": color} for label, color in sorted(legend.items())],
    }
    script = read_asset("cytoscape.min.js").replace("</script", "<\\/script")
    page = read_asset(TEMPLATE)
    page = page.replace("__TITLE__", html.escape(title), 1)
    page = page.replace("/*__DATA__*/", _script_json(data), 1)
    return page.replace("/*__CYTOSCAPE__*/", script, 1)


def _script_json(data: Any) -> str:
    """JSON that is safe inside a <script> element: no `<`, `>` or `&` that could end it."""
    text = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _details(graph: lineage_graph.LineageGraph) -> Dict[str, tuple]:
    """node id -> (title, subtitle, [[name, value], ...]) for the side panel."""
    found: Dict[str, tuple] = {}
    for artifact in graph.artifacts.values():
        producer = graph.producer(artifact.id)
        rows = [["id", str(artifact.id)], ["type", artifact.type], ["uri", artifact.uri], ["state", artifact.state],
                ["run", artifact.run_id or ""],
                ["made by", f"{producer.label} (execution {producer.id})" if producer else ""],
                ["created", lineage_graph.format_time(artifact.create_time) or ""]]
        rows += [[key, _text(value)] for key, value in sorted(artifact.properties.items())]
        found[f"a{artifact.id}"] = (artifact.name or f"artifact {artifact.id}", f"artifact · {artifact.type}", rows)
    for execution in graph.executions.values():
        duration = execution.duration_seconds
        rows = [["id", str(execution.id)], ["type", execution.type], ["task", execution.task_name],
                ["path", execution.path or ""], ["state", execution.state], ["run", execution.run_id or ""],
                ["started", lineage_graph.format_time(execution.create_time) or ""],
                ["duration", f"{duration:.1f} s" if duration is not None else ""]]
        rows += [[f"param {key}", _text(value)] for key, value in sorted(execution.parameters.items())]
        rows += [[f"returns {key}", _text(value)] for key, value in sorted(execution.output_parameters.items())]
        rows += [[key, _text(value)] for key, value in sorted(execution.properties.items())
                 if key not in (vocabulary.INPUTS, vocabulary.OUTPUTS, vocabulary.TASK_NAME)]
        found[f"e{execution.id}"] = (execution.label, f"execution · {execution.type} · {execution.state}", rows)
    return found


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
