"""Model building, training and evaluation behind the train and evaluate components."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from kfp_lineage_components import _data, _shared

# One-hot encoding more distinct values than this is almost always an ID or free text, not a category.
MAX_CATEGORIES = 20
MODEL_CLASS = "sklearn.ensemble.RandomForestClassifier"


def split_feature_columns(frame: pd.DataFrame, feature_columns: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Sort features into (numeric, categorical); raise a one-line ValueError naming a column that cannot be encoded."""
    numeric: List[str] = []
    categorical: List[str] = []
    for column in feature_columns:
        series = frame[column]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            numeric.append(column)
            continue
        values = series.dropna()
        if values.empty:
            raise ValueError(f"feature column {column!r} has no values: drop it from the data")
        kinds = sorted({type(value).__name__ for value in values})
        if len(kinds) > 1:
            raise ValueError(
                f"feature column {column!r} mixes value types ({', '.join(kinds)}): convert it to a single type"
            )
        distinct = int(values.nunique())
        if distinct > MAX_CATEGORIES:
            as_numbers = pd.to_numeric(values.astype(str), errors="coerce")
            if as_numbers.notna().mean() >= 0.5:
                examples = preview_unique(values[as_numbers.isna()])
                raise ValueError(
                    f"feature column {column!r} is numeric except for values such as {examples}:"
                    " clean or drop those values"
                )
            raise ValueError(
                f"feature column {column!r} has {distinct} distinct non-numeric values (at most {MAX_CATEGORIES}"
                " can be one-hot encoded): drop it or encode it before ingest"
            )
        categorical.append(column)
    return numeric, categorical


def preview_unique(values: pd.Series, limit: int = 3) -> str:
    """A few distinct values, quoted, for error messages."""
    return ", ".join(repr(str(value)) for value in pd.unique(values)[:limit])


def build_estimator(
    numeric: Sequence[str], categorical: Sequence[str], n_estimators: int, max_depth: int, seed: int
) -> Any:
    """Pipeline of one-hot encoding for categorical columns (numeric pass through) and a random forest."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    preprocess = ColumnTransformer(
        [
            ("numeric", "passthrough", list(numeric)),
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(categorical)),
        ],
        verbose_feature_names_out=False,
    )
    forest = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=seed)
    return Pipeline([("preprocess", preprocess), ("classifier", forest)])


def check_hyperparameters(n_estimators: int, max_depth: int) -> None:
    """Reject hyperparameters a random forest cannot use."""
    if n_estimators < 1:
        raise ValueError(f"n_estimators {n_estimators} must be at least 1: use e.g. 100")
    if max_depth < 1:
        raise ValueError(f"max_depth {max_depth} must be at least 1: use e.g. 5")


@dataclass(frozen=True)
class TrainResult:
    """Model artifact metadata and training metrics."""

    metadata: Dict[str, Any]
    metrics: Dict[str, float]


def train(
    train_path: str,
    model_path: str,
    label_column: str,
    data_metadata: Mapping[str, Any],
    training_data_uri: str,
    code_version: str = "unknown",
    n_estimators: int = 100,
    max_depth: int = 5,
    seed: int = 42,
) -> TrainResult:
    """Fit the classifier on the training CSV, save it with joblib to `model_path`, and describe it.

    The training data's recorded sha256 (from ingest) is verified when present, else computed.
    """
    import joblib
    import sklearn

    check_hyperparameters(n_estimators, max_depth)
    frame = _data.read_split(train_path, label_column, "train_data")
    if data_metadata.get("sha256"):
        data_sha256 = _shared.verify_sha256(train_path, data_metadata["sha256"], "train_data")
    else:
        data_sha256 = _shared.sha256_file(train_path)
    labels = frame[label_column]
    if labels.nunique() < 2:
        raise ValueError(
            f"label_column {label_column!r} has a single class ({labels.iloc[0]!r}) in train_data:"
            " a classifier needs at least two"
        )
    features = [str(column) for column in frame.columns if column != label_column]
    if not features:
        raise ValueError(f"train_data has only the label column {label_column!r}: add at least one feature column")
    numeric, categorical = split_feature_columns(frame, features)

    estimator = build_estimator(numeric, categorical, n_estimators, max_depth, seed)
    estimator.fit(frame[features], labels)
    train_accuracy = float((estimator.predict(frame[features]) == labels.to_numpy()).mean())

    with _shared.atomic_output(model_path) as tmp:
        joblib.dump(estimator, tmp)
    metadata = {
        "framework": "scikit-learn",
        "framework_version": sklearn.__version__,
        "model_class": MODEL_CLASS,
        "serialization": "joblib",
        "hyperparameters": {"n_estimators": n_estimators, "max_depth": max_depth, "random_state": seed},
        "sha256": _shared.sha256_file(model_path),
        "training_data_sha256": data_sha256,
        "training_data_uri": training_data_uri,
        "code_version": code_version,
        "label_column": label_column,
        "feature_columns": features,
        "categorical_columns": categorical,
        "classes": [str(label) for label in estimator.classes_],
    }
    metrics = {"train_accuracy": train_accuracy, "train_rows": float(len(frame))}
    return TrainResult(metadata=_shared.json_ready(metadata), metrics=metrics)


def check_threshold(threshold: float) -> None:
    """Reject an accuracy threshold outside [0, 1]."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold} is outside [0, 1]: pass an accuracy between 0 and 1, e.g. 0.9")


@dataclass(frozen=True)
class Evaluation:
    """Test-set metrics of a classifier, in plain Python types."""

    accuracy: float
    f1: float
    roc_auc: Optional[float]  # None when the test split lacks a class, where AUC is undefined
    rows: int
    categories: List[str]
    confusion_matrix: List[List[int]]
    roc_curve: Optional[Tuple[List[float], List[float], List[float]]] = field(default=None)  # binary only
    passed: bool = False


def load_model(model_path: str, model_metadata: Mapping[str, Any]) -> Any:
    """Load a joblib model, checking its recorded sha256 first when there is one (unpickling runs code)."""
    import joblib

    if "sha256" in model_metadata:
        _shared.verify_sha256(model_path, model_metadata["sha256"], "model")
    elif not Path(model_path).is_file():
        raise FileNotFoundError(f"model file {model_path} is missing: connect the model output of a train task")
    return joblib.load(model_path)


def evaluate(
    model_path: str,
    model_metadata: Mapping[str, Any],
    test_path: str,
    label_column: str,
    threshold: float,
) -> Evaluation:
    """Score the model on the test CSV; passed is accuracy >= threshold."""
    from sklearn import metrics as skm

    check_threshold(threshold)
    estimator = load_model(model_path, model_metadata)
    frame = _data.read_split(test_path, label_column, "test_data")
    features = list(model_metadata.get("feature_columns") or estimator.feature_names_in_)
    _shared.require_columns(frame.columns, features, "feature column", "test_data")

    y_true = frame[label_column].to_numpy()
    y_pred = estimator.predict(frame[features])
    proba = estimator.predict_proba(frame[features])
    classes = list(estimator.classes_)
    labels = list(np.unique(np.concatenate([np.asarray(classes, dtype=object), y_true.astype(object)])))
    present = set(y_true.tolist())

    accuracy = float(skm.accuracy_score(y_true, y_pred))
    roc = None
    roc_auc: Optional[float] = None
    if len(classes) == 2:
        positive = classes[1]
        f1 = float(skm.f1_score(y_true, y_pred, pos_label=positive, zero_division=0))
        if len(present & set(classes)) == 2:
            scores = proba[:, 1]
            roc_auc = float(skm.roc_auc_score(y_true == positive, scores))
            fpr, tpr, thresholds = skm.roc_curve(y_true == positive, scores)
            # scikit-learn starts the curve at threshold +inf, which JSON metadata cannot hold.
            roc = (fpr.tolist(), tpr.tolist(), np.minimum(thresholds, 1.0).tolist())
    else:
        f1 = float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
        if present == set(classes):
            roc_auc = float(skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))
    matrix = skm.confusion_matrix(y_true, y_pred, labels=labels)
    return Evaluation(
        accuracy=accuracy,
        f1=f1,
        roc_auc=roc_auc,
        rows=len(frame),
        categories=[str(label) for label in labels],
        confusion_matrix=matrix.astype(int).tolist(),
        roc_curve=roc,
        passed=accuracy >= threshold,
    )
