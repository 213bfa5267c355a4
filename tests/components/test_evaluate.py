"""The evaluate component, called through its Python function with real artifacts and files."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from component_test_support import assert_one_line
from kfp import dsl
from kfp_lineage_components.evaluate import evaluate


def outputs(tmp_path: Path):
    return (
        dsl.Metrics(uri=str(tmp_path / "eval" / "metrics")),
        dsl.ClassificationMetrics(uri=str(tmp_path / "eval" / "classification_metrics")),
    )


def run(tmp_path: Path, model: dsl.Model, test_data: dsl.Dataset, **kwargs):
    metrics, classification = outputs(tmp_path)
    result = evaluate.python_func(
        model=model,
        test_data=test_data,
        metrics=metrics,
        classification_metrics=classification,
        **{"label_column": "label", **kwargs},
    )
    return result, metrics, classification


def test_scores_the_model_and_passes_the_gate(tmp_path, trained, ingested):
    result, metrics, classification = run(tmp_path, trained, ingested["test"], threshold=0.9)

    assert result.passed is True and result._fields == ("passed",)
    assert set(metrics.metadata) == {"accuracy", "f1", "roc_auc", "test_rows", "threshold"}
    assert metrics.metadata["accuracy"] >= 0.9
    assert 0.85 < metrics.metadata["f1"] <= 1.0
    assert 0.9 < metrics.metadata["roc_auc"] <= 1.0
    assert metrics.metadata["test_rows"] == ingested["test"].metadata["rows"]
    assert metrics.metadata["threshold"] == 0.9

    matrix = classification.metadata["confusionMatrix"]
    assert [spec["displayName"] for spec in matrix["annotationSpecs"]] == ["benign", "malignant"]
    rows = [row["row"] for row in matrix["rows"]]
    assert sum(map(sum, rows)) == ingested["test"].metadata["rows"]
    assert (rows[0][0] + rows[1][1]) / sum(map(sum, rows)) == pytest.approx(metrics.metadata["accuracy"])

    curve = classification.metadata["confidenceMetrics"]
    assert len(curve) >= 3
    assert all(0.0 <= point["confidenceThreshold"] <= 1.0 for point in curve)
    assert curve[0]["falsePositiveRate"] == 0.0 and curve[-1]["recall"] == 1.0
    json.dumps({**metrics.metadata, **classification.metadata}, allow_nan=False)


def test_gate_fails_below_threshold(tmp_path, trained, ingested):
    result, metrics, _ = run(tmp_path, trained, ingested["test"], threshold=1.0)
    assert metrics.metadata["accuracy"] < 1.0
    assert result.passed is False


@pytest.mark.parametrize("threshold", [-0.1, 1.5, math.nan])
def test_threshold_outside_unit_interval_is_refused(tmp_path, trained, ingested, threshold):
    metrics, classification = outputs(tmp_path)
    with pytest.raises(ValueError) as excinfo:
        evaluate.python_func(
            model=trained,
            test_data=ingested["test"],
            metrics=metrics,
            classification_metrics=classification,
            label_column="label",
            threshold=threshold,
        )
    assert_one_line(excinfo, f"threshold {threshold} is outside [0, 1]", "e.g. 0.9")
    assert metrics.metadata == {} and classification.metadata == {}
    assert not (tmp_path / "eval").exists()


def test_changed_model_file_is_not_loaded(tmp_path, trained, ingested):
    with open(trained.path, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError) as excinfo:
        run(tmp_path, trained, ingested["test"])
    assert_one_line(excinfo, "model file", "not the recorded", "re-run the pipeline")


def test_test_data_without_a_feature_column_is_refused(tmp_path, trained, ingested):
    frame = pd.read_csv(ingested["test"].path).drop(columns=["mean_radius"])
    frame.to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(ValueError) as excinfo:
        run(tmp_path, trained, dsl.Dataset(uri=str(tmp_path / "test.csv")))
    assert_one_line(excinfo, "feature column 'mean_radius' not found in test_data")


def test_single_class_test_split_omits_auc(tmp_path, trained, ingested):
    frame = pd.read_csv(ingested["test"].path)
    frame[frame["label"] == "benign"].to_csv(tmp_path / "benign.csv", index=False)
    result, metrics, classification = run(
        tmp_path, trained, dsl.Dataset(uri=str(tmp_path / "benign.csv")), threshold=0.5
    )
    assert "roc_auc" not in metrics.metadata
    assert "confidenceMetrics" not in classification.metadata
    assert "confusionMatrix" in classification.metadata
    assert result.passed is True
