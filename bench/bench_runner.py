"""Runner benchmarks, each measured against its peer in the same invocation (`make bench`).

1. Orchestration overhead per task: pipelines of trivial lightweight components (a linear chain of 10, a fan-out
   of 16), kfp-lineage (fork server and plain subprocess launchers) against kfp.local 2.13
   `SubprocessRunner(use_venv=False)` in this same venv. The components do nothing, so wall time / tasks is the
   per-task overhead.
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
import time
import warnings
from typing import Callable, Dict, List

warnings.filterwarnings("ignore")
os.environ.setdefault("GLOG_minloglevel", "1")

from kfp import compiler  # noqa: E402

from kfp_lineage.mlmd import recorder  # noqa: E402
from kfp_lineage.engine import run as run_module

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
REPS = int(os.environ.get("BENCH_REPS", "5"))

PIPELINES_SOURCE = textwrap.dedent('''
    from kfp import dsl

    @dsl.component(base_image="python:3.11-slim")
    def step(x: int) -> int:
        return x + 1

    @dsl.pipeline(name="linear-10")
    def linear_10(x: int = 0):
        task = step(x=x)
        for _ in range(9):
            task = step(x=task.output)

    @dsl.pipeline(name="fan-out-16")
    def fan_out_16(x: int = 0):
        for _ in range(16):
            step(x=x)
''')

PEER_SCRIPT = textwrap.dedent('''
    import sys, time, warnings
    warnings.filterwarnings("ignore")
    sys.path.insert(0, sys.argv[1])
    from kfp import local
    import bench_pipelines
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])
    pipeline = getattr(bench_pipelines, sys.argv[3])
    started = time.perf_counter()
    pipeline()
    print(time.perf_counter() - started)
''')


def median_of(measure: Callable[[], float], reps: int = REPS) -> float:
    measure()  # warm-up: file caches, first imports
    return statistics.median(measure() for _ in range(reps))


def ours(spec_path: str, work: str, launcher: str) -> float:
    """One run into the benchmark's store; like a user's, the store exists already (the warm-up created it)."""
    started = time.perf_counter()
    result = run_module.run_pipeline(spec_path, store=os.path.join(work, f"{launcher}.sqlite"),
                                     pipeline_root=os.path.join(work, "root"), enable_cache=False,
                                     launcher=launcher)
    elapsed = time.perf_counter() - started
    assert result.state == "COMPLETE", result.tasks
    return elapsed


def peer(module_dir: str, work: str, function: str) -> float:
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        out = subprocess.run([sys.executable, "-c", PEER_SCRIPT, module_dir, tmp, function], capture_output=True,
                             text=True, check=True, cwd=tmp)
    return float(out.stdout.strip().splitlines()[-1])


def recording_cost(spec_path: str, work: str, tasks: int) -> float:
    """Seconds per task spent in the recorder's ml-metadata calls during a fork-server run."""
    spent = [0.0]
    originals = {}
    for name in ("begin_run", "create_execution", "publish_execution", "record_finished_execution", "cache_index"):
        original = getattr(recorder.Recorder, name)
        originals[name] = original

        @functools.wraps(original)
        def timed(self, *args, _original=original, **kwargs):
            started = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started

        setattr(recorder.Recorder, name, timed)
    try:
        def measure() -> float:
            spent[0] = 0.0
            ours(spec_path, work, "fork")
            return spent[0] / tasks
        return median_of(measure)
    finally:
        for name, original in originals.items():
            setattr(recorder.Recorder, name, original)


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


def main() -> None:
    work = tempfile.mkdtemp(prefix="kfp-lineage-bench-")
    module_dir = os.path.join(work, "module")
    os.makedirs(module_dir)
    with open(os.path.join(module_dir, "bench_pipelines.py"), "w") as f:
        f.write(PIPELINES_SOURCE)
    sys.path.insert(0, module_dir)
    import bench_pipelines  # noqa: E402

    rows: List[Dict[str, str]] = []
    for function, tasks in (("linear_10", 10), ("fan_out_16", 16)):
        spec_path = os.path.join(work, f"{function}.yaml")
        compiler.Compiler().compile(getattr(bench_pipelines, function), spec_path)
        fork = median_of(lambda: ours(spec_path, work, "fork")) / tasks
        plain = median_of(lambda: ours(spec_path, work, "subprocess")) / tasks
        kfp_local = median_of(lambda: peer(module_dir, work, function)) / tasks
        rows.append({"benchmark": f"overhead per task, {function.replace('_', ' ')}",
                     "kfp-lineage (fork)": f"{fork * 1000:.1f} ms",
                     "kfp-lineage (subprocess)": f"{plain * 1000:.1f} ms",
                     "kfp.local": f"{kfp_local * 1000:.1f} ms",
                     "ratio kfp.local / fork": f"{kfp_local / fork:.1f}x"})
        print(rows[-1], flush=True)
        if function == "linear_10":
            cost = recording_cost(spec_path, work, tasks)
            rows.append({"benchmark": "MLMD recording per task (SQLite file), linear 10",
                         "kfp-lineage (fork)": f"{cost * 1000:.1f} ms",
                         "kfp-lineage (subprocess)": "",
                         "kfp.local": "records nothing",
                         "ratio kfp.local / fork": f"{cost / fork:.0%} of our per-task time"})
            print(rows[-1], flush=True)
    fork_training = training(work, "fork")
    plain_training = training(work, "subprocess")
    rows.append({"benchmark": "training pipeline end to end (4 tasks + deploy)",
                 "kfp-lineage (fork)": f"{fork_training:.2f} s",
                 "kfp-lineage (subprocess)": f"{plain_training:.2f} s",
                 "kfp.local": "cannot run dsl.If",
                 "ratio kfp.local / fork": f"subprocess/fork {plain_training / fork_training:.1f}x"})
    print(rows[-1], flush=True)
    write_results(rows)


def write_results(rows: List[Dict[str, str]]) -> None:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    headers = list(rows[0])
    lines = [
        "# Runner benchmark results",
        "",
        f"Machine: {os.cpu_count()} CPUs ({cpu or platform.machine()}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}. Date: {datetime.date.today().isoformat()}. "
        f"Medians of {REPS} repetitions after a warm-up run (training: {max(3, REPS // 2)}).",
        "",
        "Produced by `make bench` (bench/bench_runner.py); the peer is kfp.local 2.13 "
        "`SubprocessRunner(use_venv=False)` in the same venv, measured in the same invocation.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
    ]
    lines += ["| " + " | ".join(row[h] for h in headers) + " |" for row in rows]
    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
