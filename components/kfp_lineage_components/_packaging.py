"""Task image and pinned requirements for every component: the one place to bump a version.

Each component's task pip-installs its list from PyPI at start-up, so a compiled spec runs the same code wherever
it runs. Keep the pins within components/pyproject.toml's ranges and equal to constraints/legacy.txt on Python 3.11
(tests/components/test_shared.py checks both), and components/requirements.txt (what components/Dockerfile
installs) equal to their union (tests/components/test_shipping.py checks that).
"""

from typing import List

BASE_IMAGE = "python:3.11-slim"

COMPONENTS_VERSION = "0.1.0"  # components/pyproject.toml's version
# Installed only by specs compiled with an index (`kfp-lineage compile --index-url`); the default specs embed the
# package's modules instead (_component.py).
COMPONENTS_REQUIREMENT = f"kfp-lineage-components=={COMPONENTS_VERSION}"

# KFP injects its own `pip install kfp==<compiler's version>` only when no requirement starts with "kfp", and
# "kfp-lineage-components" does; pinned here, the task's kfp is the one these pins were tested with either way.
KFP_REQUIREMENTS = ["kfp==2.13.0", "protobuf==4.25.9"]

PACKAGES_TO_INSTALL: List[str] = KFP_REQUIREMENTS + [
    "pandas==3.1.1",
    "pyarrow==26.0.1",
    "scikit-learn==1.9.1",
    "joblib==1.6.0",
]

# ingest reads gs:// objects and bq:// tables/queries.
GCS_BIGQUERY_PACKAGES: List[str] = PACKAGES_TO_INSTALL + [
    "google-cloud-storage==3.17.1",
    "google-cloud-bigquery==3.47.0",
]

# deploy_vertex calls Vertex AI; its compiled source imports the GCPC artifact types.
VERTEX_PACKAGES: List[str] = PACKAGES_TO_INSTALL + [
    "google-cloud-aiplatform==1.165.1",
    "google-cloud-pipeline-components==2.22.0",
]
