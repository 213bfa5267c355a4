"""Fixtures for component tests: real files, real kfp artifact objects, no mocks.

kfp 2.13 maps a plain local-path URI straight to `artifact.path`, so artifacts created with
`dsl.Dataset(uri=str(tmp_path / "x"))` read and write real files under tmp_path.
"""

from pathlib import Path
from typing import Dict, Iterator

import pandas as pd
import pytest
from component_test_support import CI_VARIABLES, DEMO_CSV
from kfp import dsl
from kfp_lineage_components.ingest import ingest
from kfp_lineage_components.train import train


@pytest.fixture(autouse=True)
def _no_ci_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def write_csv(tmp_path: Path):
    def write(frame: pd.DataFrame, name: str = "source.csv") -> Path:
        path = tmp_path / "sources" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        return path

    return write


@pytest.fixture(scope="session")
def demo_frame() -> pd.DataFrame:
    return pd.read_csv(DEMO_CSV)


@pytest.fixture
def ingested(tmp_path: Path) -> Dict[str, dsl.Dataset]:
    splits = {
        "train": dsl.Dataset(name="train", uri=str(tmp_path / "ingest" / "train")),
        "test": dsl.Dataset(name="test", uri=str(tmp_path / "ingest" / "test")),
    }
    ingest.python_func(source_uri=str(DEMO_CSV), label_column="label", **splits)
    return splits


@pytest.fixture
def trained(tmp_path: Path, ingested: Dict[str, dsl.Dataset]) -> Iterator[dsl.Model]:
    model = dsl.Model(name="model", uri=str(tmp_path / "train" / "model"))
    metrics = dsl.Metrics(name="metrics", uri=str(tmp_path / "train" / "metrics"))
    train.python_func(train_data=ingested["train"], model=model, metrics=metrics, label_column="label", n_estimators=25)
    yield model
