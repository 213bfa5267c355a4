"""Helpers for the lineage tests: running a test with both readers, and a graph as comparable JSON."""

import json

import pytest

BOTH_READERS = pytest.mark.parametrize("sql", [True, False], ids=["sql", "mlmd"])


def as_json(graph):
    return json.loads(json.dumps(graph.to_json(), sort_keys=True, default=str))
