"""Run ids: how local runs and submitted runs are named when the user gives no id."""

from __future__ import annotations

import datetime
import secrets


def new_run_id(pipeline_name: str) -> str:
    """`<pipeline name>-<UTC timestamp>-<6 hex digits>`: sortable by time and unique across machines."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{pipeline_name}-{stamp}-{secrets.token_hex(3)}"
