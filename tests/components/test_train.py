"""The train component, called through its Python function with real artifacts and files."""

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from component_test_support import assert_no_output, assert_one_line
from kfp import dsl
from kfp_lineage_components import _shared
from kfp_lineage_components._modeling import MAX_CATEGORIES
from kfp_lineage_components.train import train

MODEL_KEYS = {
    "framework",
    "framework_version",
    "model_class",
    "serialization",
    "hyperparameters",
    "sha256",
    "training_data_sha256",
    "training_data_uri",
    "code_version",
    "label_column",
    "feature_columns",
    "categorical_columns",
    "classes",
}


def outputs(tmp_path: Path):
    return dsl.Model(uri=str(tmp_path / "train" / "model")), dsl.Metrics(uri=str(tmp_path / "train" / "metrics"))


def dataset(path: Path, frame: pd.DataFrame) -> dsl.Dataset:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return dsl.Dataset(uri=str(path))


def run(tmp_path: Path, data: dsl.Dataset, **kwargs):
    model, metrics = outputs(tmp_path)
    train.python_func(
        train_data=data, model=model, metrics=metrics, **{"label_column": "label", "n_estimators": 10, **kwargs}
    )
    return model, metrics


def synthetic(rows: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue"], size=rows)
    size = rng.normal(size=rows)
    label = np.where((color == "red") | (size > 1), "yes", "no")
    return pd.DataFrame({"size": size, "color": color, "label": label})


def test_trains_on_ingested_data_and_records_provenance(tmp_path, ingested):
    model, metrics = run(tmp_path, ingested["train"], code_version="abc123", n_estimators=20, max_depth=4, seed=3)

    meta = model.metadata
    assert set(meta) == MODEL_KEYS
    assert (meta["framework"], meta["framework_version"]) == ("scikit-learn", sklearn.__version__)
    assert meta["model_class"] == "sklearn.ensemble.RandomForestClassifier"
    assert meta["hyperparameters"] == {"n_estimators": 20, "max_depth": 4, "random_state": 3}
    assert meta["sha256"] == _shared.sha256_file(model.path)
    assert meta["training_data_sha256"] == ingested["train"].metadata["sha256"]
    assert meta["training_data_uri"] == ingested["train"].uri
    assert meta["code_version"] == "abc123"
    assert meta["label_column"] == "label"
    assert len(meta["feature_columns"]) == 20 and "label" not in meta["feature_columns"]
    assert meta["categorical_columns"] == []
    assert meta["classes"] == ["benign", "malignant"]
    json.dumps(meta, allow_nan=False)

    assert metrics.metadata["train_rows"] == ingested["train"].metadata["rows"]
    assert 0.9 < metrics.metadata["train_accuracy"] <= 1.0

    estimator = joblib.load(model.path)
    test = pd.read_csv(ingested["test"].path)
    assert (estimator.predict(test[meta["feature_columns"]]) == test["label"]).mean() > 0.9


def test_same_inputs_give_the_same_model(tmp_path, ingested):
    first, _ = run(tmp_path / "a", ingested["train"])
    second, _ = run(tmp_path / "b", ingested["train"])
    assert first.metadata["sha256"] == second.metadata["sha256"]


def test_low_cardinality_text_columns_are_one_hot_encoded(tmp_path):
    data = dataset(tmp_path / "data.csv", synthetic())
    model, metrics = run(tmp_path, data)
    assert model.metadata["categorical_columns"] == ["color"]
    assert model.metadata["feature_columns"] == ["size", "color"]
    # The digest is computed when the dataset did not come from ingest.
    assert model.metadata["training_data_sha256"] == _shared.sha256_file(data.path)
    estimator = joblib.load(model.path)
    unseen = pd.DataFrame({"size": [0.0], "color": ["purple"]})  # unknown categories are ignored, not fatal
    assert estimator.predict(unseen)[0] in {"yes", "no"}


def test_high_cardinality_text_column_is_refused(tmp_path):
    frame = synthetic(rows=MAX_CATEGORIES + 10)
    frame["customer_id"] = [f"c-{i}" for i in range(len(frame))]
    model, metrics = outputs(tmp_path)
    with pytest.raises(ValueError) as excinfo:
        train.python_func(
            train_data=dataset(tmp_path / "d.csv", frame), model=model, metrics=metrics, label_column="label"
        )
    assert_one_line(
        excinfo, "feature column 'customer_id'", f"{len(frame)} distinct non-numeric values", "drop it or encode it"
    )
    assert_no_output(Path(model.path))
    assert model.metadata == {} and metrics.metadata == {}


def test_numeric_column_with_stray_text_is_refused(tmp_path):
    frame = synthetic(rows=40)
    frame["weight"] = [str(70 + i) for i in range(len(frame))]
    frame.loc[5, "weight"] = "?"  # the UCI convention for a missing value
    model, metrics = outputs(tmp_path)
    with pytest.raises(ValueError) as excinfo:
        train.python_func(
            train_data=dataset(tmp_path / "d.csv", frame), model=model, metrics=metrics, label_column="label"
        )
    assert_one_line(excinfo, "feature column 'weight' is numeric except for values such as '?'", "clean or drop")
    assert_no_output(Path(model.path))


def test_single_class_is_refused(tmp_path):
    frame = synthetic()
    frame["label"] = "yes"
    with pytest.raises(ValueError) as excinfo:
        run(tmp_path, dataset(tmp_path / "d.csv", frame))
    assert_one_line(excinfo, "has a single class ('yes')", "at least two")
    assert_no_output(tmp_path / "train" / "model")


def test_changed_training_data_is_refused(tmp_path, ingested):
    path = Path(ingested["train"].path)
    path.write_text(path.read_text().replace("benign", "malignant", 1))  # still valid CSV, different bytes
    with pytest.raises(ValueError) as excinfo:
        run(tmp_path, ingested["train"])
    assert_one_line(excinfo, "train_data file", "not the recorded", "changed after it was produced")
    assert_no_output(tmp_path / "train" / "model")


def test_missing_label_column_is_refused(tmp_path):
    with pytest.raises(ValueError) as excinfo:
        run(tmp_path, dataset(tmp_path / "d.csv", synthetic()), label_column="target")
    assert_one_line(excinfo, "label_column 'target' not found", "size, color, label")


@pytest.mark.parametrize("field, value", [("n_estimators", 0), ("max_depth", 0)])
def test_unusable_hyperparameters_are_refused(tmp_path, field, value):
    with pytest.raises(ValueError) as excinfo:
        run(tmp_path, dataset(tmp_path / "d.csv", synthetic()), **{field: value})
    assert_one_line(excinfo, f"{field} {value} must be at least 1")
    assert_no_output(tmp_path / "train" / "model")
