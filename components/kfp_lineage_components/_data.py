"""Data loading, validation and splitting behind the ingest component.

Sources: a local path or file:// URI, a gs:// object (CSV or Parquet, chosen by extension), a
BigQuery table (bq://project.dataset.table) or a BigQuery query (bq:// followed by SQL).
"""

import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import pandas as pd

from kfp_lineage_components import _shared

READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".pq": pd.read_parquet}
SOURCE_HINT = "pass a .csv or .parquet path, file://, gs:// URI, bq://project.dataset.table or bq://<SQL>"
_BQ_TABLE = re.compile(r"^[A-Za-z0-9_.:-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_$-]+$")


@dataclass(frozen=True)
class Source:
    """A loaded source table and what is known about where it came from."""

    frame: pd.DataFrame
    source_sha256: Optional[str] = None  # digest of the source file, for file-like sources
    query: Optional[str] = None  # the SQL that produced the rows, for BigQuery sources


@dataclass(frozen=True)
class SplitMetadata:
    """Artifact metadata for the two ingest outputs."""

    train: Dict[str, Any]
    test: Dict[str, Any]


def load_source(source_uri: str, cwd: Optional[str] = None) -> Source:
    """Read `source_uri` into a DataFrame, raising one-line errors for a missing, unreadable or empty source."""
    uri = source_uri.strip()
    if not uri:
        raise ValueError(f"source_uri is empty: {SOURCE_HINT}")
    if uri.startswith("bq://"):
        return _load_bigquery(uri, uri[len("bq://") :].strip())
    if uri.startswith("gs://"):
        return _load_gcs(uri)
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"source_uri {uri!r} uses an unsupported scheme: {SOURCE_HINT}")
    path = _shared.resolve_local_path(uri, cwd)
    if not path.is_file():
        raise FileNotFoundError(f"source_uri {uri!r} not found (looked for {path}): {SOURCE_HINT}")
    return Source(frame=read_table_file(path, uri), source_sha256=_shared.sha256_file(path))


def read_table_file(path: Path, source_uri: str) -> pd.DataFrame:
    """Read a CSV or Parquet file chosen by extension; reject empty or unreadable files."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(
            f"source_uri {source_uri!r} has unsupported extension {path.suffix or '(none)'!r}: {SOURCE_HINT}"
        )
    if path.stat().st_size == 0:
        raise ValueError(f"source_uri {source_uri!r} is an empty file: provide a header row and at least one data row")
    try:
        frame = reader(path)
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"source_uri {source_uri!r} has no columns: provide a header row and at least one data row"
        ) from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ValueError(
            f"source_uri {source_uri!r} could not be parsed ({_shared.first_line(exc)}):"
            f" check it is a valid {path.suffix[1:]} file"
        ) from None
    return frame


def _load_gcs(uri: str) -> Source:
    from google.api_core import exceptions as gexc
    from google.cloud import storage  # honours STORAGE_EMULATOR_HOST itself

    bucket_name, _, blob_name = uri[len("gs://") :].partition("/")
    if not bucket_name or not blob_name or blob_name.endswith("/"):
        raise ValueError(f"source_uri {uri!r} does not name an object: use gs://bucket/path/file.csv")
    if Path(blob_name).suffix.lower() not in READERS:
        raise ValueError(
            f"source_uri {uri!r} has unsupported extension {Path(blob_name).suffix or '(none)'!r}: {SOURCE_HINT}"
        )
    with tempfile.TemporaryDirectory(prefix="kfp-lineage-ingest-") as tmp:
        local = Path(tmp) / Path(blob_name).name
        try:
            storage.Client().bucket(bucket_name).blob(blob_name).download_to_filename(str(local))
        except gexc.NotFound:
            raise FileNotFoundError(
                f"source_uri {uri!r} not found in Cloud Storage: check the bucket and object name"
            ) from None
        return Source(frame=read_table_file(local, uri), source_sha256=_shared.sha256_file(local))


def bigquery_sql(spec: str) -> str:
    """The SQL to run for the part of a bq:// URI after the scheme: a table reference or a query."""
    if not spec:
        raise ValueError(f"source_uri 'bq://' names no table or query: {SOURCE_HINT}")
    if _BQ_TABLE.match(spec):
        return f"SELECT * FROM `{spec}`"
    return spec


def _load_bigquery(uri: str, spec: str) -> Source:
    from google.api_core import exceptions as gexc
    from google.cloud import bigquery

    sql = bigquery_sql(spec)
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or (spec.split(".")[0] if _BQ_TABLE.match(spec) else None)
    kwargs: Dict[str, Any] = {"project": project}
    if os.environ.get("BIGQUERY_EMULATOR_HOST"):  # the client routes to the emulator; it accepts no real credentials
        from google.auth.credentials import AnonymousCredentials

        kwargs["credentials"] = AnonymousCredentials()
    try:
        rows = bigquery.Client(**kwargs).query(sql).result()
        # Plain rows avoid the optional db-dtypes/BigQuery Storage dependencies of to_dataframe().
        frame = pd.DataFrame([dict(row.items()) for row in rows], columns=[field.name for field in rows.schema])
    except gexc.NotFound as exc:
        raise FileNotFoundError(
            f"source_uri {uri!r} not found in BigQuery ({_shared.first_line(exc)}): check the table or query"
        ) from None
    except gexc.GoogleAPICallError as exc:
        raise ValueError(
            f"source_uri {uri!r} query failed ({_shared.first_line(exc)}): fix the SQL or table reference"
        ) from None
    # BigQuery returns rows in no guaranteed order; sort so the seeded split is reproducible.
    frame = frame.sort_values(list(frame.columns), kind="mergesort", ignore_index=True)
    return Source(frame=frame, query=sql)


def validate_frame(frame: pd.DataFrame, source_uri: str, label_column: str) -> None:
    """Reject a table with no rows, no label column or missing labels."""
    if frame.shape[1] == 0 or len(frame) == 0:
        raise ValueError(f"source_uri {source_uri!r} has no data rows: provide a header row and at least one data row")
    _require_label(frame.columns, label_column, f"source_uri {source_uri!r}")
    missing = int(frame[label_column].isna().sum())
    if missing:
        raise ValueError(
            f"label_column {label_column!r} has {missing} empty value(s) in source_uri {source_uri!r}:"
            " drop or fill those rows"
        )
    if pd.api.types.is_float_dtype(frame[label_column]):  # e.g. 1E310 reads as inf; scikit-learn refuses it
        infinite = int(frame[label_column].isin([math.inf, -math.inf]).sum())
        if infinite:
            raise ValueError(
                f"label_column {label_column!r} has {infinite} infinite value(s) in source_uri {source_uri!r}:"
                " labels must be classes; fix or drop those rows"
            )
    if frame.shape[1] < 2:
        raise ValueError(f"source_uri {source_uri!r} has only the label column: add at least one feature column")


def check_test_fraction(test_fraction: float) -> None:
    """Reject a test fraction that cannot split anything."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction {test_fraction} is outside (0, 1): use e.g. 0.25")


MAX_SEED = 2**32 - 1  # scikit-learn's random_state range


def check_seed(seed: int) -> None:
    """Reject a seed scikit-learn cannot use, before anything is read."""
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed {seed} is outside [0, {MAX_SEED}]: use e.g. 42")


def split_frame(
    frame: pd.DataFrame, label_column: str, test_fraction: float, seed: int
) -> Tuple[pd.DataFrame, pd.DataFrame, bool]:
    """Seeded train/test split, stratified on the label whenever every class can appear on both sides.

    Returns (train, test, stratified).
    """
    from sklearn.model_selection import train_test_split

    check_test_fraction(test_fraction)
    rows = len(frame)
    n_test = math.ceil(rows * test_fraction)  # the rounding scikit-learn applies to a float test_size
    if n_test < 1 or rows - n_test < 1:
        raise ValueError(
            f"cannot split {rows} row(s) with test_fraction {test_fraction}: provide more rows or change test_fraction"
        )
    counts = frame[label_column].value_counts()
    stratify = bool(counts.min() >= 2 and min(n_test, rows - n_test) >= len(counts))
    train, test = train_test_split(
        frame,
        test_size=test_fraction,
        random_state=seed,
        shuffle=True,
        stratify=frame[label_column] if stratify else None,
    )
    return train.reset_index(drop=True), test.reset_index(drop=True), stratify


def schema_of(frame: pd.DataFrame) -> Dict[str, str]:
    """Column name -> pandas dtype string, in column order."""
    return {str(column): str(dtype) for column, dtype in frame.dtypes.items()}


def ingest(
    source_uri: str,
    label_column: str,
    train_path: str,
    test_path: str,
    test_fraction: float = 0.25,
    seed: int = 42,
    cwd: Optional[str] = None,
) -> SplitMetadata:
    """Load, validate and split `source_uri`, write train/test CSVs, and return their artifact metadata.

    Everything is validated before either file is written, and both files appear together or not at all.
    """
    check_test_fraction(test_fraction)
    check_seed(seed)
    source = load_source(source_uri, cwd)
    validate_frame(source.frame, source_uri, label_column)
    train, test, stratified = split_frame(source.frame, label_column, test_fraction, seed)

    with _shared.atomic_outputs([train_path, test_path]) as (train_tmp, test_tmp):
        train.to_csv(train_tmp, index=False)
        test.to_csv(test_tmp, index=False)
        digests = {"train": _shared.sha256_file(train_tmp), "test": _shared.sha256_file(test_tmp)}

    common: Dict[str, Any] = {
        "source_uri": source_uri,
        "label_column": label_column,
        "seed": seed,
        "test_fraction": test_fraction,
        "stratified": stratified,
        "columns": int(source.frame.shape[1]),
        "schema": schema_of(source.frame),
    }
    if source.source_sha256:
        common["source_sha256"] = source.source_sha256
    if source.query:
        common["query"] = source.query

    def describe(split: str, frame: pd.DataFrame) -> Dict[str, Any]:
        counts = frame[label_column].value_counts().sort_index()
        return _shared.json_ready(
            {
                **common,
                "split": split,
                "rows": len(frame),
                "sha256": digests[split],
                "class_counts": {str(label): int(count) for label, count in counts.items()},
            }
        )

    return SplitMetadata(train=describe("train", train), test=describe("test", test))


def read_split(path: str, label_column: str, what: str) -> pd.DataFrame:
    """Read a CSV written by ingest, with one-line errors for a missing/empty file or absent label column."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{what} file {file} is missing: connect the output of an ingest task")
    try:
        frame = pd.read_csv(file)
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame()
    if len(frame) == 0:
        raise ValueError(f"{what} file {file} has no rows: re-run ingest on a non-empty source")
    _require_label(frame.columns, label_column, f"{what} {file}")
    return frame


def _require_label(columns: Any, label_column: str, where: str) -> None:
    """`_shared.require_columns` for the label, listing the columns with control characters escaped.

    A CSV header may quote a newline into a column name; the error must stay on one line regardless.
    """
    present = [str(column) for column in columns]
    if label_column not in present:
        printable = ["".join(c if c.isprintable() else repr(c)[1:-1] for c in name) for name in present]
        _shared.require_columns(printable, [label_column], "label_column", where)
