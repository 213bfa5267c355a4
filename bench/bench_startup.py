"""CLI start-up: the median wall time of whole `kfp-lineage` processes, what a shell loop or a CI step pays per call.

    python bench/bench_startup.py [--runs 15] [--baseline DIR]

Measures `kfp-lineage --help`, `trace latest/train/model` and `runs` on a small SQLite store (one synthetic
training run, built once in bench/.cache/), each command `--runs` times, the commands taking turns. With
`--baseline DIR` (a checkout of another commit, e.g. `git worktree add /tmp/base main`), every command also
runs with that checkout first on PYTHONPATH, interleaved with ours, so both see the same machine. Writes
bench/results-startup.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

RESULTS = os.path.join(ROOT, "bench", "results-startup.md")
CLI = os.path.join(os.path.dirname(sys.executable), "kfp-lineage")
TARGETS = {"--help": 0.35, "trace": 0.5}  # seconds, p50


def small_store() -> str:
    """A SQLite store with one training-shaped run (bench/synthetic_store.py), built once."""
    from bench import synthetic_store
    from kfp_lineage.mlmd import store as store_module

    path = os.path.join(synthetic_store.CACHE_DIR, f"startup-v{synthetic_store.SHAPE_VERSION}.sqlite")
    if not os.path.exists(path):
        os.makedirs(synthetic_store.CACHE_DIR, exist_ok=True)
        store = store_module.open_store(store_module.parse_store_url(path + ".part"))
        synthetic_store.build(store, runs=1)
        del store
        os.replace(path + ".part", path)
    return path


def measure(commands: Dict[str, List[str]], envs: Dict[str, Dict[str, str]], runs: int) -> Dict[str, List[float]]:
    """Every (variant, command) `runs` times after one warm-up each, all of them in turn on every round."""
    times: Dict[str, List[float]] = {}
    for round_ in range(runs + 1):
        for variant, env in envs.items():
            for name, argv in commands.items():
                started = time.perf_counter()
                completed = subprocess.run([CLI, *argv], env=env, capture_output=True, text=True)
                elapsed = time.perf_counter() - started
                if completed.returncode != 0:
                    raise RuntimeError(f"{variant} kfp-lineage {' '.join(argv)} failed: {completed.stderr[-800:]}")
                if round_:
                    times.setdefault(f"{variant}|{name}", []).append(elapsed)
    return times


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command")
    parser.add_argument("--baseline", metavar="DIR", help="a checkout to compare with (put first on PYTHONPATH)")
    parser.add_argument("--baseline-label", metavar="TEXT", help="what the baseline is (default: DIR)")
    parser.add_argument("--output", default=RESULTS, help="the Markdown report (default bench/results-startup.md)")
    args = parser.parse_args(argv)
    store = small_store()
    commands = {"--help": ["--help"], "trace": ["trace", "latest/train/model", "--store", store],
                "runs": ["runs", "--store", store]}
    envs = {"this checkout": dict(os.environ)}
    if args.baseline:
        envs["baseline"] = dict(os.environ, PYTHONPATH=os.path.abspath(args.baseline))
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.time()
    python = subprocess.run([sys.executable, "-c", "pass"], capture_output=True)  # warm the interpreter once
    assert python.returncode == 0
    python_times = []
    for _ in range(args.runs):
        begun = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"])
        python_times.append(time.perf_counter() - begun)
    times = measure(commands, envs, args.runs)
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "# CLI start-up benchmark",
        "",
        f"Written by `bench/bench_startup.py` on {datetime.date.today().isoformat()} ({time.time() - started:.0f} "
        f"s): {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average before {load_before}, after {load_after} (a shared machine).",
        "",
        f"Whole `kfp-lineage` processes, median of {args.runs} after a warm-up, every command and variant in turn; "
        f"`python -c pass` takes {statistics.median(python_times):.3f} s here. `trace` and `runs` read a SQLite "
        "store with one run.",
        "",
        "| command | " + " | ".join(envs) + " | target |",
        "|---|" + "---:|" * len(envs) + "---:|",
    ]
    for name in commands:
        cells = [f"{statistics.median(times[f'{variant}|{name}']):.3f} s" for variant in envs]
        target = f"<= {TARGETS[name]:g} s" if name in TARGETS else ""
        lines.append(f"| `kfp-lineage {' '.join(commands[name][:2]) if name == 'trace' else name}` | "
                     + " | ".join(cells) + f" | {target} |")
    if args.baseline:
        lines += ["", f"Baseline: {args.baseline_label or args.baseline} ({args.baseline} first on PYTHONPATH, same "
                  "venv)."]
    report = "\n".join(lines) + "\n"
    print(report)
    with open(args.output, "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
