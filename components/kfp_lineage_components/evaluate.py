"""The evaluate component: score a trained model on the test split and gate deployment on accuracy."""

from typing import NamedTuple

from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from kfp_lineage_components import _packaging
from kfp_lineage_components._component import component


@component(_packaging.PACKAGES_TO_INSTALL)
def evaluate(
    model: Input[Model],
    test_data: Input[Dataset],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    label_column: str,
    threshold: float = 0.8,
) -> NamedTuple("Outputs", [("passed", bool)]):
    """Compute test metrics and whether the model clears the accuracy threshold.

    Args:
        model: A model from the train component; its recorded sha256 is verified before loading.
        test_data: Test CSV with the model's feature columns and the label column.
        metrics: accuracy, f1 (binary: positive class = second sorted class; else macro), roc_auc
            (omitted when the test split lacks a class), test_rows, threshold.
        classification_metrics: Confusion matrix and, for binary labels, the ROC curve.
        label_column: Column holding the class label.
        threshold: Minimum accuracy in [0, 1] for passed to be true.

    Returns:
        passed: accuracy >= threshold.
    """
    from collections import namedtuple

    from kfp_lineage_components import _modeling

    result = _modeling.evaluate(
        model_path=model.path,
        model_metadata=model.metadata,
        test_path=test_data.path,
        label_column=label_column,
        threshold=threshold,
    )
    metrics.log_metric("accuracy", result.accuracy)
    metrics.log_metric("f1", result.f1)
    if result.roc_auc is not None:
        metrics.log_metric("roc_auc", result.roc_auc)
    metrics.log_metric("test_rows", result.rows)
    metrics.log_metric("threshold", threshold)
    classification_metrics.log_confusion_matrix(result.categories, result.confusion_matrix)
    if result.roc_curve is not None:
        fpr, tpr, thresholds = result.roc_curve
        classification_metrics.log_roc_curve(fpr, tpr, thresholds)
    return namedtuple("Outputs", ["passed"])(result.passed)
