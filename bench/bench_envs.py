"""Task environment benchmarks, against kfp.local's per-task environments in the same invocation (`make bench`).

The pipeline is a chain of 5 lightweight components, each with `packages_to_install=["tabulate==<the runner's>"]`
on the runner's Python image, so every mode runs the same spec:
1. kfp.local 2.13 `SubprocessRunner(use_venv=True)` in this same venv: for every task a new venv (with pip), then
   the task's compiled `pip install` from the package index (kfp, tabulate).
2. kfp-lineage `--task-env isolated`, first use: the environment is built with uv, once, before the run; with uv's
   download cache empty (everything downloaded) and warm.
3. kfp-lineage `--task-env isolated` with the environment cached, against `--task-env current` (the runner's own
   environment; what `auto` picks here): the difference per task is what a cached isolated environment costs.

Prints a table and writes bench/results-envs.md. BENCH_REPS (default 5; the cached runs, which are short, twice as
many) sets the repetitions; medians are reported. Needs the package index (kfp.local and the first builds install from it).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shutil
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

from kfp_lineage.engine import run as run_module  # noqa: E402
from kfp_lineage.engine.exec import environments  # noqa: E402
from kfp_lineage.engine.exec import uv_installer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPS = int(os.environ.get("BENCH_REPS", "5"))
TASKS = 5
TABULATE = f"tabulate=={importlib.metadata.version('tabulate')}"

PIPELINE_SOURCE = textwrap.dedent(f'''
    from kfp import dsl

    @dsl.component(base_image="python:{sys.version_info[0]}.{sys.version_info[1]}",
                   packages_to_install=["{TABULATE}"])
    def step(x: int) -> int:
        import tabulate
        return x + 1

    @dsl.pipeline(name="five-steps")
    def five_steps(x: int = 0):
        task = step(x=x)
        for _ in range({TASKS - 1}):
            task = step(x=task.output)
''')

PEER_SCRIPT = textwrap.dedent('''
    import sys, time, warnings
    warnings.filterwarnings("ignore")
    sys.path.insert(0, sys.argv[1])
    from kfp import local
    import bench_env_pipeline
    local.init(runner=local.SubprocessRunner(use_venv=True), pipeline_root=sys.argv[2])
    started = time.perf_counter()
    bench_env_pipeline.five_steps()
    print(time.perf_counter() - started)
''')


def median_of(measure: Callable[[], float], reps: int = REPS) -> float:
    measure()  # warm-up: file caches, first imports
    return statistics.median(measure() for _ in range(reps))


def ours(spec_path: str, work: str, mode: str, env_cache: str) -> float:
    """One run (no task cache) into the benchmark's store, in `mode`."""
    started = time.perf_counter()
    result = run_module.run_pipeline(spec_path, store=os.path.join(work, "mlmd.sqlite"),
                                     pipeline_root=os.path.join(work, "root"), enable_cache=False,
                                     task_env=mode, env_cache=env_cache)
    elapsed = time.perf_counter() - started
    assert result.state == "COMPLETE", {key: task.error for key, task in result.tasks.items() if task.error}
    return elapsed


def first_build(spec_path: str, work: str, uv_cache: str) -> float:
    """A run whose environment is built first (an empty environment cache), uv's download cache at `uv_cache`."""
    env_cache = tempfile.mkdtemp(dir=work, prefix="envs-")
    previous = os.environ.get("UV_CACHE_DIR")
    os.environ["UV_CACHE_DIR"] = uv_cache
    try:
        return ours(spec_path, work, "isolated", env_cache)
    finally:
        if previous is None:
            os.environ.pop("UV_CACHE_DIR")
        else:
            os.environ["UV_CACHE_DIR"] = previous
        shutil.rmtree(env_cache, ignore_errors=True)


def peer(module_dir: str, work: str) -> float:
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        out = subprocess.run([sys.executable, "-c", PEER_SCRIPT, module_dir, tmp], capture_output=True, text=True,
                             check=True, cwd=tmp)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    work = tempfile.mkdtemp(prefix="kfp-lineage-bench-envs-")
    module_dir = os.path.join(work, "module")
    os.makedirs(module_dir)
    with open(os.path.join(module_dir, "bench_env_pipeline.py"), "w") as f:
        f.write(PIPELINE_SOURCE)
    sys.path.insert(0, module_dir)
    import bench_env_pipeline  # noqa: E402

    spec_path = os.path.join(work, "five_steps.yaml")
    compiler.Compiler().compile(bench_env_pipeline.five_steps, spec_path)

    kfp_local = statistics.median(peer(module_dir, work) for _ in range(2))
    cold = first_build(spec_path, work, tempfile.mkdtemp(dir=work, prefix="uv-cache-"))
    warm_uv = os.path.join(work, "uv-cache-warm")
    first_build(spec_path, work, warm_uv)  # fills uv's download cache
    warm = statistics.median(first_build(spec_path, work, warm_uv) for _ in range(3))

    env_cache = os.path.join(work, "envs")
    ours(spec_path, work, "isolated", env_cache)  # builds the environment the warm runs use
    current, isolated = [], []
    ours(spec_path, work, "current", env_cache)  # warm-up
    for _ in range(2 * REPS):  # interleaved, so a busy moment of the machine hits both; runs are short
        current.append(ours(spec_path, work, "current", env_cache))
        isolated.append(ours(spec_path, work, "isolated", env_cache))
    current_task = statistics.median(current) / TASKS
    isolated_task = statistics.median(isolated) / TASKS
    [environment] = environments.EnvironmentCache(env_cache).list()  # the isolated runs used it, and only it
    assert environment.package_count == 2, environment  # kfp and tabulate
    shutil.rmtree(work, ignore_errors=True)

    uv = subprocess.run([uv_installer.find_uv(), "--version"], capture_output=True, text=True).stdout.strip()
    rows: List[Dict[str, str]] = [
        {"5-task pipeline": "whole run, first use (environment built)",
         "kfp-lineage": f"{cold:.2f} s (uv cache empty), {warm:.2f} s (uv cache warm)",
         "kfp.local use_venv": f"{kfp_local:.1f} s", "ratio kfp.local / kfp-lineage": f"{kfp_local / cold:.0f}x, "
                                                                                       f"{kfp_local / warm:.0f}x"},
        {"5-task pipeline": "per task (whole run / 5), environment cached",
         "kfp-lineage": f"{isolated_task * 1000:.1f} ms (isolated), {current_task * 1000:.1f} ms (current)",
         "kfp.local use_venv": f"{kfp_local / TASKS * 1000:.0f} ms",
         "ratio kfp.local / kfp-lineage": f"{kfp_local / TASKS / isolated_task:.0f}x"},
        {"5-task pipeline": "cached isolated environment over the runner's own, per task",
         "kfp-lineage": f"{(isolated_task - current_task) * 1000:+.1f} ms",
         "kfp.local use_venv": "", "ratio kfp.local / kfp-lineage": ""},
    ]
    write_results(rows, uv)


def write_results(rows: List[Dict[str, str]], uv: str) -> None:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    headers = list(rows[0])
    lines = [
        "# Task environment benchmark results",
        "",
        f"Machine: {os.cpu_count()} CPUs ({cpu or platform.machine()}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, {uv}. Date: {datetime.date.today().isoformat()}.",
        "",
        f"Produced by `make bench` (bench/bench_envs.py): a chain of {TASKS} lightweight components, each "
        f"`packages_to_install=[\"{TABULATE}\"]`. The peer is kfp.local 2.13 `SubprocessRunner(use_venv=True)` in "
        "the same venv (a new venv and the task's `pip install` for every task; median of 2 runs), measured in the "
        "same invocation. First use: `--task-env isolated` with an empty environment cache (uv cache warm: median "
        f"of 3). Cached: medians of {2 * REPS} runs of `--task-env isolated` and `--task-env current` (the runner's "
        "environment, the fast path `auto` takes here), interleaved, without the task cache.",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
    ]
    lines += ["| " + " | ".join(row[h] for h in headers) + " |" for row in rows]
    with open(os.path.join(HERE, "results-envs.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
