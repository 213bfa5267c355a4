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
