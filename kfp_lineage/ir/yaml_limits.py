"""Limits on what a YAML input may expand to.

YAML aliases let a file of a few hundred bytes stand for a billion values (nine levels of ten aliases each). A
parser that copies every alias (protobuf's ParseDict) or a walk that visits every path (line numbering, schema
validation) would then run for hours. Compiled KFP specs and the lineage specs `kfp-lineage expect` writes have
no aliases; hand-written files use a few, which stay far below the limit.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Iterable, Set

# Values (mappings, sequences and scalars) a document may stand for once its aliases are expanded.
MAX_EXPANDED_VALUES = 1_000_000


def expands_beyond(root: Any, children: Callable[[Any], Iterable[Any]], limit: int = MAX_EXPANDED_VALUES) -> bool:
    """Whether the tree under `root`, with every shared node counted once per place it appears, has more than
    `limit` nodes.

    Args:
        root: the document (Python data or a YAML node).
        children: a node's children; an empty iterable for a leaf.
        limit: the most nodes allowed.

    Counts each shared node's subtree once (memoized by identity) and iteratively, so neither a billion paths nor
    a deep document costs more than one pass over the distinct nodes. A cycle (which safe YAML loading refuses)
    is counted as a leaf.
    """
    sizes: Dict[int, int] = {}
    in_progress: Set[int] = set()
    stack = [(root, False)]
    while stack:
        node, children_counted = stack.pop()
        if id(node) in sizes:
            continue
        if not children_counted:
            if id(node) in in_progress:
                continue
            in_progress.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children(node) if id(child) not in sizes)
            continue
        in_progress.discard(id(node))
        size = 1 + sum(sizes.get(id(child), 1) for child in children(node))
        if size > limit:
            return True
        sizes[id(node)] = size
    return False


def data_children(value: Any) -> Iterable[Any]:
    """The children of loaded YAML data: a dict's values, a list's items; nothing for a scalar."""
    if isinstance(value, dict):
        return value.values()
    if isinstance(value, list):
        return value
    return ()


# libyaml refuses documents nested deeper than 1,000 levels from 0.2.6 on; older ones recurse without a limit (in C,
# where no RecursionError stops them).
_LIBYAML_NESTING_LIMIT_SINCE = (0, 2, 6)
# The problem libyaml reports for a document nested past its limit.
LIBYAML_NESTING_PROBLEM = "exceeded maximum nesting depth"


@functools.lru_cache(maxsize=None)
def safe_loader() -> type:
    """The fastest safe YAML loader that still refuses deep nesting: PyYAML's C loader (libyaml, about 25x faster on
    a compiled spec) when its libyaml has a nesting limit, else the pure-Python loader, which Python's recursion
    limit stops. Both build the same data; a deep document is a RecursionError from the one, a YAMLError whose
    problem is LIBYAML_NESTING_PROBLEM from the other."""
    import yaml

    try:
        from yaml import _yaml  # PyYAML's C extension; missing where PyYAML was built without libyaml

        has_limit = tuple(_yaml.get_version()) >= _LIBYAML_NESTING_LIMIT_SINCE
    except (ImportError, AttributeError):
        has_limit = False
    return yaml.CSafeLoader if has_limit and hasattr(yaml, "CSafeLoader") else yaml.SafeLoader
