"""The training pipeline: ingest -> train -> evaluate -> (if accuracy passes) deploy locally or to Vertex AI.

Compile with:
    from kfp import compiler; compiler.Compiler().compile(training, "training.yaml")
This file is loadable by path (runpy / importlib); it needs only kfp and kfp-lineage-components.
"""

from kfp import dsl
from kfp_lineage_components import _packaging
from kfp_lineage_components.deploy import deploy_local, deploy_vertex
from kfp_lineage_components.evaluate import evaluate
from kfp_lineage_components.ingest import ingest
from kfp_lineage_components.train import train

# The components' image and kfp pin, so every task of the run has the same kfp (left alone, KFP pins the compiler's).
@dsl.component(base_image=_packaging.BASE_IMAGE, packages_to_install=_packaging.KFP_REQUIREMENTS)
def check_deploy_settings(deploy_target: str, project: str):
    """Fails the run before any work when its deployment settings cannot deploy: an unknown target would skip the
    deploy without a word after training, and Vertex AI needs a project."""
    targets = ("local", "vertex")  # the branches of training() below
    if deploy_target not in targets:
        raise ValueError(f"deploy_target {deploy_target!r} is not one of {', '.join(targets)}: "
                         "pass --param deploy_target=local or --param deploy_target=vertex")
    if deploy_target == "vertex" and not project:
        raise ValueError("deploy_target 'vertex' needs a Google Cloud project: pass --param project=PROJECT_ID")


@dsl.pipeline(
    name="training",
    description=(
        "Ingest a tabular data set, train a scikit-learn classifier, evaluate it on a held-out split and,"
        " when accuracy reaches the threshold, deploy it to a local registry or a Vertex AI endpoint."
    ),
)
def training(
    source_uri: str = "data/breast_cancer.csv",
    label_column: str = "label",
    threshold: float = 0.9,
    deploy_target: str = "local",
    code_version: str = "unknown",
    deployed_by: str = "",
    model_name: str = "breast-cancer-classifier",
    project: str = "",
    location: str = "us-central1",
    vertex_api_endpoint: str = "",
    vertex_staging_bucket: str = "",
):
    """Train and conditionally deploy a classifier.

    Args:
        source_uri: CSV/Parquet path (relative to the working directory), file://, gs://, or bq:// table/SQL.
        label_column: Column holding the class label.
        threshold: Minimum test accuracy in [0, 1] for deployment; the demo data scores about 0.95.
        deploy_target: "local" (versioned registry under .kfp-lineage/model-registry) or "vertex"; any other
            value fails the run at its first task, before anything is trained.
        code_version: Version of the training code recorded on the model, e.g. a git commit.
        deployed_by: Who deploys; empty means KFP_LINEAGE_DEPLOYED_BY, a CI build URL, or user@host.
        model_name: Registry entry name (local) or model/endpoint display name (vertex).
        project: Google Cloud project ID; required when deploy_target is "vertex".
        location: Vertex AI region.
        vertex_api_endpoint: Custom Vertex AI API endpoint, e.g. a fake server; empty for the real one.
        vertex_staging_bucket: gs:// URI where a local run stages the model for Vertex AI; empty lets the
            SDK create a new bucket in the project each run. Unused on Vertex AI Pipelines (already gs://).
    """
    settings_task = check_deploy_settings(deploy_target=deploy_target, project=project)
    settings_task.set_display_name("Check deploy settings")
    settings_task.set_caching_options(False)  # a check that takes 0.1 s: always run it, always record COMPLETE

    ingest_task = ingest(source_uri=source_uri, label_column=label_column).after(settings_task)
    ingest_task.set_display_name("Ingest data")
    ingest_task.set_caching_options(False)  # the source can change behind an unchanged URI

    train_task = train(
        train_data=ingest_task.outputs["train"],
        label_column=label_column,
        code_version=code_version,
    )
    train_task.set_display_name("Train model")

    evaluate_task = evaluate(
        model=train_task.outputs["model"],
        test_data=ingest_task.outputs["test"],
        label_column=label_column,
        threshold=threshold,
    )
    evaluate_task.set_display_name("Evaluate model")

    with dsl.If(evaluate_task.outputs["passed"] == True, name="accuracy-passed"):  # noqa: E712 (KFP condition, not Python)
        with dsl.If(deploy_target == "local", name="deploy-target-local"):
            local_task = deploy_local(
                model=train_task.outputs["model"],
                model_name=model_name,
                deployed_by=deployed_by,
                pipeline_job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            )
            local_task.set_display_name("Deploy to local registry")
            local_task.set_caching_options(False)  # deploying is a side effect; never skip it
        with dsl.Elif(deploy_target == "vertex", name="deploy-target-vertex"):
            vertex_task = deploy_vertex(
                model=train_task.outputs["model"],
                project=project,
                location=location,
                model_display_name=model_name,
                endpoint_display_name=model_name,
                api_endpoint=vertex_api_endpoint,
                staging_bucket=vertex_staging_bucket,
                deployed_by=deployed_by,
                pipeline_job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            )
            vertex_task.set_display_name("Deploy to Vertex AI")
            vertex_task.set_caching_options(False)


__all__ = ["check_deploy_settings", "training"]
