"""kfp_lineage.ir.yaml_limits: counting what a YAML document expands to."""

import yaml

from kfp_lineage.ir import yaml_limits


def test_counts_every_place_a_shared_node_appears():
    shared = [1, 2, 3]  # 4 values
    document = {"a": shared, "b": shared, "c": "x"}  # 1 + 4 + 4 + 1
    assert not yaml_limits.expands_beyond(document, yaml_limits.data_children, limit=10)
    assert yaml_limits.expands_beyond(document, yaml_limits.data_children, limit=9)


def test_a_billion_values_are_found_in_one_pass():
    level = ["x"] * 10
    for _ in range(9):
        level = [level] * 10  # the same list ten times: 10**9 leaves, 10 distinct lists
    assert yaml_limits.expands_beyond(level, yaml_limits.data_children)


def test_a_document_nested_far_deeper_than_the_recursion_limit():
    document = yaml.safe_load("[" * 100 + "]" * 100)
    for _ in range(50_000):
        document = [document]
    assert not yaml_limits.expands_beyond(document, yaml_limits.data_children)
    assert yaml_limits.expands_beyond(document, yaml_limits.data_children, limit=50_000)


def test_a_cycle_ends():
    cycle: list = []
    cycle.append(cycle)
    assert not yaml_limits.expands_beyond(cycle, yaml_limits.data_children)
