"""The train component: fit a scikit-learn random forest on an ingest training split."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from kfp_lineage_components import _packaging
from kfp_lineage_components._component import component


@component(_packaging.PACKAGES_TO_INSTALL)
def train(
    train_data: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    label_column: str,
    code_version: str = "unknown",
    n_estimators: int = 100,
    max_depth: int = 5,
    seed: int = 42,
):
    """Train a classifier (one-hot encoding for low-cardinality text columns + random forest).

    Args:
        train_data: Training CSV; its recorded sha256 (from ingest) is verified when present.
        model: The fitted scikit-learn Pipeline, saved with joblib as a single file. Metadata: framework,
            framework_version, model_class, serialization, hyperparameters, sha256, training_data_sha256,
            training_data_uri, code_version, label_column, feature_columns, categorical_columns, classes.
        metrics: train_accuracy and train_rows.
        label_column: Column holding the class label; every other column is a feature.
        code_version: Version of the code that trained the model, e.g. a git commit.
        n_estimators: Number of trees (at least 1).
        max_depth: Maximum tree depth (at least 1).
        seed: Random state of the forest.
    """
    from kfp_lineage_components import _modeling

    result = _modeling.train(
        train_path=train_data.path,
        model_path=model.path,
        label_column=label_column,
        data_metadata=train_data.metadata,
        training_data_uri=train_data.uri,
        code_version=code_version,
        n_estimators=n_estimators,
        max_depth=max_depth,
        seed=seed,
    )
    model.metadata.update(result.metadata)
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
