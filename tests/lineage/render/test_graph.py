"""DOT and Mermaid output: Graphviz renders the DOT (when `dot` is installed; CI installs graphviz), and both are
checked structurally: every node declared once, every edge between declared nodes, runs as clusters, hostile
names escaped."""

import re
import shutil
import subprocess

import pytest

from kfp_lineage.lineage import describe
from kfp_lineage.lineage import walk
from kfp_lineage.lineage.render import graph as render_graph
from tests import conftest
from tests.lineage_stores import CACHED, Builder, training_run

HOSTILE = 'he said "hi" <b>|#`\\ end\nnext'


@pytest.fixture
def store(sqlite_url):
    return conftest.open_store(sqlite_url)


@pytest.fixture
def graphs(store):
    builder = Builder(store)
    source = builder.artifact("system.Dataset", "bq://project.data.events", name="source")
    first = training_run(builder, "r1", source)
    training_run(builder, "r2", source, deploy=False)
    model = first.outputs[("train", "model")]
    odd = builder.run('run "odd" <1>')
    odd.task(HOSTILE, {HOSTILE: model}, {"out": ("system.Artifact", {})}, state=CACHED)
    return {
        "trace": walk.trace(store, model),
        "impact": walk.impact(store, source, full=True),
        "run": describe.describe_run(store, "r1"),
        "artifact": describe.describe_artifact(store, model),
    }


def parse_dot(text):
    """Node ids with their attributes, edges, and clusters of a DOT file written by render_graph.to_dot."""
    nodes = {}
    edges = []
    clusters = []
    for line in text.splitlines():
        stripped = line.strip()
        if match := re.fullmatch(r"(\w+) -> (\w+)(?: \[label=(\"(?:[^\"\\]|\\.)*\")\])?;", stripped):
            edges.append((match[1], match[2], match[3]))
        elif match := re.fullmatch(r"([ae]\d+) \[label=(\"(?:[^\"\\]|\\.)*\"), shape=(\w+), "
                                   r"fillcolor=\"(#[0-9a-f]{6})\"(, penwidth=3)?\];", stripped):
            assert match[1] not in nodes, f"{match[1]} declared twice"
            nodes[match[1]] = match.groups()[1:]
        elif stripped.startswith("subgraph cluster_"):
            clusters.append(stripped)
    assert text.count("{") == text.count("}")
    return nodes, edges, clusters


@pytest.mark.parametrize("view", ["trace", "impact", "run", "artifact"])
def test_dot_is_well_formed_and_graphviz_renders_it(graphs, view, tmp_path):
    graph = graphs[view]
    text = render_graph.to_dot(graph, f"{view} of something")
    nodes, edges, clusters = parse_dot(text)
    drawn_nodes, drawn_edges = render_graph.drawable(graph)
    assert set(nodes) == {n.id for n in drawn_nodes}
    assert len(edges) == len(drawn_edges) and all(s in nodes and t in nodes for s, t, _ in edges)
    assert len(clusters) == len({n.run_id for n in drawn_nodes if n.run_id})
    assert text.startswith("digraph lineage {\n  rankdir=LR;\n") and text.endswith("}\n")
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("graphviz `dot` is not installed (apt-get install graphviz); the structural check passed")
    svg = subprocess.run([dot, "-Tsvg"], input=text, capture_output=True, text=True, check=True).stdout
    assert svg.count('class="node"') == len(nodes) and svg.count('class="edge"') == len(edges)


def hostile_ids(graph):
    [execution] = [e for e in graph.executions.values() if e.task_name == HOSTILE]
    return execution.id, graph.artifact_id


def test_dot_escapes_quotes_backslashes_and_newlines(graphs):
    text = render_graph.to_dot(graphs["artifact"], 'title "quoted"')
    execution, artifact = hostile_ids(graphs["artifact"])
    assert 'label="title \\"quoted\\""' in text
    assert (f'    e{execution} [label="he said \\"hi\\" <b>|#`\\\\ end\\nnext\\nCACHED\\nexecution {execution}", '
            'shape=box' in text)
    assert f'  a{artifact} -> e{execution} [label="he said \\"hi\\" <b>|#`\\\\ end\\nnext"];' in text
    assert 'label="run run \\"odd\\" <1>"; style="rounded,dashed"' in text


def test_dot_of_the_trace_marks_the_root_and_colours_by_kind_and_state(graphs):
    nodes, edges, _ = parse_dot(render_graph.to_dot(graphs["trace"]))
    root = graphs["trace"].artifact_id
    assert nodes[f"a{root}"][-1] == ", penwidth=3"
    assert nodes[f"a{root}"][2] == render_graph.ARTIFACT_COLORS["model"]
    assert {n[1] for n in nodes.values()} == {"note", "box"}
    assert ("a" + str(root), f"e{graphs['trace'].consumers(root)[0][1].id}", '"model"') in edges


def parse_mermaid(text):
    """Checks the structure of render_graph.to_mermaid output; returns (nodes, edges, subgraphs)."""
    lines = text.splitlines()
    assert lines[0] == "---" and lines[1].startswith("title: ") and lines[2] == "---"
    assert lines[3] == "flowchart LR"
    nodes, edges, subgraphs = {}, [], []
    depth = 0
    for line in lines[4:]:
        stripped = line.strip()
        if match := re.fullmatch(r'subgraph (run\d+)\["([^"\n]*)"\]', stripped):
            subgraphs.append(match[1])
            depth += 1
        elif stripped == "end":
            depth -= 1
            assert depth >= 0
        elif match := re.fullmatch(r'([ae]\d+)(\(\["[^"\n]*"\]\)|\["[^"\n]*"\])', stripped):
            assert match[1] not in nodes
            nodes[match[1]] = match[2]
        elif match := re.fullmatch(r'([ae]\d+) -->(?:\|"([^"|\n]*)"\|)? ([ae]\d+)', stripped):
            edges.append((match[1], match[3], match[2]))
        elif match := re.fullmatch(r"classDef (\w+) [\w:#,-]+(?:,[\w:#-]+)*", stripped):
            pass
        elif match := re.fullmatch(r"class ([ae]\d+(?:,[ae]\d+)*) (\w+)", stripped):
            assert all(n in nodes for n in match[1].split(","))
        else:
            raise AssertionError(f"unexpected Mermaid line: {line!r}")
    assert depth == 0
    assert all(s in nodes and t in nodes for s, t, _ in edges)
    return nodes, edges, subgraphs


@pytest.mark.parametrize("view", ["trace", "impact", "run", "artifact"])
def test_mermaid_is_well_formed(graphs, view):
    graph = graphs[view]
    nodes, edges, subgraphs = parse_mermaid(render_graph.to_mermaid(graph, f"{view}: x"))
    drawn_nodes, drawn_edges = render_graph.drawable(graph)
    assert set(nodes) == {n.id for n in drawn_nodes}
    assert len(edges) == len(drawn_edges)
    assert len(subgraphs) == len({n.run_id for n in drawn_nodes if n.run_id})
    artifact_shapes = {shape[:2] for node, shape in nodes.items() if node.startswith("a")}
    assert artifact_shapes <= {"(["}


def test_mermaid_escapes_hostile_names(graphs):
    text = render_graph.to_mermaid(graphs["artifact"], "t")
    execution, artifact = hostile_ids(graphs["artifact"])
    assert f'  a{artifact} -->|"he said #quot;hi#quot; #lt;b#gt;#124;#35;#96;\\ end next"| e{execution}' in text
    assert '  subgraph run1["run run #quot;odd#quot; #lt;1#gt;"]' in text


def test_layered_positions_put_producers_left_of_consumers_and_survive_cycles():
    nodes = [render_graph.Node(id=i, kind="artifact", label=[i], group="dataset", color="#fff", run_id=None)
             for i in ("a1", "e1", "a2", "e2", "a3")]
    edges = [render_graph.Edge("a1", "e1", "", "INPUT"), render_graph.Edge("e1", "a2", "", "OUTPUT"),
             render_graph.Edge("a2", "e2", "", "INPUT"), render_graph.Edge("e2", "a3", "", "OUTPUT"),
             render_graph.Edge("a3", "e1", "", "INPUT")]  # a cycle back to e1
    sizes = {n.id: (100.0, 40.0) for n in nodes}
    positions = render_graph.layered_positions(nodes, edges, sizes)
    xs = [positions[n][0] for n in ("a1", "e1", "a2", "e2", "a3")]
    assert xs == sorted(xs) and len(set(xs)) == 5
