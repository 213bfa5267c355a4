"""Fuzzed CSV sources for the ingest logic: split, or one-line ValueError/FileNotFoundError and no output at all."""

import csv
import io
import json
import os
import sys
import tempfile

from hypothesis import event, given
from hypothesis import strategies as st
from kfp_lineage_components import _data

cells = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(["", "NA", "nan", "null", "a,b", '"', "\n", "1e999", "label", "True", "\x00", "\ufeff"]),
)
# Python 3.10's csv writer cannot write a NUL unescaped ("need to escape"); 3.11 and later can.
NUL_OK = {"escapechar": "\\"} if sys.version_info < (3, 11) else {}
column_names = st.one_of(st.just("label"), st.text(max_size=6), st.sampled_from(["", "Unnamed: 0", "label.1"]))
labels = st.one_of(st.sampled_from(["a", "b", "c"]), cells)


@st.composite
def tables(draw) -> str:
    """A CSV: a header (often with the label column) and rows of mixed cells, ragged now and then."""
    header = draw(st.lists(column_names, min_size=1, max_size=4))
    rows = draw(st.lists(st.lists(cells, min_size=len(header) - 1, max_size=len(header) + 1), max_size=12))
    label_index = header.index("label") if "label" in header else None
    out = io.StringIO()
    writer = csv.writer(out, quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_NONNUMERIC])), **NUL_OK)
    writer.writerow(header)
    for row in rows:
        if label_index is not None and label_index < len(row):
            row[label_index] = draw(labels)
        writer.writerow(row)
    return out.getvalue()


@st.composite
def labelled_tables(draw) -> str:
    """A CSV close to usable: a label column of a few classes, 2 to 30 rows, features of any cells."""
    features = draw(st.lists(column_names.filter(lambda name: name != "label"), min_size=1, max_size=3))
    header = features + ["label"] if draw(st.booleans()) else ["label"] + features
    classes = draw(st.lists(st.one_of(st.sampled_from(["a", "b", "c", "1", "0"]), cells), min_size=1, max_size=3))
    rows = draw(
        st.lists(
            st.tuples(st.lists(cells, min_size=len(features), max_size=len(features)), st.sampled_from(classes)),
            min_size=2,
            max_size=30,
        )
    )
    out = io.StringIO()
    writer = csv.writer(out, **NUL_OK)
    writer.writerow(header)
    for values, label in rows:
        writer.writerow(values + [label] if header[-1] == "label" else [label] + values)
    return out.getvalue()


def _ingest(content: bytes, **options) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "source.csv")
        with open(source, "wb") as f:
            f.write(content)
        out = os.path.join(tmp, "out")
        train, test = os.path.join(out, "train"), os.path.join(out, "test")
        try:
            split = _data.ingest(source_uri=source, label_column="label", train_path=train, test_path=test, **options)
        except (ValueError, FileNotFoundError) as e:
            message = str(e)
            assert message and "\n" not in message, repr(message)
            assert any(field in message for field in ("source_uri", "label_column", "test_fraction", "seed")), message
            leftovers = os.listdir(out) if os.path.isdir(out) else []
            assert leftovers == [], f"failed ingest left {leftovers}"
            event("refused: " + message.replace(repr(source), "SOURCE").split(" (")[0].split(":")[0][:60])
        else:
            assert os.path.isfile(train) and os.path.isfile(test)
            assert split.train["rows"] >= 1 and split.test["rows"] >= 1
            assert sorted(os.listdir(out)) == ["test", "train"]
            json.dumps([split.train, split.test], allow_nan=False)  # KFP records artifact metadata as JSON
            event("split")


@given(tables())
def test_random_tables_split_or_are_refused_in_one_line(text):
    _ingest(text.encode("utf-8"))


@given(labelled_tables())
def test_labelled_tables_split_or_are_refused_in_one_line(text):
    _ingest(text.encode("utf-8"))


@given(
    labelled_tables(),
    st.one_of(st.floats(), st.floats(min_value=0.01, max_value=0.99)),
    st.one_of(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=-(2**40), max_value=2**40)),
)
def test_random_tables_with_random_split_options(text, test_fraction, seed):
    _ingest(text.encode("utf-8"), test_fraction=test_fraction, seed=seed)


@given(st.binary(max_size=400))
def test_random_bytes_split_or_are_refused_in_one_line(data):
    _ingest(data)


@given(st.text(alphabet=st.sampled_from(list("label,x\"\n\r\t 01;\\")), max_size=200))
def test_random_csv_like_text_splits_or_is_refused_in_one_line(text):
    _ingest(text.encode("utf-8"))
