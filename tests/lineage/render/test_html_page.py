"""The HTML graph: one self-contained page (Cytoscape.js inlined, no network), rendered by headless Chromium with
the network blocked; the page reports the nodes it drew and fills the side panel for a selected node."""

import hashlib
import html
import re
import shutil
import subprocess

import pytest

from kfp_lineage.lineage import walk
from kfp_lineage.lineage.render import graph as render_graph
from kfp_lineage.lineage.render import html_page as render_html
from tests import conftest
from tests.lineage_stores import Builder, training_run

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # any network request would fail
    "--virtual-time-budget=5000",
]


@pytest.fixture
def trace_graph(sqlite_url):
    store = conftest.open_store(sqlite_url)
    builder = Builder(store)
    source = builder.artifact("system.Dataset", "bq://project.data.events", {"query": "SELECT <1> & 'x'"},
                              name="</script><script>alert(1)</script>")
    run = training_run(builder, "r1", source)
    return walk.trace(store, run.outputs[("train", "model")])


def chromium_or_skip() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed: apt-get install -y chromium (.ci/run installs it)")


def run_chromium(tmp_path, *args):
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    profile.mkdir()
    return subprocess.run([chromium_or_skip(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def test_the_page_is_self_contained(trace_graph):
    page = render_html.to_html(trace_graph, "trace of model")
    library = render_html.read_asset("cytoscape.min.js")
    assert library in page
    ours = page.replace(library, "")
    assert ours.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]*\ssrc=|<link[^>]*href=|@import|url\(|<iframe|<img|fetch\(|XMLHttpRequest",
                         ours, re.I)
    assert not re.search(r"\bfetch\(|XMLHttpRequest|WebSocket|importScripts", library)  # it only draws
    assert ours.count("</script>") == 3  # data, Cytoscape.js, our script: the hostile name is escaped
    assert "alert(1)" in ours and "<script>alert(1)" not in ours


def test_the_vendored_cytoscape_is_the_recorded_one():
    code = render_html.read_asset("cytoscape.min.js").encode()
    assert hashlib.sha256(code).hexdigest() == render_html.CYTOSCAPE_SHA256
    assert f"Cytoscape.js {render_html.CYTOSCAPE_VERSION}" in render_html.read_asset("README.md")
    assert "Permission is hereby granted" in render_html.read_asset("cytoscape.LICENSE")


def test_chromium_draws_every_node_and_shows_a_clicked_nodes_properties(trace_graph, tmp_path):
    page = tmp_path / "lineage.html"
    page.write_text(render_html.to_html(trace_graph, "trace of model"), encoding="utf-8")
    train = trace_graph.producer(trace_graph.artifact_id)

    result = run_chromium(tmp_path, "--dump-dom", f"{page.as_uri()}#select=e{train.id}")

    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    body = re.search(r"<body([^>]*)>", dom)[1]
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', body))
    expected = sorted([f"a{i}" for i in trace_graph.artifacts] +
                      [f"e{i}" for i, e in trace_graph.executions.items() if not e.is_dag])
    assert attributes["data-graph-ready"] == "true"
    assert sorted(attributes["data-rendered-nodes"].split()) == expected
    assert int(attributes["data-node-count"]) == len(expected)
    assert int(attributes["data-edge-count"]) == len(render_graph.drawable(trace_graph)[1]) == 8
    x1, y1, x2, y2 = map(int, attributes["data-rendered-box"].split())
    assert 0 <= x1 < x2 and 0 <= y1 < y2  # laid out inside the view
    assert attributes["data-selected"] == f"e{train.id}"
    panel = html.unescape(re.search(r'<aside id="details"[^>]*>(.*?)</aside>', dom, re.S)[1])
    assert "<h2>train</h2>" in panel
    assert "<th>param code_version</th><td><code>abc123</code></td>" in panel


def test_chromium_screenshot(trace_graph, tmp_path):
    page = tmp_path / "lineage.html"
    page.write_text(render_html.to_html(trace_graph, "trace of model"), encoding="utf-8")
    shot = tmp_path / "lineage.png"

    result = run_chromium(tmp_path, "--window-size=1400,800", f"--screenshot={shot}", page.as_uri())

    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 800)
    assert len(data) > 20_000  # a drawn graph, not a blank page
