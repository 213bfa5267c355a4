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


def test_the_fast_loader_builds_what_the_python_loader_builds(tmp_path):
    from kfp import compiler

    from tests.fixtures import pipelines

    path = tmp_path / "spec.yaml"
    compiler.Compiler().compile(pipelines.nested, str(path))
    text = path.read_text()
    loader = yaml_limits.safe_loader()
    assert list(yaml.load_all(text, Loader=loader)) == list(yaml.load_all(text, Loader=yaml.SafeLoader))
    assert issubclass(loader, (yaml.SafeLoader, yaml.CSafeLoader))


def test_the_fast_loader_refuses_deep_nesting_as_libyaml_or_python_does():
    loader = yaml_limits.safe_loader()
    deep = "k: " + "[" * 3000 + "1" + "]" * 3000
    try:
        yaml.load(deep, Loader=loader)
    except RecursionError:
        assert loader is yaml.SafeLoader
    except yaml.YAMLError as e:
        assert loader is yaml.CSafeLoader and e.problem == yaml_limits.LIBYAML_NESTING_PROBLEM
    else:
        raise AssertionError("a document nested 3000 deep was loaded")
