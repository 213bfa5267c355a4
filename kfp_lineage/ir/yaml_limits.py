"""Limits on what a YAML input may expand to.

YAML aliases let a file of a few hundred bytes stand for a billion values (nine levels of ten aliases each). A
parser that copies every alias (protobuf's ParseDict) or a walk that visits every path (line numbering, schema
validation) would then run for hours. Compiled KFP specs and the lineage specs `kfp-lineage expect` writes have
no aliases; hand-written files use a few, which stay far below the limit.
"""

from __future__ import annotations

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
