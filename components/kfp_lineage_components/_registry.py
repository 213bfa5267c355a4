"""A versioned on-disk model registry behind the deploy_local component.

Layout: <registry_dir>/<model_name>/v<N>/{model.joblib, manifest.json}, N = 1, 2, ... A version
directory appears complete or not at all: it is assembled under a hidden name and renamed.
"""

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from kfp_lineage_components import _shared

MODEL_FILE = "model.joblib"  # the file name Vertex AI's prebuilt scikit-learn images also expect
MANIFEST_FILE = "manifest.json"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERSION_DIR = re.compile(r"^v([1-9][0-9]*)$")
# Model metadata worth carrying into the manifest, so a registry entry explains itself without MLMD.
_PROVENANCE_KEYS = (
    "framework",
    "framework_version",
    "model_class",
    "hyperparameters",
    "training_data_sha256",
    "training_data_uri",
    "code_version",
    "label_column",
    "feature_columns",
    "classes",
)


@dataclass(frozen=True)
class Published:
    """Where a model version landed in the registry."""

    model_name: str
    version: int
    version_dir: Path
    model_file: Path
    model_sha256: str
    manifest: Dict[str, Any]


def check_model_name(model_name: str) -> None:
    """Model names become directory names: letters, digits, '.', '_' and '-' only."""
    if not _MODEL_NAME.match(model_name):
        raise ValueError(
            f"model_name {model_name!r} is not a safe directory name: use letters, digits, '.', '_' or '-'"
            " (starting with a letter or digit)"
        )


def next_version(model_dir: Path) -> int:
    """1 + the highest existing v<N> under model_dir (1 when there is none)."""
    if not model_dir.is_dir():
        return 1
    versions = [int(m.group(1)) for m in (_VERSION_DIR.match(p.name) for p in model_dir.iterdir()) if m]
    return max(versions, default=0) + 1


def publish(
    model_file: str,
    model_metadata: Mapping[str, Any],
    registry_dir: str,
    model_name: str,
    deployed_by: str,
    deployed_at: str,
    model_uri: str = "",
    pipeline_job_name: str = "",
    cwd: Optional[str] = None,
) -> Published:
    """Verify the model against its recorded sha256 and copy it into the next free version directory.

    A relative registry_dir resolves against cwd (default: the current directory).
    """
    check_model_name(model_name)
    expected = model_metadata.get("sha256")
    _shared.verify_sha256(model_file, expected, "model")  # before touching the registry at all
    model_dir = _shared.resolve_local_path(registry_dir, cwd) / model_name
    model_dir.mkdir(parents=True, exist_ok=True)

    staging = Path(tempfile.mkdtemp(prefix=f".{MODEL_FILE}.", dir=model_dir))
    try:
        _shared.copy_verified(model_file, staging / MODEL_FILE, expected, "model")
        manifest: Dict[str, Any] = {
            "model_name": model_name,
            "model_file": MODEL_FILE,
            "model_sha256": expected,
            "source_model_uri": model_uri,
            "deployed_by": deployed_by,
            "deployed_at": deployed_at,
            "pipeline_job_name": pipeline_job_name,
            **{key: model_metadata[key] for key in _PROVENANCE_KEYS if key in model_metadata},
        }
        while True:
            version = next_version(model_dir)
            manifest["version"] = version
            (staging / MANIFEST_FILE).write_text(
                json.dumps(_shared.json_ready(manifest), indent=2, sort_keys=True) + "\n"
            )
            target = model_dir / f"v{version}"
            try:
                os.rename(staging, target)  # fails if a concurrent deploy took this version first
                break
            except OSError:
                if not (target.is_dir() and any(target.iterdir())):
                    raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return Published(
        model_name=model_name,
        version=version,
        version_dir=target,
        model_file=target / MODEL_FILE,
        model_sha256=str(expected),
        manifest=manifest,
    )
