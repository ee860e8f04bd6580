"""The one embeddings layout (aam.io.embeddings): id, optional split, fixed-size float32 vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aam.errors import InputError
from aam.io.embeddings import read_embeddings, write_embeddings


def test_round_trip_and_the_arrow_types(tmp_path):
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    path = tmp_path / "e.parquet"
    write_embeddings(path, ["2538.1", "b", "c"], vectors, split=["train", "val", "test"])
    schema = pq.read_schema(path)
    assert schema.names == ["id", "split", "embedding"]
    assert schema.field("id").type == pa.string()
    assert schema.field("embedding").type == pa.list_(pa.float32(), 4)  # fixed size 4
    ids, split, back = read_embeddings(path)
    assert list(ids) == ["2538.1", "b", "c"] and list(split) == ["train", "val", "test"]
    np.testing.assert_array_equal(back, vectors)
    # pandas, which other tools use, reads a vector per row
    frame = pd.read_parquet(path)
    np.testing.assert_array_equal(np.stack(frame["embedding"]), vectors)


def test_split_is_optional(tmp_path):
    write_embeddings(tmp_path / "e.parquet", ["x"], np.ones((1, 2)))
    ids, split, vectors = read_embeddings(tmp_path / "e.parquet")
    assert split is None and vectors.shape == (1, 2) and vectors.dtype == np.float32


FIXED = pa.list_(pa.float32(), 1)


@pytest.mark.parametrize("table, message", [
    (pa.table({"sample": ["a"], "embedding": pa.array([[1.0]], FIXED)}), "columns id and"),
    (pa.table({"id": ["a"], "vector": pa.array([[1.0]], FIXED)}), "columns id and"),
    (pa.table({"id": ["a"], "embedding": pa.array([[1.0]], pa.list_(pa.float32()))}), "not a fixed-size"),
    (pa.table({"id": ["a"], "embedding": pa.array([[float("nan")]], FIXED)}), "NaN"),
])
def test_other_layouts_are_a_clear_error(tmp_path, table, message):
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(InputError, match=message):
        read_embeddings(tmp_path / "bad.parquet")
