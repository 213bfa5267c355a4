"""The ingest component, called through its Python function with real artifacts and files."""

import hashlib
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from component_test_support import DEMO_CSV, FakeGoogleApis, assert_no_output, assert_one_line
from kfp import dsl
from kfp_lineage_components import _data
from kfp_lineage_components.ingest import ingest

METADATA_KEYS = {
    "source_uri",
    "split",
    "rows",
    "columns",
    "schema",
    "sha256",
    "label_column",
    "seed",
    "test_fraction",
    "stratified",
    "class_counts",
    "source_sha256",
}


def outputs(tmp_path: Path):
    return dsl.Dataset(uri=str(tmp_path / "out" / "train")), dsl.Dataset(uri=str(tmp_path / "out" / "test"))


def run(tmp_path: Path, source_uri: str, **kwargs):
    train, test = outputs(tmp_path)
    ingest.python_func(source_uri=source_uri, train=train, test=test, **{"label_column": "label", **kwargs})
    return train, test


def test_splits_demo_data_and_describes_both_outputs(tmp_path, demo_frame):
    train, test = run(tmp_path, str(DEMO_CSV))

    train_frame, test_frame = pd.read_csv(train.path), pd.read_csv(test.path)
    assert len(test_frame) == math.ceil(len(demo_frame) * 0.25)
    assert len(train_frame) + len(test_frame) == len(demo_frame)
    assert list(train_frame.columns) == list(demo_frame.columns)
    for artifact, split, frame in ((train, "train", train_frame), (test, "test", test_frame)):
        meta = artifact.metadata
        assert set(meta) == METADATA_KEYS
        assert meta["split"] == split
        assert meta["rows"] == len(frame)
        assert meta["columns"] == demo_frame.shape[1] == 21
        assert meta["schema"]["mean_radius"] == "float64"
        assert set(meta["schema"]) == set(demo_frame.columns)
        assert meta["sha256"] == hashlib.sha256(Path(artifact.path).read_bytes()).hexdigest()
        assert meta["source_sha256"] == hashlib.sha256(DEMO_CSV.read_bytes()).hexdigest()
        assert (meta["label_column"], meta["seed"], meta["source_uri"]) == ("label", 42, str(DEMO_CSV))
        assert meta["stratified"] is True
        assert sum(meta["class_counts"].values()) == len(frame)
        json.dumps(meta, allow_nan=False)  # KFP stores metadata as JSON / protobuf Struct
    # Stratified: the malignant share is the same on both sides to within one row.
    share = {a.metadata["split"]: a.metadata["class_counts"]["malignant"] / a.metadata["rows"] for a in (train, test)}
    assert abs(share["train"] - share["test"]) < 0.01


def test_split_is_deterministic_and_seeded(tmp_path):
    first, _ = run(tmp_path / "a", str(DEMO_CSV))
    again, _ = run(tmp_path / "b", str(DEMO_CSV))
    other, _ = run(tmp_path / "c", str(DEMO_CSV), seed=7)
    assert first.metadata["sha256"] == again.metadata["sha256"]
    assert first.metadata["sha256"] != other.metadata["sha256"]


def test_relative_path_resolves_against_working_directory(tmp_path, monkeypatch, write_csv, demo_frame):
    write_csv(demo_frame.head(40), "rel.csv")
    monkeypatch.chdir(tmp_path)
    train, test = run(tmp_path, "sources/rel.csv")
    assert train.metadata["rows"] + test.metadata["rows"] == 40
    assert train.metadata["source_uri"] == "sources/rel.csv"


def test_reads_file_uri_and_parquet(tmp_path, demo_frame):
    parquet = tmp_path / "demo.parquet"
    demo_frame.head(100).to_parquet(parquet, index=False)
    train, test = run(tmp_path, parquet.as_uri())
    assert train.metadata["rows"] + test.metadata["rows"] == 100
    assert pd.read_csv(train.path).columns.tolist() == demo_frame.columns.tolist()


def test_tiny_data_is_split_without_stratification(tmp_path, write_csv):
    source = write_csv(pd.DataFrame({"x": [1, 2, 3, 4, 5], "label": ["a", "a", "a", "a", "b"]}))
    train, test = run(tmp_path, str(source))
    assert (train.metadata["rows"], test.metadata["rows"]) == (3, 2)
    assert train.metadata["stratified"] is False


def test_missing_file_is_refused(tmp_path):
    train, test = outputs(tmp_path)
    with pytest.raises(FileNotFoundError) as excinfo:
        ingest.python_func(source_uri="no/such.csv", label_column="label", train=train, test=test)
    assert_one_line(excinfo, "source_uri 'no/such.csv' not found", str(Path.cwd() / "no/such.csv"), ".csv or .parquet")
    assert_no_output(Path(train.path))
    assert_no_output(Path(test.path))


@pytest.mark.parametrize(
    "content, expected",
    [("", "is an empty file"), ("x,label\n", "has no data rows"), ("\n\n", "has no columns")],
    ids=["zero-bytes", "header-only", "blank-lines"],
)
def test_empty_csv_is_refused(tmp_path, content, expected):
    source = tmp_path / "empty.csv"
    source.write_text(content)
    train, test = outputs(tmp_path)
    with pytest.raises(ValueError) as excinfo:
        ingest.python_func(source_uri=str(source), label_column="label", train=train, test=test)
    assert_one_line(excinfo, expected, "header row and at least one data row")
    assert_no_output(Path(train.path))
    assert_no_output(Path(test.path))


def test_missing_label_column_is_refused(tmp_path, write_csv):
    source = write_csv(pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]}))
    train, test = outputs(tmp_path)
    with pytest.raises(ValueError) as excinfo:
        ingest.python_func(source_uri=str(source), label_column="target", train=train, test=test)
    assert_one_line(excinfo, "label_column 'target' not found", "(columns: a, b)", "set label_column to one of them")
    assert_no_output(Path(train.path))
    assert_no_output(Path(test.path))


@pytest.mark.parametrize(
    "source_uri, expected",
    [
        ("s3://bucket/data.csv", "unsupported scheme"),
        ("gs://bucket-only", "does not name an object"),
        ("gs://bucket/data.json", "unsupported extension '.json'"),
        ("bq://", "names no table or query"),
        ("  ", "source_uri is empty"),
    ],
)
def test_unusable_source_uris_are_refused_before_any_io(tmp_path, source_uri, expected):
    train, test = outputs(tmp_path)
    with pytest.raises(ValueError) as excinfo:
        ingest.python_func(source_uri=source_uri, label_column="label", train=train, test=test)
    assert_one_line(excinfo, expected)
    assert_no_output(Path(train.path))


def test_unsupported_local_extension_is_refused(tmp_path):
    source = tmp_path / "data.txt"
    source.write_text("x,label\n1,a\n")
    with pytest.raises(ValueError) as excinfo:
        run(tmp_path, str(source))
    assert_one_line(excinfo, "unsupported extension '.txt'")


def test_missing_labels_are_refused(tmp_path, write_csv):
    source = write_csv(pd.DataFrame({"x": [1, 2, 3, 4], "label": ["a", None, "b", "a"]}))
    with pytest.raises(ValueError) as excinfo:
        run(tmp_path, str(source))
    assert_one_line(excinfo, "label_column 'label' has 1 empty value(s)", "drop or fill")


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 1.5])
def test_test_fraction_outside_unit_interval_is_refused(tmp_path, fraction):
    with pytest.raises(ValueError) as excinfo:
        run(tmp_path, str(DEMO_CSV), test_fraction=fraction)
    assert_one_line(excinfo, f"test_fraction {fraction} is outside (0, 1)")
    assert_no_output(tmp_path / "out" / "train")


def test_single_row_cannot_be_split(tmp_path, write_csv):
    source = write_csv(pd.DataFrame({"x": [1], "label": ["a"]}))
    with pytest.raises(ValueError) as excinfo:
        run(tmp_path, str(source))
    assert_one_line(excinfo, "cannot split 1 row(s)")


def test_bigquery_uris_become_sql():
    assert _data.bigquery_sql("my-project.sales.orders") == "SELECT * FROM `my-project.sales.orders`"
    query = "SELECT a, label FROM `p.d.t` WHERE a > 1"
    assert _data.bigquery_sql(query) == query


@pytest.fixture
def google_apis(monkeypatch, demo_frame):
    """Fake Cloud Storage and BigQuery servers reached through the real client libraries' emulator variables."""
    small = demo_frame.head(60)
    rows = [[str(value) for value in row] for row in small[["mean_radius", "label"]].itertuples(index=False)]
    with FakeGoogleApis(
        objects={"demo-bucket/data/demo.csv": small.to_csv(index=False).encode()},
        query_result=(["mean_radius", "label"], rows[::-1]),  # reversed: BigQuery row order is arbitrary
    ) as fake:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.url)
        monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", fake.url)
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
        yield fake


def test_reads_a_gcs_object(tmp_path, google_apis):
    train, test = run(tmp_path, "gs://demo-bucket/data/demo.csv")
    assert train.metadata["rows"] + test.metadata["rows"] == 60
    assert (
        train.metadata["source_sha256"] == hashlib.sha256(google_apis.objects["demo-bucket/data/demo.csv"]).hexdigest()
    )
    assert "query" not in train.metadata


def test_missing_gcs_object_is_refused(tmp_path, google_apis):
    with pytest.raises(FileNotFoundError) as excinfo:
        run(tmp_path, "gs://demo-bucket/data/absent.csv")
    assert_one_line(excinfo, "source_uri 'gs://demo-bucket/data/absent.csv' not found in Cloud Storage")
    assert_no_output(tmp_path / "out" / "train")


def test_reads_a_bigquery_table_reproducibly(tmp_path, google_apis):
    train, test = run(tmp_path / "a", "bq://test-project.demo.cells")
    assert google_apis.queries == ["SELECT * FROM `test-project.demo.cells`"]
    assert train.metadata["query"] == "SELECT * FROM `test-project.demo.cells`"
    assert "source_sha256" not in train.metadata
    assert train.metadata["rows"] + test.metadata["rows"] == 60
    google_apis.rows.reverse()  # the same rows in another order give the same split
    again, _ = run(tmp_path / "b", "bq://test-project.demo.cells")
    assert again.metadata["sha256"] == train.metadata["sha256"]


def test_runs_a_bigquery_query(tmp_path, google_apis):
    sql = "SELECT mean_radius, label FROM `test-project.demo.cells` WHERE mean_radius > 0"
    train, _ = run(tmp_path, f"bq://{sql}")
    assert google_apis.queries == [sql]
    assert train.metadata["query"] == sql


# Regressions found by tests/reliability/test_fuzz_csv.py.
def test_column_names_with_newlines_keep_the_error_on_one_line(tmp_path):
    source = tmp_path / "source.csv"
    source.write_text('"a\nb",x\n1,2\n')
    with pytest.raises(ValueError) as excinfo:
        run(tmp_path, str(source))
    assert str(excinfo.value) == (
        f"label_column 'label' not found in source_uri {str(source)!r} (columns: a\\nb, x): "
        "set label_column to one of them"
    )
    assert_no_output(tmp_path / "out" / "train")


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_outside_scikit_learn_range_is_refused(tmp_path, seed):
    with pytest.raises(ValueError) as excinfo:
        run(tmp_path, str(DEMO_CSV), seed=seed)
    assert str(excinfo.value) == f"seed {seed} is outside [0, 4294967295]: use e.g. 42"
    assert_no_output(tmp_path / "out" / "train")
