"""Runner benchmarks, each measured against its peers in the same invocation (`make bench`).

1. Orchestration overhead per task, whole processes: a linear chain of 40 trivial lightweight components minus a
   chain of 2, divided by 38, so process start-up, imports and store opening cancel out. kfp-lineage (`kfp-lineage
   run`, fork server and plain subprocess launchers) against kfp.local `SubprocessRunner(use_venv=False)` of kfp
   2.13 (this venv) and of kfp 2.17.3 (its own venv under bench/.cache/, built with uv from the package index,
   compiling the pipeline with its own kfp). The implementations take turns on every repetition.
2. MLMD recording cost per task: time spent inside the recorder's ml-metadata calls (SQLite file store).
3. The training pipeline end to end, fork server against plain subprocesses.

Prints a table and writes bench/results.md. BENCH_REPS (default 5) sets the repetitions; medians are reported.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from importlib import metadata as importlib_metadata
from typing import Callable, Dict, List, Optional

warnings.filterwarnings("ignore")
os.environ.setdefault("GLOG_minloglevel", "1")

from kfp import compiler  # noqa: E402

from kfp_lineage.engine import run as run_module  # noqa: E402
from kfp_lineage.mlmd import recorder  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
REPS = int(os.environ.get("BENCH_REPS", "5"))
SHORT, LONG = 2, 40  # chain lengths; per-task overhead = (time(LONG) - time(SHORT)) / (LONG - SHORT)
PEER_KFP = "2.17.3"
PEER_VENV = os.path.join(HERE, ".cache", f"kfp-{PEER_KFP}-venv")
PEER_PYTHON = "3.11"

PIPELINES_SOURCE = textwrap.dedent(f'''
    from kfp import dsl

    @dsl.component(base_image="python:3.11-slim")
    def step(x: int) -> int:
        return x + 1

    def chain(length):
        @dsl.pipeline(name=f"chain-{{length}}")
        def pipeline(x: int = 0):
            task = step(x=x)
            for _ in range(length - 1):
                task = step(x=task.output)
        return pipeline

    chain_{SHORT} = chain({SHORT})
    chain_{LONG} = chain({LONG})
''')

# Runs one pipeline with kfp.local in a fresh process, like a user's script; argv: module dir, pipeline root,
# pipeline function name.
PEER_SCRIPT = textwrap.dedent('''
    import sys, warnings
    warnings.filterwarnings("ignore")
    sys.path.insert(0, sys.argv[1])
    from kfp import local
    import bench_pipelines
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])
    getattr(bench_pipelines, sys.argv[3])()
''')


def median_of(measure: Callable[[], float], reps: int = REPS) -> float:
    measure()  # warm-up: file caches, first imports
    return statistics.median(measure() for _ in range(reps))


def ensure_peer_venv() -> str:
    """The Python of a venv with kfp 2.17.3 (and nothing of ours), built once with uv; seeded with pip, which
    kfp.local runs for the pip-install prefix of every task."""
    python = os.path.join(PEER_VENV, "bin", "python")
    stamp = os.path.join(PEER_VENV, ".installed")
    if os.path.exists(stamp):
        return python
    import uv

    uv_bin = uv.find_uv_bin()
    started = time.perf_counter()
    subprocess.run([uv_bin, "venv", "--quiet", "--seed", "--python", PEER_PYTHON, PEER_VENV], check=True)
    subprocess.run([uv_bin, "pip", "install", "--quiet", "--python", python, f"kfp=={PEER_KFP}"], check=True)
    with open(stamp, "w") as f:
        f.write(f"kfp=={PEER_KFP}\n")
    print(f"built {PEER_VENV} in {time.perf_counter() - started:.1f} s", flush=True)
    return python


def _timed(command: List[str], cwd: str, env: Optional[Dict[str, str]] = None) -> float:
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed: {completed.stderr[-2000:]}")
    return elapsed


class Implementation:
    """One way to run the chains as whole processes, with its timings per chain length."""

    def __init__(self, name: str, run: Callable[[int, str], float]):
        self.name = name
        self.run = run
        self.times: Dict[int, List[float]] = {SHORT: [], LONG: []}

    def per_task(self) -> float:
        return (statistics.median(self.times[LONG]) - statistics.median(self.times[SHORT])) / (LONG - SHORT)

    def startup(self) -> float:
        """The fixed cost: the short chain minus its tasks."""
        return statistics.median(self.times[SHORT]) - SHORT * self.per_task()


def ours(work: str, launcher: str) -> Callable[[int, str], float]:
    cli = os.path.join(os.path.dirname(sys.executable), "kfp-lineage")
    store = os.path.join(work, f"{launcher}.sqlite")

    def run(length: int, tmp: str) -> float:
        return _timed([cli, "run", os.path.join(work, f"chain_{length}.yaml"), "--store", store,
                       "--pipeline-root", os.path.join(tmp, "root"), "--no-cache"], cwd=tmp,
                      env=dict(os.environ, KFP_LINEAGE_LAUNCHER=launcher))
    return run


def peer(python: str, module_dir: str) -> Callable[[int, str], float]:
    def run(length: int, tmp: str) -> float:
        return _timed([python, "-c", PEER_SCRIPT, module_dir, os.path.join(tmp, "root"), f"chain_{length}"],
                      cwd=tmp)
    return run


def overhead(work: str, module_dir: str, peer_python: str) -> List[Implementation]:
    """Every implementation runs both chains once per repetition, in turn, after one warm-up of each."""
    implementations = [
        Implementation("kfp-lineage (fork)", ours(work, "fork")),
        Implementation("kfp-lineage (subprocess)", ours(work, "subprocess")),
        Implementation(f"kfp.local {importlib_metadata.version('kfp')}", peer(sys.executable, module_dir)),
        Implementation(f"kfp.local {PEER_KFP}", peer(peer_python, module_dir)),
    ]
    for rep in range(REPS + 1):
        for implementation in implementations:
            for length in (SHORT, LONG):
                with tempfile.TemporaryDirectory(dir=work) as tmp:
                    elapsed = implementation.run(length, tmp)
                if rep:  # the first round warms file caches and the peer venv
                    implementation.times[length].append(elapsed)
        print(f"round {rep}: " + ", ".join(f"{i.name} {i.times[LONG][-1]:.1f} s" for i in implementations
                                             if i.times[LONG]), flush=True)
    return implementations


def recording_cost(spec_path: str, work: str, tasks: int) -> float:
    """Seconds per task spent in the recorder's ml-metadata calls during a fork-server run (in process)."""
    spent = [0.0]
    nesting = threading.local()  # create_execution calls record_finished_execution: count the outermost call only
    originals = {}
    # flush: a finished task's records may be written later, by the next of these calls or by the scheduler itself.
    for name in ("begin_run", "create_execution", "publish_execution", "record_finished_execution", "cache_index",
                 "finish_run", "flush"):
        original = getattr(recorder.Recorder, name)
        originals[name] = original

        @functools.wraps(original)
        def timed(self, *args, _original=original, **kwargs):
            nesting.depth = getattr(nesting, "depth", 0) + 1
            started = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                nesting.depth -= 1
                if not nesting.depth:
                    spent[0] += time.perf_counter() - started

        setattr(recorder.Recorder, name, timed)
    try:
        def measure() -> float:
            spent[0] = 0.0
            with tempfile.TemporaryDirectory(dir=work) as tmp:
                result = run_module.run_pipeline(spec_path, store=os.path.join(work, "recording.sqlite"),
                                                 pipeline_root=tmp, enable_cache=False, launcher="fork")
            assert result.state == "COMPLETE", result.tasks
            return spent[0] / tasks
        return median_of(measure)
    finally:
        for name, original in originals.items():
            setattr(recorder.Recorder, name, original)


def write_latency(work: str, writes: int = 40) -> Dict[str, float]:
    """p50 seconds of one fsync of a small file, and of one put_execution (an execution, a new artifact, an OUTPUT
    event, both run contexts: what the recorder writes per call) into a SQLite store in its default rollback
    journal mode and in WAL mode, in this run's directory: how much of a task's cost the disk sets."""
    import sqlite3

    from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

    from kfp_lineage.mlmd import store as store_module

    found: Dict[str, float] = {}
    probe = os.path.join(work, "fsync-probe")
    times = []
    with open(probe, "wb") as f:
        for _ in range(writes):
            f.write(b"x" * 512)
            started = time.perf_counter()
            f.flush()
            os.fsync(f.fileno())
            times.append(time.perf_counter() - started)
    found["fsync"] = statistics.median(times)
    for mode in ("delete", "wal"):
        path = os.path.join(work, f"latency-{mode}.sqlite")
        store = store_module.open_store(store_module.parse_store_url(path))
        if mode == "wal":
            sqlite3.connect(path).execute("PRAGMA journal_mode = WAL").fetchall()
            store = store_module.open_store(store_module.parse_store_url(path))
        execution_type = store.put_execution_type(mlmd_pb.ExecutionType(name="system.ContainerExecution"))
        artifact_type = store.put_artifact_type(mlmd_pb.ArtifactType(name="system.Dataset"))
        context_type = store.put_context_type(mlmd_pb.ContextType(name="system.PipelineRun"))
        [context_id] = store.put_contexts([mlmd_pb.Context(type_id=context_type, name="run")])
        context = mlmd_pb.Context(id=context_id, type_id=context_type, name="run")
        times = []
        for i in range(writes):
            execution = mlmd_pb.Execution(type_id=execution_type, last_known_state=mlmd_pb.Execution.RUNNING)
            for k in range(8):
                execution.custom_properties[f"p{k}"].string_value = "x" * 20
            artifact = mlmd_pb.Artifact(type_id=artifact_type, uri=f"/root/{i}/data")
            event = mlmd_pb.Event(type=mlmd_pb.Event.OUTPUT)
            event.path.steps.add().key = "data"
            started = time.perf_counter()
            store.put_execution(execution, [(artifact, event)], [context])
            times.append(time.perf_counter() - started)
        found[f"put_execution ({mode} journal)"] = statistics.median(times)
    return found


def training(work: str, launcher: str) -> float:
    def measure() -> float:
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            started = time.perf_counter()
            result = run_module.run_pipeline(
                os.path.join(REPO, "specs", "training.yaml"),
                {"source_uri": os.path.join(REPO, "data", "breast_cancer.csv"), "code_version": "bench"},
                store=os.path.join(tmp, "mlmd.sqlite"), pipeline_root=os.path.join(tmp, "root"), cwd=tmp,
                enable_cache=False, launcher=launcher)
            elapsed = time.perf_counter() - started
        assert result.state == "COMPLETE", {k: t.error for k, t in result.tasks.items() if t.error}
        return elapsed
    return median_of(measure, reps=max(3, REPS // 2))


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    started = time.time()
    peer_python = ensure_peer_venv()
    work = tempfile.mkdtemp(prefix="kfp-lineage-bench-")
    module_dir = os.path.join(work, "module")
    os.makedirs(module_dir)
    with open(os.path.join(module_dir, "bench_pipelines.py"), "w") as f:
        f.write(PIPELINES_SOURCE)
    sys.path.insert(0, module_dir)
    import bench_pipelines  # noqa: E402

    for length in (SHORT, LONG):
        compiler.Compiler().compile(getattr(bench_pipelines, f"chain_{length}"),
                                    os.path.join(work, f"chain_{length}.yaml"))
    load_before = load_average()
    implementations = overhead(work, module_dir, peer_python)
    cost = recording_cost(os.path.join(work, f"chain_{LONG}.yaml"), work, LONG)
    latency = write_latency(work)
    fork_training = training(work, "fork")
    plain_training = training(work, "subprocess")
    load_after = load_average()
    write_results(implementations, cost, latency, fork_training, plain_training, peer_python, load_before,
                  load_after, time.time() - started)


def write_results(implementations: List[Implementation], cost: float, latency: Dict[str, float],
                  fork_training: float, plain_training: float, peer_python: str, load_before: str, load_after: str,
                  seconds: float) -> None:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    peer_python_version = subprocess.run([peer_python, "-c", "import platform; print(platform.python_version())"],
                                         capture_output=True, text=True).stdout.strip()
    fork = implementations[0]
    rows = []
    for implementation in implementations:
        ratio = "1" if implementation is fork else f"{implementation.per_task() / fork.per_task():.1f}x"
        rows.append(f"| {implementation.name} | {implementation.per_task() * 1000:.1f} ms | "
                    f"{implementation.startup():.2f} s | {statistics.median(implementation.times[SHORT]):.2f} s | "
                    f"{statistics.median(implementation.times[LONG]):.2f} s | {ratio} |")
    peers = implementations[2:]
    lines = [
        "# Runner benchmark results",
        "",
        f"Machine: {os.cpu_count()} CPUs ({cpu or platform.machine()}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}. Date: {datetime.date.today().isoformat()}. "
        f"Load average before: {load_before}; after: {load_after} (a shared machine). Written by "
        f"`bench/bench_runner.py` in {seconds:.0f} s: medians of {REPS} repetitions after a warm-up round.",
        "",
        f"Versions: kfp-lineage with ml-metadata {importlib_metadata.version('ml-metadata')} and kfp "
        f"{importlib_metadata.version('kfp')}; peers kfp.local {importlib_metadata.version('kfp')} (this venv) and "
        f"kfp.local {PEER_KFP} (Python {peer_python_version}, its own venv built with uv), both "
        "`SubprocessRunner(use_venv=False)`, each compiling the pipeline with its own kfp.",
        "",
        f"## Overhead per task (chain of {LONG} minus chain of {SHORT}, whole processes)",
        "",
        f"Each implementation runs a chain of {SHORT} and a chain of {LONG} trivial components (`x + 1`) as a "
        f"fresh process, in turn with the others on every repetition; (time({LONG}) - time({SHORT})) / "
        f"{LONG - SHORT} is the cost of one more task, start-up is what remains of the short chain.",
        "",
        "| implementation | per task | start-up | chain of 2 | chain of 40 | per task vs kfp-lineage (fork) |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Goal: a task costs at least 50x less than in each kfp.local: "
        + "; ".join(f"{p.name} {p.per_task() / fork.per_task():.1f}x ("
                    f"{'meets' if p.per_task() / fork.per_task() >= 50 else 'MISSES'} it)" for p in peers) + ".",
        "",
        "## Other runner costs",
        "",
        "| benchmark | kfp-lineage (fork) | kfp-lineage (subprocess) | note |",
        "|---|---:|---:|---|",
        f"| MLMD recording per task (SQLite file with kfp-lineage's indexes), chain of {LONG}, in process | "
        f"{cost * 1000:.1f} ms | | {cost / fork.per_task():.0%} of the fork launcher's per-task cost (the writes "
        "overlap the task's run); kfp.local records nothing |",
        f"| training pipeline end to end (4 tasks + deploy), in process | {fork_training:.2f} s | "
        f"{plain_training:.2f} s | subprocess/fork {plain_training / fork_training:.1f}x |",
        "",
        "The disk under this run (p50 of 40; the recorder makes two writes per task, in SQLite's default "
        "rollback-journal mode). WAL mode would halve a write but is not safe here: ml-metadata links its own copy "
        "of SQLite, so a connection of Python's sqlite3 to the same store (the SQL reader, `kfp-lineage index`) "
        "cannot see its locks, and on closing it checkpoints and deletes the log ml-metadata is still writing; a "
        "test that ran a pipeline after such a close lost that run's records.",
        "",
        "| write | p50 |",
        "|---|---:|",
        *(f"| {name} | {value * 1000:.2f} ms |" for name, value in latency.items()),
        "",
    ]
    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
