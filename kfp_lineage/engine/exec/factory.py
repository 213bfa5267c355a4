"""Choosing a run's task handler by name: the one place that lists the ways of running a task."""

from __future__ import annotations

from typing import Callable, Dict

from kfp_lineage import errors
from kfp_lineage.engine.exec import fork_handler
from kfp_lineage.engine.exec import handler
from kfp_lineage.engine.exec import subprocess_handler

# The names RunOptions.launcher, run_pipeline(launcher=...) and KFP_LINEAGE_LAUNCHER accept; the first is the
# default.
HANDLERS: Dict[str, Callable[[handler.HandlerContext], handler.TaskHandler]] = {
    "fork": fork_handler.ForkHandler,
    "subprocess": subprocess_handler.SubprocessHandler,
}
DEFAULT_HANDLER = next(iter(HANDLERS))


def check_handler_name(name: str) -> None:
    """Raises InvalidInputError naming the known handlers when `name` is not one of them."""
    if name not in HANDLERS:
        known = " or ".join(repr(known) for known in HANDLERS)
        raise errors.InvalidInputError(f"launcher {name!r} is not known: use {known}")


def create_handler(name: str, context: handler.HandlerContext) -> handler.TaskHandler:
    """The run's task handler called `name`.

    Raises:
        InvalidInputError: no handler has that name.
    """
    check_handler_name(name)
    return HANDLERS[name](context)
