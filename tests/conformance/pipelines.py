"""One small pipeline per KFP v2 DSL feature, compiled by kfp 2.13 in the conformance tests."""

from typing import List, Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Output, PipelineTaskFinalStatus

IMAGE = "python:3.11-slim"


@dsl.component(base_image=IMAGE)
def numbers(count: int) -> List[int]:
    return list(range(count))


@dsl.component(base_image=IMAGE)
def square(x: int) -> int:
    return x * x


@dsl.component(base_image=IMAGE)
def write(text: str, data: Output[Dataset]):
    with open(data.path, "w") as f:
        f.write(text)
    data.metadata["text"] = text


@dsl.component(base_image=IMAGE)
def read(data: Input[Dataset]) -> str:
    with open(data.path) as f:
        return f.read()


@dsl.component(base_image=IMAGE)
def total(values: List[int]) -> int:
    return sum(values)


@dsl.component(base_image=IMAGE)
def join(datasets: Input[List[Dataset]]) -> str:
    texts = []
    for d in datasets:
        with open(d.path) as f:
            texts.append(f.read())
    return ",".join(sorted(texts))


@dsl.component(base_image=IMAGE)
def pause(seconds: float, x: int) -> int:
    import time

    time.sleep(seconds)
    return x


@dsl.component(base_image=IMAGE)
def fail_if(fail: bool, message: str) -> str:
    if fail:
        raise RuntimeError(message)
    return "fine"


@dsl.component(base_image=IMAGE)
def report_status(status: PipelineTaskFinalStatus) -> str:
    return f"{status.state}:{status.pipeline_task_name}:{status.error_message or ''}"


@dsl.component(base_image=IMAGE)
def flaky(counter_file: str, failures: int) -> int:
    import os

    attempts = int(open(counter_file).read()) if os.path.exists(counter_file) else 0
    with open(counter_file, "w") as f:
        f.write(str(attempts + 1))
    if attempts < failures:
        raise RuntimeError(f"attempt {attempts + 1} fails on purpose")
    return attempts + 1


@dsl.component(base_image=IMAGE)
def echo(text: str) -> str:
    return text


@dsl.pipeline(name="loop-over-task-output")
def loop_over_task_output(count: int = 4):
    made = numbers(count=count)
    with dsl.ParallelFor(made.output, parallelism=2) as x:
        squared = square(x=x)
        written = write(text=f"item-{x}")
    total(values=dsl.Collected(squared.output))
    join(datasets=dsl.Collected(written.outputs["data"]))


@dsl.pipeline(name="loop-over-constants-and-inputs")
def loop_over_constants_and_inputs(items: List[int] = [1, 2]):
    with dsl.ParallelFor(items) as outer:
        with dsl.ParallelFor([10, 20]) as inner:
            square(x=inner)
        square(x=outer)


@dsl.pipeline(name="loop-over-dicts")
def loop_over_dicts(rows: List[dict] = [{"city": "a"}, {"city": "b"}]):
    with dsl.ParallelFor(rows) as row:
        echo(text=row.city)


@dsl.pipeline
def _make_datasets(count: int) -> List[Dataset]:
    made = numbers(count=count)
    with dsl.ParallelFor(made.output) as x:
        written = write(text=f"d{x}")
    return dsl.Collected(written.outputs["data"])


@dsl.pipeline(name="loop-over-artifacts")
def loop_over_artifacts(count: int = 3):
    datasets = _make_datasets(count=count)
    with dsl.ParallelFor(datasets.output) as dataset:
        read(data=dataset)


@dsl.pipeline(name="wide-loop")
def wide_loop(count: int = 50, seconds: float = 0.2, parallelism_note: str = "4"):
    made = numbers(count=count)
    with dsl.ParallelFor(made.output, parallelism=4) as x:
        pause(seconds=seconds, x=x)


@dsl.pipeline(name="exit-handler")
def exit_handler(fail: bool = False):
    status = report_status()
    with dsl.ExitHandler(status, name="guarded"):
        fail_if(fail=fail, message="the guarded step broke")


@dsl.pipeline(name="ignore-upstream-failure")
def ignore_upstream_failure(fail: bool = True):
    broken = fail_if(fail=fail, message="upstream broke")
    echo(text="cleanup").after(broken).ignore_upstream_failure()


@dsl.pipeline(name="retry")
def retry(counter_file: str, failures: int = 2, retries: int = 2):
    flaky(counter_file=counter_file, failures=failures).set_retry(num_retries=2, backoff_duration="0s")


@dsl.pipeline
def _choose(flag: bool) -> Dataset:
    with dsl.If(flag == True):  # noqa: E712 (a KFP condition, not Python)
        first = write(text="first")
    with dsl.Else():
        second = write(text="second")
    return dsl.OneOf(first.outputs["data"], second.outputs["data"])


@dsl.pipeline(name="one-of")
def one_of(flag: bool = False) -> str:
    chosen = _choose(flag=flag)
    return read(data=chosen.output).output


@dsl.pipeline(name="importer")
def importer(uri: str, reimport: bool = False):
    imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset, reimport=False, metadata={"origin": "lake"})
    read(data=imported.output)


@dsl.pipeline(name="reimporter")
def reimporter(uri: str):
    imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset, reimport=True, metadata={"origin": "lake"})
    read(data=imported.output)


@dsl.pipeline(name="pipeline-outputs")
def pipeline_outputs(text: str = "hello") -> str:
    return echo(text=text).output


@dsl.pipeline(name="cached")
def cached(count: int = 3):
    made = numbers(count=count)
    written = write(text="payload")
    read(data=written.outputs["data"])
    total(values=made.output)
    echo(text="never cached").set_caching_options(False)


@dsl.container_component
def shell_echo(text: str, out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image="alpine:3.20", command=["sh", "-c", 'mkdir -p "$(dirname "$1")" && printf "%s" "$0" > "$1"'],
        args=[text, out],
    )


@dsl.pipeline(name="container-component")
def container_component(text: str = "from a shell"):
    shell_echo(text=text)


@dsl.container_component
def missing_program():
    return dsl.ContainerSpec(image="example.com/tool:1", command=["no-such-program-here"], args=["x"])


@dsl.pipeline(name="missing-program")
def missing_program_pipeline():
    missing_program()


@dsl.component(base_image=IMAGE)
def job_and_task(job_name: str, job_resource_name: str, job_uuid: str, task_name: str, task_uuid: str) -> str:
    import json

    return json.dumps([job_name, job_resource_name, job_uuid, task_name, task_uuid])


@dsl.pipeline(name="placeholders")
def placeholders():
    job_and_task(
        job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        job_resource_name=dsl.PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER,
        job_uuid=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        task_name=dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
        task_uuid=dsl.PIPELINE_TASK_ID_PLACEHOLDER,
    ).set_display_name("Job and task")


@dsl.component(base_image=IMAGE)
def identity(text: str) -> str:
    return text


@dsl.pipeline(name="fstrings")
def fstrings(name: str = "baz", count: int = 3):
    first = identity(text=f"bar-{name}-{count}")
    identity(text=f"foo-{first.output}")


@dsl.pipeline(name="braces-are-data")
def braces_are_data(text: str = "{{$.pipeline_root}} {{$.foo}} {{$}}"):
    passed = identity(text=text)
    identity(text=passed.output)


@dsl.component(base_image=IMAGE)
def describe_optional(data: Optional[Input[Dataset]] = None) -> str:
    return "no artifact" if data is None else data.uri


@dsl.pipeline(name="optional-input-artifact")
def optional_input_artifact(data: Optional[Input[Dataset]] = None):
    describe_optional(data=data)


@dsl.pipeline(name="required-input-artifact")
def required_input_artifact(data: Input[Dataset]):
    describe_optional(data=data)


@dsl.component(base_image=IMAGE)
def exit_quietly(code: int):
    import sys

    sys.exit(code)


@dsl.pipeline(name="quiet-exit")
def quiet_exit(code: int = 3):
    exit_quietly(code=code)
