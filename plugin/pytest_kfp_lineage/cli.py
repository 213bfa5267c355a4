"""Running the kfp-lineage command: finding it, compiling what it cannot take as is, and reading `run --json`."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence

CLI_ENV_VAR = "KFP_LINEAGE_CLI"


class KfpLineageError(Exception):
    """The kfp-lineage command refused or failed: its one-line `Error: ...` message, and its exit code (2 for
    invalid input, as the command documents)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


@dataclasses.dataclass
class TaskResult:
    """One task of a run, as `kfp-lineage run --json` reports it."""

    key: str
    state: str
    execution_id: Optional[int]
    outputs: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)
    error: str = ""
    log_path: str = ""
    attempts: int = 0
    cached_execution_id: Optional[int] = None


@dataclasses.dataclass
class RunResult:
    """A run's outcome, as `kfp-lineage run --json` reports it: the fields of kfp_lineage.RunResult it prints."""

    run_id: str
    pipeline_name: str
    state: str
    store: str
    pipeline_root: str
    duration: float
    tasks: Dict[str, TaskResult]
    outputs: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.state == "COMPLETE"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RunResult":
        tasks = {key: TaskResult(key=key, state=task["state"], execution_id=task.get("execution_id"),
                                 outputs=task.get("outputs", {}), error=task.get("error", ""),
                                 log_path=task.get("log", ""), attempts=task.get("attempts", 0),
                                 cached_execution_id=task.get("cached_execution_id"))
                 for key, task in data["tasks"].items()}
        return cls(run_id=data["run_id"], pipeline_name=data["pipeline"], state=data["state"], store=data["store"],
                   pipeline_root=data["pipeline_root"], duration=data["duration_seconds"], tasks=tasks,
                   outputs=data.get("outputs", {}))


def find_cli() -> str:
    """The kfp-lineage executable: $KFP_LINEAGE_CLI, else `kfp-lineage` on PATH.

    Raises:
        KfpLineageError: neither is there.
    """
    path = os.environ.get(CLI_ENV_VAR) or shutil.which("kfp-lineage")
    if not path:
        raise KfpLineageError(
            "the kfp-lineage command is not on PATH: install the tool on its own (uv tool install kfp-lineage, or "
            f"pipx install kfp-lineage), or set {CLI_ENV_VAR} to its path"
        )
    return path


def invoke(args: Sequence[str], *, cwd: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
           ok_codes: Sequence[int] = (0,)) -> subprocess.CompletedProcess:
    """Runs `kfp-lineage ARGS...`; returns the completed process when its exit code is one of `ok_codes`.

    Raises:
        KfpLineageError: any other exit code, with the command's `Error: ...` line (or its last line).
    """
    completed = subprocess.run([find_cli(), *args], capture_output=True, text=True, cwd=cwd,
                               env=dict(env) if env is not None else None)
    if completed.returncode not in ok_codes:
        raise KfpLineageError(_error_line(completed), completed.returncode)
    return completed


def _error_line(completed: subprocess.CompletedProcess) -> str:
    errors = [line for line in completed.stderr.splitlines() if line.startswith("Error: ")]
    if errors:
        return errors[-1][len("Error: "):]
    last = (completed.stderr.strip() or completed.stdout.strip() or "no output").splitlines()[-1]
    return f"kfp-lineage exited with code {completed.returncode}: {last}"


def run_pipeline(pipeline: Any, arguments: Optional[Mapping[str, Any]], *, store: str, workdir: str,
                 pipeline_root: Optional[str] = None, cwd: Optional[str] = None, run_id: Optional[str] = None,
                 max_parallel: Optional[int] = None, task_timeout: Optional[float] = None, enable_cache: bool = True,
                 env: Optional[Mapping[str, str]] = None, launcher: Optional[str] = None) -> RunResult:
    """Runs a pipeline with `kfp-lineage run --json`; a run that ends FAILED is returned, not raised.

    Args:
        pipeline: a compiled YAML path, `FILE.py[:FUNC]`, `package.module:FUNC` or a `@dsl.pipeline` object; the
            last three are compiled with this environment's kfp into `workdir` first.
        store: the store URL. The other options are kfp_lineage.run_pipeline's; `env` is the tasks' environment
            (and the command's), `cwd` their working directory (and the command's).

    Raises:
        KfpLineageError: the command refused the spec, arguments or options (exit 2), or could not run.
    """
    args = ["run", compile_pipeline(pipeline, workdir), "--store", store, "--json"]
    for name, value in (arguments or {}).items():
        args += ["--param", f"{name}={_param_text(value)}"]
    for option, value in (("--pipeline-root", pipeline_root), ("--run-id", run_id), ("--max-parallel", max_parallel),
                          ("--task-timeout", task_timeout)):
        if value is not None:
            args += [option, str(value)]
    if not enable_cache:
        args.append("--no-cache")
    environment = dict(os.environ if env is None else env)
    if launcher is not None:
        environment["KFP_LINEAGE_LAUNCHER"] = launcher
    completed = invoke(args, cwd=cwd, env=environment, ok_codes=(0, 1))
    try:
        return RunResult.from_json(json.loads(completed.stdout))
    except (ValueError, KeyError) as e:
        raise KfpLineageError(f"kfp-lineage run printed no run result ({e}): {_error_line(completed)}",
                              completed.returncode) from None


def _param_text(value: Any) -> str:
    """A `--param` value as the command reads it: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def compile_pipeline(pipeline: Any, directory: str) -> str:
    """A compiled spec's absolute path: a YAML path as it is; anything else compiled with this environment's kfp.

    Raises:
        KfpLineageError: the module or pipeline cannot be found, or kfp is not installed here.
    """
    if isinstance(pipeline, (str, os.PathLike)):
        text = os.fspath(pipeline)
        path_part = text.rsplit(":", 1)[0] if ":" in text and not os.path.exists(text) else text
        if path_part.endswith((".yaml", ".yml", ".json")):
            return os.path.abspath(path_part)
        pipeline = _import_pipeline(text)
    try:
        from kfp import compiler
    except ImportError:
        raise KfpLineageError("compiling a pipeline needs kfp in this environment: install it, or pass a compiled "
                              "YAML spec") from None
    os.makedirs(directory, exist_ok=True)
    name = getattr(pipeline, "name", None) or "pipeline"
    path = os.path.join(directory, f"{name}.yaml")
    index = 1
    while os.path.exists(path):
        index += 1
        path = os.path.join(directory, f"{name}-{index}.yaml")
    compiler.Compiler().compile(pipeline, path)
    return path


def _import_pipeline(target: str) -> Any:
    """The `@dsl.pipeline` that `FILE.py[:FUNC]` or `package.module[:FUNC]` names (the only one when no FUNC)."""
    module_part, _, func_name = target.partition(":")
    if module_part.endswith(".py"):
        if not os.path.isfile(module_part):
            raise KfpLineageError(f"pipeline module {module_part} does not exist")
        module_name = "_kfp_lineage_cli_pipeline_" + os.path.splitext(os.path.basename(module_part))[0]
        module_spec = importlib.util.spec_from_file_location(module_name, module_part)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        module_dir = os.path.dirname(os.path.abspath(module_part))
        sys.path.insert(0, module_dir)
        try:
            module_spec.loader.exec_module(module)
        finally:
            sys.path.remove(module_dir)
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as e:
            raise KfpLineageError(f"cannot import pipeline module {module_part!r} ({e}): pass a .yaml spec, "
                                  "FILE.py[:FUNC] or an importable package.module[:FUNC]") from None
    from kfp.dsl import graph_component

    pipelines = {name: value for name, value in vars(module).items()
                 if isinstance(value, graph_component.GraphComponent)}
    if func_name:
        if func_name not in pipelines:
            raise KfpLineageError(f"{module_part} has no @dsl.pipeline named {func_name!r}; it has: "
                                  f"{', '.join(sorted(pipelines)) or 'none'}")
        return pipelines[func_name]
    if len(pipelines) == 1:
        return next(iter(pipelines.values()))
    raise KfpLineageError(f"{module_part} defines {len(pipelines)} pipelines ({', '.join(sorted(pipelines)) or 'none'})"
                          f": name one as {module_part}:FUNC")


def options_accepted() -> List[str]:
    """The keyword options run_pipeline passes on to the command."""
    return ["pipeline_root", "cwd", "run_id", "max_parallel", "task_timeout", "enable_cache", "env", "launcher"]
