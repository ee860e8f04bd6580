"""The one embeddings file layout, for every model: sample embeddings of AAM (`aam finetune`,
`aam predict`) and sequence embeddings of the DNA models (`aam embed`).

Parquet, one row per embedded item:

=============  ==================================  ============================================
column         Arrow type                          meaning
=============  ==================================  ============================================
``id``         string                              sample ID (AAM) or sequence ID (DNA models)
``split``      string, optional                    train / val / test where the rows have one
``embedding``  fixed_size_list<float32>[dim]       the pooled vector
=============  ==================================  ============================================

Other string columns may follow (``aam seq-train``'s ``reference.parquet`` adds each training
sequence and its taxonomy ranks). A fixed-size list keeps every vector the same length by type
and reads back as one contiguous (n, dim) array; pandas, polars, DuckDB and R's arrow read it as a
list per row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aam.errors import InputError
from aam.io.atomic import atomic_path


def embeddings_table(ids, vectors: np.ndarray, split=None, extra: dict | None = None) -> pa.Table:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(ids):
        raise ValueError(f"vectors must be (n={len(ids)}, dim), got {vectors.shape}")
    columns = {"id": pa.array([str(i) for i in ids], pa.string())}
    if split is not None:
        split = [str(s) for s in split]
        if len(split) != len(ids):
            raise ValueError("split must have one value per id")
        columns["split"] = pa.array(split, pa.string())
    for name, values in (extra or {}).items():
        columns[name] = pa.array(list(values), pa.string())
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()),
                                                             vectors.shape[1])
    return pa.table(columns)


def write_embeddings(path: str | Path, ids, vectors: np.ndarray, split=None,
                     extra: dict | None = None) -> None:
    """Write the layout above atomically (a temporary name, renamed at the end); ``extra``: more
    string columns by name."""
    table = embeddings_table(ids, vectors, split, extra)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_embeddings(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(ids: str array, split: str array or None, vectors: (n, dim) float32); anything else, or a
    NaN/infinite value, is an InputError naming the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"{path}: not a Parquet file: {err}") from err
    if "id" not in table.column_names or "embedding" not in table.column_names:
        raise InputError(f"{path}: an embeddings file needs columns id and embedding "
                         f"(fixed-size list of float32); has {table.column_names}")
    column = table.column("embedding").combine_chunks()
    if not pa.types.is_fixed_size_list(column.type):
        raise InputError(f"{path}: column embedding is {column.type}, not a fixed-size list of floats")
    dim = column.type.list_size
    vectors = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim)
    if not np.isfinite(vectors).all():
        raise InputError(f"{path}: embeddings contain NaN or infinite values")
    ids = np.asarray(table.column("id").to_pylist(), dtype=object).astype(str).astype(object)
    split = None
    if "split" in table.column_names:
        split = np.asarray(table.column("split").to_pylist(), dtype=object)
    return ids, split, vectors
