"""Pipelines that misbehave on purpose, for the fault tests."""

from kfp import dsl
from kfp.dsl import Dataset, Output

IMAGE = "python:3.11-slim"


@dsl.component(base_image=IMAGE)
def produce(data: Output[Dataset]):
    with open(data.path, "w") as f:
        f.write("ok")


@dsl.component(base_image=IMAGE)
def crash(data: dsl.Input[Dataset]):
    import os

    os._exit(3)  # no traceback, no executor output: a hard crash


@dsl.component(base_image=IMAGE)
def killed(data: dsl.Input[Dataset]):
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


@dsl.component(base_image=IMAGE)
def linger(data: dsl.Input[Dataset], seconds: float, marker: str) -> str:
    import time

    open(marker, "w").close()
    time.sleep(seconds)
    return "done"


@dsl.component(base_image=IMAGE)
def secretive(db_password: str, source_uri: str, api_key: str) -> str:
    print("connecting with", db_password, "to", source_uri, "using", api_key)
    return "connected"


@dsl.pipeline(name="crashing")
def crashing():
    crash(data=produce().outputs["data"])


@dsl.pipeline(name="killed-by-signal")
def killed_by_signal():
    killed(data=produce().outputs["data"])


@dsl.pipeline(name="lingering")
def lingering(seconds: float = 60.0, marker: str = "/tmp/marker"):
    linger(data=produce().outputs["data"], seconds=seconds, marker=marker)


@dsl.pipeline(name="secrets")
def with_secrets(db_password: str, source_uri: str, api_key: str):
    secretive(db_password=db_password, source_uri=source_uri, api_key=api_key)


@dsl.component(base_image=IMAGE)
def sleep_and_mark(seconds: float, marker: str) -> str:
    """Writes its pid (and a child's, in its process group) to `marker`, then sleeps."""
    import os
    import subprocess
    import time

    child = subprocess.Popen(["sleep", str(seconds)])
    with open(marker + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    os.replace(marker + ".tmp", marker)
    time.sleep(seconds)
    return "slept"


@dsl.component(base_image=IMAGE)
def wait_for(marker: str) -> str:
    import os
    import time

    while not os.path.exists(marker):
        time.sleep(0.05)
    return "seen"


@dsl.component(base_image=IMAGE)
def lock_store(store_path: str, marker: str):
    """Holds an exclusive lock on a SQLite store for two minutes: the runner's writes fail for good meanwhile."""
    import os
    import sqlite3
    import time

    time.sleep(1)  # the runner records a task's execution while the task starts: let that write land first
    connection = sqlite3.connect(store_path, isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    with open(marker + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(marker + ".tmp", marker)
    time.sleep(120)


@dsl.pipeline(name="slow-and-quick")
def slow_and_quick(seconds: float = 60.0, marker: str = "/tmp/marker"):
    """A slow task and a quick one that ends once the slow one runs (so the slow one is running then)."""
    sleep_and_mark(seconds=seconds, marker=marker)
    wait_for(marker=marker)


@dsl.pipeline(name="store-locked")
def store_locked(store_path: str, marker: str = "/tmp/marker"):
    """A task locks the store while another finishes: its publish fails once the retries run out."""
    lock_store(store_path=store_path, marker=marker)
    wait_for(marker=marker)
