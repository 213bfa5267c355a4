"""Runs KFP's own compiled test pipelines with kfp-lineage and writes bench/results-kfp-tests.md.

Usage: python bench/kfp_test_pipelines.py SPECS_DIR [--env-cache DIR] [--timeout SECONDS] [--only NAME ...]

SPECS_DIR is kubeflow/pipelines' `test_data/sdk_compiled_pipelines/valid/` (extracted from a checkout; never
committed here). Every `*.yaml` under it is run with `kfp-lineage run --task-env auto --json`, each with a fresh
SQLite store and pipeline root, under a timeout, and classified:

- COMPLETE: exit 0.
- REFUSED: exit 2 before the run (nothing written); the reason is the one-line error.
- FAILED: exit 1 (a task or the runner failed); the reason is the first error line.
- TIMEOUT: killed after --timeout seconds.

A spec "needs a cluster" when it cannot mean anything without one, decided from the spec alone (needs_cluster()):
a kfp-kubernetes platform section (secrets, volumes, PVCs, config maps, node selectors, tolerations, pod metadata,
field paths, image pull secrets, a workspace: objects of a Kubernetes cluster), a kfp-kubernetes PVC operation
(argostub images), a Ray cluster (codeflare-sdk), the cluster's MinIO object store, Google Cloud Pipeline Components
(Vertex AI, BigQuery), Google Cloud Storage (a gs:// importer, gsutil), or a modelcar (oci://) artifact. The rest
"need no cluster" and are the acceptance set (the issue counted 91). Required pipeline parameters without defaults
get the value listed in PARAMETERS, else a neutral value of their type (shown in the table).

A spec passes when it is COMPLETE; or FAILED when written to fail (EXPECTED_FAILURES); or refused before the run
(exit 2, nothing written) with a one-line error. --from-json re-reads the rows of an earlier --json-output and
applies today's rules to them (for a before/after comparison).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KFP_LINEAGE = os.path.join(os.path.dirname(sys.executable), "kfp-lineage")

# Values for pipeline parameters (spec path relative to SPECS_DIR -> name -> value): what KFP's own tests pass
# (backend/test/end2end/pipeline_e2e_test.go passes env_var=http_proxy), or a shorter wait than the 15 minutes a
# pipeline written to be long sleeps by default.
PARAMETERS: Dict[str, Dict[str, Any]] = {
    "env-var.yaml": {"env_var": "http_proxy"},
    "take_nap_compiled.yaml": {"naptime_secs": 5},
    "take_nap_pipeline_root_compiled.yaml": {"naptime_secs": 5},
}

# Specs written to fail: the run must end FAILED (on the backend too), the reason says why.
EXPECTED_FAILURES: Dict[str, str] = {
    "failing/fail_v2.yaml": "its task exits 1 on purpose",
    "failing/pipeline_with_exit_handler.yaml": "fail-op fails on purpose; the exit task runs",
    "failing/pipeline_with_multiple_exit_handlers.yaml": "fail-op fails on purpose; the exit tasks run",
    "pipeline_as_exit_task.yaml": "fail-op fails on purpose; the exit pipeline runs",
    "pipeline_with_task_final_status.yaml": "fail-op fails on purpose; the exit task reads its final status",
    "pipeline_with_task_using_ignore_upstream_failure.yaml": "fail-op fails on purpose; the next task runs anyway",
    "local_execution/local_execution_pipeline_with_ignore_upstream_failure.yaml":
        "fail-always fails on purpose; the next task runs anyway",
}
if not os.environ.get("http_proxy"):
    EXPECTED_FAILURES["env-var.yaml"] = "KFP's e2e test expects FAILED unless the cluster sets http_proxy (unset here)"

_NEUTRAL = {"STRING": "a", "NUMBER_INTEGER": 1, "NUMBER_DOUBLE": 1.0, "BOOLEAN": False, "LIST": [], "STRUCT": {}}

# Why a spec that needs no cluster still fails here, when the cause is outside kfp-lineage.
KNOWN_FAILURES: Dict[str, str] = {
    "critical/pipeline_with_artifact_custom_path.yaml":
        "the spec pins kfp==2.14.6, and Artifact.set_path came in kfp 2.15.0: its task environment has the pinned "
        "kfp, as the image's pip install would (fails the same way on a cluster)",
    "essential/embedded_artifact.yaml":
        "the spec pins kfp==2.14.3, and dsl.EmbeddedInput came in kfp 2.15.0: its task environment has the pinned "
        "kfp, as the image's pip install would (fails the same way on a cluster)",
    "critical/pipeline_with_artifact_upload_download.yaml":
        "downloads a dataset from the Hugging Face Hub; this machine reaches package registries only",
    "pipeline_with_concat_placeholder.yaml":
        "`sh -ec` with a bash test `[[ ... ]]`: the image's sh (busybox ash) accepts it, this machine's sh (dash) "
        "does not; the command runs as the spec says, with this machine's sh",
    "xgboost_sample_pipeline.yaml":
        "`set -o pipefail` under sh: the image's sh (busybox ash) accepts it, this machine's sh (dash) does not; "
        "then it downloads from data.cityofchicago.org, which this machine cannot reach",
}


def load_documents(path: str) -> List[Any]:
    with open(path, encoding="utf-8") as handle:
        return [document for document in yaml.safe_load_all(handle) if document is not None]


def needs_cluster(documents: List[Any]) -> Optional[str]:
    """Why a spec cannot run without a cluster, or None."""
    spec = documents[0] if documents else {}
    for extra in documents[1:]:
        platforms = extra.get("platforms") if isinstance(extra, dict) else None
        if platforms:
            features = sorted({feature for config in platforms.values() if isinstance(config, dict)
                               for executor in (config.get("deploymentSpec", {}).get("executors", {}) or {}).values()
                               for feature in (executor or {})}
                              | {key for config in platforms.values() if isinstance(config, dict)
                                 for key in config if key != "deploymentSpec"})
            return f"Kubernetes: {', '.join(features) or 'platform spec'} (kfp-kubernetes)"
    text = json.dumps(spec)
    if "google-cloud-pipeline-components" in text or "google_cloud_pipeline_components" in text:
        return "Vertex AI / BigQuery: Google Cloud Pipeline Components"
    if (re.search(r'"(?:artifactUri|uri)": \{"constant": "gs://', text)
            or '"constantValue": {"stringValue": "gs://' in text):
        return "GCS: imports a gs:// artifact"
    if "workspace" in json.dumps(spec.get("root", {}).get("inputDefinitions", {})) or '"workspace"' in json.dumps(
            spec.get("pipelineConfig", {})) or "{{$.workspace_path}}" in text:
        return "Kubernetes: pipeline workspace (a PVC the backend creates)"
    if "Minio(" in text or "minio_artifact_secret" in text:
        return "Kubernetes: reads the cluster's MinIO object store"
    if "gsutil" in text:
        return "GCS: copies with gsutil"
    if "argostub/" in text:
        return "Kubernetes: a kfp-kubernetes PVC operation (argostub image)"
    if "codeflare" in text:
        return "Kubernetes: a Ray cluster made by codeflare-sdk"
    if "oci://" in text:
        return "Kubernetes: modelcar (oci://) artifact served from an image"
    return None


def required_parameters(spec: Dict[str, Any], relative: str) -> Dict[str, Any]:
    """Values for the root's required parameters that have no default, and those PARAMETERS names."""
    chosen = PARAMETERS.get(relative, {})
    values: Dict[str, Any] = {}
    for name, definition in (spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}) or {}).items():
        if name in chosen:
            values[name] = chosen[name]
        elif "defaultValue" not in definition and not definition.get("isOptional"):
            values[name] = _NEUTRAL.get(definition.get("parameterType", "STRING"), "a")
    return values


def first_error_line(stderr: str, result: Optional[Dict[str, Any]]) -> str:
    lines = [line.split("] ", 1)[-1].strip() for line in stderr.splitlines()]
    for line in lines:
        if line.lower().startswith("error"):
            return line
    for line in lines:
        if "FAILED" in line or "failed" in line:
            return line
    return (lines[-1] if lines else "") or json.dumps(result)[:200]


def task_error(root: str, result: Dict[str, Any]) -> str:
    """The last meaningful line of the first failed task's log."""
    for name, task in (result.get("tasks") or {}).items():
        if task.get("state") != "FAILED":
            continue
        log = task.get("log")
        if log and os.path.exists(log):
            with open(log, encoding="utf-8", errors="replace") as handle:
                lines = [line.strip() for line in handle if line.strip()]
            for line in reversed(lines):
                if re.match(r"^[A-Za-z_.]*(Error|Exception|error:)", line) or "Error:" in line:
                    return f"{name}: {line}"
            if lines:
                return f"{name}: {lines[-1]}"
        return f"{name}: {task.get('error', 'FAILED')}"
    return ""


def run_one(path: str, relative: str, env_cache: str, timeout: float) -> Dict[str, Any]:
    documents = load_documents(path)
    spec = documents[0] if documents else {}
    row: Dict[str, Any] = {"spec": relative, "cluster": needs_cluster(documents), "params": {}}
    row["params"] = required_parameters(spec, relative)
    work = tempfile.mkdtemp(prefix="kfp-test-")
    command = [KFP_LINEAGE, "run", path, "--store", os.path.join(work, "mlmd.sqlite"),
               "--pipeline-root", os.path.join(work, "root"), "--task-env", "auto", "--env-cache", env_cache, "--json"]
    for name, value in row["params"].items():
        command += ["--param", f"{name}={json.dumps(value) if not isinstance(value, str) else value}"]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=work,
                              env={**os.environ, "GLOG_minloglevel": "2"})
    except subprocess.TimeoutExpired:
        row.update(outcome="TIMEOUT", reason=f"no result after {timeout:.0f} s", seconds=timeout, passes=False)
        shutil.rmtree(work, ignore_errors=True)
        return row
    row["seconds"] = time.perf_counter() - started
    result: Optional[Dict[str, Any]] = None
    try:
        result = json.loads(done.stdout) if done.stdout.strip() else None
    except ValueError:
        result = None
    if done.returncode == 0:
        row.update(outcome="COMPLETE", reason="")
    elif done.returncode == 2:
        row.update(outcome="REFUSED", reason=first_error_line(done.stderr, result))
    else:
        detail = task_error(work, result) if result else ""
        row.update(outcome="FAILED", reason=detail or first_error_line(done.stderr, result))
    shutil.rmtree(work, ignore_errors=True)
    expected = EXPECTED_FAILURES.get(relative)
    if expected:
        row["reason"] = f"expected FAILED: {expected}; " + row["reason"]
    elif row["outcome"] == "FAILED" and relative in KNOWN_FAILURES:
        row["reason"] = f"known: {KNOWN_FAILURES[relative]}; " + row["reason"]
    row["passes"] = row["outcome"] == "REFUSED" or row["outcome"] == ("FAILED" if expected else "COMPLETE")
    return row


def versions() -> str:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return (f"Python {platform.python_version()}, kfp {version('kfp')}, ml-metadata {version('ml-metadata')}, "
            f"kfp-lineage at {commit.stdout.strip() or 'unknown'}")


def summary(rows: List[Dict[str, Any]]) -> str:
    """`N specs: P pass (x%): ... COMPLETE, ... FAILED as designed, ... refused before the run; ... FAILED ...`."""
    def count(predicate) -> int:
        return sum(1 for row in rows if predicate(row))
    passing = count(lambda row: row["passes"])
    share = 100.0 * passing / len(rows) if rows else 0.0
    return (f"{len(rows)} specs, {passing} pass ({share:.1f}%): "
            f"{count(lambda r: r['passes'] and r['outcome'] == 'COMPLETE')} COMPLETE, "
            f"{count(lambda r: r['passes'] and r['outcome'] == 'FAILED')} FAILED as designed, "
            f"{count(lambda r: r['outcome'] == 'REFUSED')} refused before the run; "
            f"{count(lambda r: not r['passes'] and r['outcome'] == 'FAILED')} FAILED, "
            f"{count(lambda r: not r['passes'] and r['outcome'] == 'COMPLETE')} COMPLETE but expected to fail, "
            f"{count(lambda r: r['outcome'] == 'TIMEOUT')} timed out")


def reclassify(rows: List[Dict[str, Any]], specs_dir: str) -> List[Dict[str, Any]]:
    """Rows of an earlier --json-output with today's cluster rule and expected failures applied."""
    for row in rows:
        row["cluster"] = needs_cluster(load_documents(os.path.join(specs_dir, row["spec"])))
        expected = EXPECTED_FAILURES.get(row["spec"])
        row["passes"] = row["outcome"] == "REFUSED" or row["outcome"] == ("FAILED" if expected else "COMPLETE")
    return rows


def write_results(rows: List[Dict[str, Any]], source: str, output: str,
                  before: Optional[Tuple[str, List[Dict[str, Any]]]] = None) -> None:
    local = [row for row in rows if not row["cluster"]]
    cluster = [row for row in rows if row["cluster"]]
    lines = [
        "# KFP's compiled test pipelines, run with kfp-lineage",
        "",
        f"Machine: {os.cpu_count()} CPUs, {platform.system()} {platform.release()} {platform.machine()}; "
        f"{versions()}. Date: {datetime.date.today().isoformat()}.",
        "",
        f"Specs: every `*.yaml` under kubeflow/pipelines `test_data/sdk_compiled_pipelines/valid/` ({source}). "
        "Produced by `python bench/kfp_test_pipelines.py SPECS_DIR`: each spec runs with `kfp-lineage run "
        "--task-env auto --json`, a fresh SQLite store and pipeline root, and a timeout.",
        "",
        "**Needs no cluster** means the spec uses none of: a kfp-kubernetes platform section (secrets, volumes, PVCs, "
        "config maps, node selectors, tolerations, pod metadata, field paths, image pull secrets, a workspace: "
        "objects of a Kubernetes cluster), a kfp-kubernetes PVC operation (argostub images), a Ray cluster "
        "(codeflare-sdk), the cluster's MinIO object store, Google Cloud Pipeline Components (Vertex AI, BigQuery), "
        "Google Cloud Storage (a gs:// importer, gsutil), a modelcar (oci://) artifact. Those are listed at the end "
        "with the reason, and run anyway.",
        "",
        f"- **Need no cluster: {summary(local)}**",
        f"- All specs: {summary(rows)}",
    ]
    if before:
        label, earlier = before
        lines += [f"- Before ({label}): need no cluster: {summary([row for row in earlier if not row['cluster']])}; "
                  f"all: {summary(earlier)}"]
    lines += [
        "",
        "A spec passes when its run is COMPLETE; or FAILED when it is written to fail (`failing/`, exit handlers "
        "after a failing task, ignore_upstream_failure, env-var without a proxy: the reason starts `expected "
        "FAILED`); or it is refused before the run (exit 2, nothing written) with a one-line error, as the issue "
        "allows for what cannot run on this machine or by design. FAILED is exit 1 with the run recorded (the "
        "last error line of the failed task's log).",
        "",
        "## Specs that need no cluster",
        "",
        "| spec | outcome | pass | seconds | parameters given | reason |",
        "|---|---|---|---|---|---|",
    ]

    def table_row(row: Dict[str, Any], extra: str = "") -> str:
        params = ", ".join(f"{name}={value!r}" for name, value in row["params"].items())
        reason = (extra + row["reason"]).replace("|", "\\|")[:240]
        return (f"| {row['spec']} | {row['outcome']} | {'yes' if row['passes'] else '**no**'} | "
                f"{row.get('seconds', 0):.1f} | {params} | {reason} |")

    lines += [table_row(row) for row in local]
    lines += ["", "## Specs that need a cluster", "", "| spec | outcome | pass | seconds | parameters given | why it "
              "needs a cluster; outcome reason |", "|---|---|---|---|---|---|"]
    lines += [table_row(row, f"{row['cluster']}; ") for row in cluster]
    with open(output, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs_dir")
    parser.add_argument("--env-cache", default=os.path.join(tempfile.gettempdir(), "kfp-test-pipelines-envs"))
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--only", nargs="*", default=None, help="run only specs whose path contains one of these")
    parser.add_argument("--source", default="kubeflow/pipelines master", help="where the specs came from")
    parser.add_argument("--output", default=os.path.join(HERE, "results-kfp-tests.md"))
    parser.add_argument("--json-output", default=None, help="also write the rows as JSON")
    parser.add_argument("--from-json", default=None, help="summarise an earlier --json-output with today's rules")
    parser.add_argument("--write", action="store_true", help="with --from-json: write the results file too")
    parser.add_argument("--before", default=None, metavar="LABEL=JSON",
                        help="an earlier --json-output to show beside the totals, with today's rules")
    options = parser.parse_args(argv)
    before = None
    if options.before:
        label, _, path = options.before.partition("=")
        with open(path, encoding="utf-8") as handle:
            before = (label, reclassify(json.load(handle), options.specs_dir))
    if options.from_json:
        with open(options.from_json, encoding="utf-8") as handle:
            rows = reclassify(json.load(handle), options.specs_dir)
        print(f"need no cluster: {summary([row for row in rows if not row['cluster']])}")
        print(f"all: {summary(rows)}")
        if options.write:
            write_results(rows, options.source, options.output, before)
        return 0
    paths: List[Tuple[str, str]] = []
    for directory, _, files in os.walk(options.specs_dir):
        for name in files:
            if name.endswith(".yaml"):
                path = os.path.join(directory, name)
                paths.append((path, os.path.relpath(path, options.specs_dir)))
    paths.sort(key=lambda item: item[1])
    if options.only:
        paths = [item for item in paths if any(part in item[1] for part in options.only)]
    rows = []
    for path, relative in paths:
        row = run_one(path, relative, options.env_cache, options.timeout)
        rows.append(row)
        line = f"{row['outcome']:8} {row.get('seconds', 0):6.1f}s {relative}  {row['cluster'] or ''} {row['reason']}"
        print(line[:300], flush=True)
    local = [row for row in rows if not row["cluster"]]
    print(f"need no cluster: {summary(local)}")
    print(f"all: {summary(rows)}")
    if options.json_output:
        with open(options.json_output, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)
    if not options.only:
        write_results(rows, options.source, options.output, before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
