"""Lineage queries over ml-metadata's gRPC service: a fixed number of round trips per lineage level, whatever the
number of nodes in the level, and the same graphs as the embedded store gives (tests/standins/mlmd_grpc.py)."""

import json

import pytest

from kfp_lineage.lineage import queries
from kfp_lineage.mlmd import store
from tests import conftest
from tests.lineage_stores import Builder

pytest_plugins = ["tests.standins.fixtures"]
pytestmark = pytest.mark.usefixtures("grpc_to_loopback")


def build_layers(metadata_store, width, depth):
    """One run of `depth` layers of `width` tasks; every task of a layer reads every artifact of the layer below and
    writes one artifact. Returns the artifact ids by layer (layer 0: the sources)."""
    builder = Builder(metadata_store)
    run = builder.run("layers")
    layers = [[builder.artifact("system.Dataset", f"gs://b/source-{i}", name=f"source-{i}") for i in range(width)]]
    for level in range(1, depth + 1):
        made = []
        for i in range(width):
            _, outputs = run.task(f"step-{level}-{i}", {"data": layers[-1]},
                                  {"out": ("system.Dataset", {"level": float(level)})})
            made.append(outputs["out"])
        layers.append(made)
    return layers


def rpcs(service, query):
    with service.counting() as counted:
        graph = query()
    return sum(counted().values()), graph


@pytest.fixture
def grpc_store(mlmd_grpc):
    return store.open_store(store.parse_store_url(mlmd_grpc.url))


@pytest.mark.parametrize("width", [1, 4])
def test_trace_costs_a_fixed_number_of_round_trips_per_level(mlmd_grpc, grpc_store, width):
    metadata_store = grpc_store
    layers = build_layers(metadata_store, width, depth=4)
    top = layers[-1][0]
    cost = {}
    for depth in (1, 2, 3):
        queries.trace(metadata_store, top, depth=depth)  # types are read once per store: warm them
        cost[depth], graph = rpcs(mlmd_grpc, lambda: queries.trace(metadata_store, top, depth=depth))
        assert len(graph.executions) == 1 + width * depth  # every node of every level was read
    per_level = cost[2] - cost[1]
    assert cost[3] - cost[2] == per_level <= 4, cost  # executions, their INPUT events, artifacts, OUTPUT events


def test_the_cost_of_a_walk_does_not_grow_with_the_nodes_in_a_level(tmp_path):
    from tests.standins.mlmd_grpc import MlmdGrpcStandIn

    costs = {}
    for width in (1, 6):
        with MlmdGrpcStandIn(str(tmp_path / f"w{width}.sqlite")) as service:
            metadata_store = store.open_store(store.parse_store_url(service.url))
            layers = build_layers(metadata_store, width, depth=3)
            for name, query in {
                "trace": lambda: queries.trace(metadata_store, layers[-1][0]),
                "impact": lambda: queries.impact(metadata_store, layers[0][0]),
                "impact full": lambda: queries.impact(metadata_store, layers[0][0], full=True),
                "show run": lambda: queries.describe_run(metadata_store, "layers"),
                "show artifact": lambda: queries.describe_artifact(metadata_store, layers[1][0]),
                "runs": lambda: queries.list_runs(metadata_store),
            }.items():
                query()
                costs[(name, width)], _ = rpcs(service, query)
    for name in ("trace", "impact", "impact full", "show run", "show artifact", "runs"):
        assert costs[(name, 1)] == costs[(name, 6)], (name, costs)


def test_graphs_read_over_grpc_equal_the_embedded_stores(mlmd_grpc, grpc_store):
    layers = build_layers(grpc_store, 3, depth=3)
    embedded = conftest.open_store(mlmd_grpc.sqlite_path)  # read with the SQL fast path
    for query in (lambda s: queries.trace(s, layers[-1][1]), lambda s: queries.impact(s, layers[0][2], full=True),
                  lambda s: queries.describe(s, "layers"), lambda s: queries.describe(s, "layers/step-2-1/out")):
        over_grpc, local = query(grpc_store).to_json(), query(embedded).to_json()
        assert json.dumps(over_grpc, sort_keys=True) == json.dumps(local, sort_keys=True)
