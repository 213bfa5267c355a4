"""The ingest component: read a CSV/Parquet file, gs:// object or BigQuery table/query and split it."""

from kfp.dsl import Dataset, Output

from kfp_lineage_components import _packaging
from kfp_lineage_components._component import component


@component(_packaging.GCS_BIGQUERY_PACKAGES)
def ingest(
    source_uri: str,
    label_column: str,
    train: Output[Dataset],
    test: Output[Dataset],
    test_fraction: float = 0.25,
    seed: int = 42,
):
    """Validate a tabular source and split it into train and test CSV datasets.

    Args:
        source_uri: A .csv or .parquet local path (relative paths resolve against the task's
            working directory), file:// or gs:// URI, or bq://project.dataset.table, or bq:// followed by SQL.
        label_column: Column holding the class label; it must exist and have no empty values.
        train: Training split (CSV). Metadata: source_uri, split, rows, columns, schema, sha256,
            label_column, seed, test_fraction, stratified, class_counts, source_sha256 or query.
        test: Test split (CSV), with the same metadata keys as train.
        test_fraction: Share of rows for the test split, strictly between 0 and 1.
        seed: Random seed of the split; stratified on the label whenever every class fits both sides.
    """
    from kfp_lineage_components import _data

    split = _data.ingest(
        source_uri=source_uri,
        label_column=label_column,
        train_path=train.path,
        test_path=test.path,
        test_fraction=test_fraction,
        seed=seed,
    )
    train.metadata.update(split.train)
    test.metadata.update(split.test)
