"""Deploy components: deploy_local (versioned on-disk registry) and deploy_vertex (Vertex AI endpoint).

Two components rather than one with a target switch, because their typed outputs differ; a
pipeline picks one with dsl.If / dsl.Elif.
"""

from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from kfp_lineage_components import _packaging
from kfp_lineage_components._component import component


@component(_packaging.PACKAGES_TO_INSTALL)
def deploy_local(
    model: Input[Model],
    endpoint: Output[Artifact],
    model_name: str = "model",
    registry_dir: str = ".kfp-lineage/model-registry",
    deployed_by: str = "",
    pipeline_job_name: str = "",
):
    """Publish a verified model as the next version in a local registry and describe where it is served from.

    Args:
        model: A model from the train component; refused unless the file matches its recorded sha256.
        endpoint: Small JSON file describing the deployment. Metadata: target ("local"), endpoint_uri
            (file:// of the served model file), model_name, model_version, registry_path, model_sha256,
            deployed_by, deployed_at (ISO-8601 UTC), pipeline_job_name.
        model_name: Registry entry name; versions go to <registry_dir>/<model_name>/v<N>/.
        registry_dir: Registry root; a relative path resolves against the task's working directory.
        deployed_by: Who deploys; empty means KFP_LINEAGE_DEPLOYED_BY, a CI build URL, or user@host.
        pipeline_job_name: The run's job name, normally dsl.PIPELINE_JOB_NAME_PLACEHOLDER.
    """
    import json

    from kfp_lineage_components import _registry, _shared

    job = _shared.resolved_placeholder(pipeline_job_name)
    published = _registry.publish(
        model_file=model.path,
        model_metadata=model.metadata,
        registry_dir=registry_dir,
        model_name=model_name,
        deployed_by=_shared.resolve_deployed_by(deployed_by),
        deployed_at=_shared.utc_now_iso(),
        model_uri=model.uri,
        pipeline_job_name=job,
    )
    manifest = published.manifest
    description = _shared.json_ready(
        {
            "target": "local",
            "endpoint_uri": published.model_file.as_uri(),
            "model_name": published.model_name,
            "model_version": published.version,
            "registry_path": str(published.version_dir),
            "model_sha256": published.model_sha256,
            "deployed_by": manifest["deployed_by"],
            "deployed_at": manifest["deployed_at"],
            "pipeline_job_name": job,
        }
    )
    with _shared.atomic_output(endpoint.path) as tmp:
        tmp.write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")
    endpoint.metadata.update(description)


@component(_packaging.VERTEX_PACKAGES)
def deploy_vertex(
    model: Input[Model],
    vertex_model: Output[VertexModel],
    vertex_endpoint: Output[VertexEndpoint],
    project: str,
    location: str,
    model_display_name: str = "model",
    endpoint_display_name: str = "endpoint",
    # A literal, not a constant: KFP embeds only this function's source in the task.
    serving_image: str = "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-6:latest",
    machine_type: str = "n1-standard-2",
    api_endpoint: str = "",
    staging_bucket: str = "",
    deployed_by: str = "",
    pipeline_job_name: str = "",
):
    """Upload a verified model to Vertex AI and deploy it to an endpoint (reused by display name) with 100% traffic.

    Args:
        model: A model from the train component; refused unless the file matches its recorded sha256.
        vertex_model: The uploaded Vertex AI Model. Its location first receives the staged model.joblib
            that Model.upload reads (artifact_uri); afterwards its URI is the model's https resource URI.
            Metadata: resourceName, displayName, artifact_uri, serving_image, model_sha256, labels,
            deployed_by, deployed_at, pipeline_job_name.
        vertex_endpoint: The Vertex AI Endpoint. Metadata: resourceName, displayName, target ("vertex"),
            endpoint_created, model_resource_name, machine_type, traffic_percentage, model_sha256,
            deployed_by, deployed_at, pipeline_job_name.
        project: Google Cloud project ID (required).
        location: Vertex AI region, e.g. us-central1 (required).
        model_display_name: Display name of the uploaded model.
        endpoint_display_name: Endpoint to reuse (newest with this display name) or create.
        serving_image: Serving container image. Vertex AI publishes prebuilt scikit-learn images per
            minor version under ":latest" only, and 1.6 is the newest; a model trained with a newer
            scikit-learn may not load there, so for real serving pass an image with the training versions.
        machine_type: Machine type of the deployed model.
        api_endpoint: Custom API endpoint (e.g. a private endpoint or a stand-in); empty for the region's.
            A plain http:// endpoint is called without credentials.
        staging_bucket: gs:// URI the SDK copies the model directory to when the pipeline root is local;
            empty lets the SDK create a new bucket gs://<project>-vertex-staging-<location>-<random> each time.
        deployed_by: Who deploys; empty means KFP_LINEAGE_DEPLOYED_BY, a CI build URL, or user@host.
        pipeline_job_name: The run's job name (normally dsl.PIPELINE_JOB_NAME_PLACEHOLDER), sent as a label.
    """
    from kfp_lineage_components import _shared, _vertex

    result = _vertex.deploy(
        model_file=model.path,
        model_metadata=model.metadata,
        model_uri=model.uri,
        serving_dir=vertex_model.path,
        serving_dir_uri=vertex_model.uri,
        project=project,
        location=location,
        model_display_name=model_display_name,
        endpoint_display_name=endpoint_display_name,
        serving_image=serving_image,
        machine_type=machine_type,
        api_endpoint=api_endpoint,
        deployed_by=_shared.resolve_deployed_by(deployed_by),
        pipeline_job_name=pipeline_job_name,
        staging_bucket=staging_bucket,
    )
    vertex_model.uri = result.model_uri
    vertex_model.metadata.update(result.model_metadata)
    vertex_endpoint.uri = result.endpoint_uri
    vertex_endpoint.metadata.update(result.endpoint_metadata)
