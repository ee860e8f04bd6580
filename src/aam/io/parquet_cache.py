"""Token caches in Parquet: `tokens/features.parquet` and `tokens/samples.parquet`.

features.parquet
    One row per distinct feature, in ingest order (the row number is the feature index used
    everywhere downstream): ``feature_id`` (string), ``tokens`` (``fixed_size_binary[max_bp]``:
    the uint8 token row, 0-padded), ``length`` (int32: tokens kept, <= max_bp).
samples.parquet
    One row per sample of the ingested table, in ingest order: ``sample`` (string), ``features``
    (list<int32>: feature indices), ``counts`` (list<int64>), both sorted by count descending,
    ties by feature index ascending; ``total`` (int64 reads), ``rarefied`` (bool: the sample is in
    the rarefied table, i.e. it reaches the rarefaction depth).

Both files carry, in the Parquet schema metadata under the key ``aam.tokenize``, a JSON object
with the tokenizer settings, a SHA-256 of the inputs, the format version, counts (features,
samples, cut sequences) and the rarefaction depth. :func:`cache_is_current` compares that to the
settings and inputs of a new run, so a cache built with other settings is rebuilt, never reused.

Writing is deterministic: tables are built from Arrow arrays (no pandas index metadata), row groups
have a fixed size, compression is zstd at a fixed level (the token column is stored uncompressed, for
read speed) and nothing records a time, so two runs on the same inputs write byte-identical files.
Reading memory-maps the file (``memory_map=True``) and returns NumPy views over the Arrow buffers:
the token matrix is one ``[F, max_bp]`` uint8 array and the sample table a CSR triple (indptr,
features, counts), with no Python object per sample.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aam.io.atomic import atomic_path

META_KEY = b"aam.tokenize"
FORMAT_VERSION = 1
ROW_GROUP_SIZE = 65_536
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3


class CacheMismatchError(ValueError):
    """A cache was built with other settings or inputs than the caller expects."""


# ----------------------------------------------------------------------------------------- hashing
def hash_files(paths: list[str | os.PathLike], chunk: int = 1 << 20) -> str:
    """SHA-256 over the contents of ``paths`` in the given order (names excluded: moving a
    results folder does not invalidate its caches)."""
    digest = hashlib.sha256()
    for path in paths:
        file_digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(chunk):
                file_digest.update(block)
        digest.update(file_digest.digest())
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------- writing
def _write(table: pa.Table, path: str | os.PathLike, meta: dict, uncompressed: tuple[str, ...] = ()) -> None:
    schema_meta = {META_KEY: json.dumps(meta, sort_keys=True).encode()}
    table = table.replace_schema_metadata(schema_meta)
    # Per-column settings name flat columns only (a list column's leaf is "name.list.element").
    compression: str | dict = COMPRESSION
    level: int | dict = COMPRESSION_LEVEL
    if uncompressed:
        compression = {name: "none" if name in uncompressed else COMPRESSION for name in table.column_names}
        level = {name: COMPRESSION_LEVEL for name in table.column_names if name not in uncompressed}
    with atomic_path(path) as tmp:
        pq.write_table(
            table,
            tmp,
            row_group_size=ROW_GROUP_SIZE,
            compression=compression,
            compression_level=level,
            use_dictionary=False,
            write_statistics=False,
            store_schema=True,
        )


def write_features(
    path: str | os.PathLike,
    feature_ids: list[str] | np.ndarray,
    tokens: np.ndarray,
    lengths: np.ndarray,
    meta: dict,
) -> None:
    """Write features.parquet: ``tokens`` is uint8 ``[F, max_bp]``, ``lengths`` int ``[F]``."""
    tokens = np.ascontiguousarray(tokens, dtype=np.uint8)
    n, width = tokens.shape
    if len(feature_ids) != n or len(lengths) != n:
        raise ValueError("feature_ids, tokens and lengths differ in length")
    token_array = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), n, [None, pa.py_buffer(tokens.reshape(-1))]
    )
    table = pa.table(
        {
            "feature_id": pa.array([str(f) for f in feature_ids], type=pa.string()),
            "tokens": token_array,
            "length": pa.array(np.asarray(lengths, dtype=np.int32)),
        }
    )
    # Tokens stay uncompressed: reading them from the memory map is then a plain copy (GB/s), where
    # zstd would cut the file ~3x but decode 10x slower; IDs and lengths are zstd-compressed.
    meta = {**meta, "kind": "features", "format_version": FORMAT_VERSION}
    _write(table, path, meta, uncompressed=("tokens",))


def write_samples(
    path: str | os.PathLike,
    sample_ids: list[str],
    indptr: np.ndarray,
    features: np.ndarray,
    counts: np.ndarray,
    rarefied: np.ndarray,
    meta: dict,
) -> None:
    """Write samples.parquet from a CSR triple whose rows are already sorted by abundance."""
    indptr = np.asarray(indptr, dtype=np.int32)
    offsets = pa.array(indptr, type=pa.int32())
    feature_lists = pa.ListArray.from_arrays(offsets, pa.array(np.asarray(features, dtype=np.int32)))
    count_lists = pa.ListArray.from_arrays(offsets, pa.array(np.asarray(counts, dtype=np.int64)))
    totals = np.add.reduceat(np.append(np.asarray(counts, dtype=np.int64), 0), indptr[:-1])
    totals[np.diff(indptr) == 0] = 0
    table = pa.table(
        {
            "sample": pa.array([str(s) for s in sample_ids], type=pa.string()),
            "features": feature_lists,
            "counts": count_lists,
            "total": pa.array(totals.astype(np.int64)),
            "rarefied": pa.array(np.asarray(rarefied, dtype=bool)),
        }
    )
    _write(table, path, {**meta, "kind": "samples", "format_version": FORMAT_VERSION})


# ----------------------------------------------------------------------------------------- reading
def read_metadata(path: str | os.PathLike) -> dict:
    """The ``aam.tokenize`` metadata of a cache file (empty dict if absent)."""
    raw = pq.read_schema(path).metadata or {}
    return json.loads(raw[META_KEY]) if META_KEY in raw else {}


def cache_is_current(paths: list[str | os.PathLike], expected: dict) -> bool:
    """True if every file exists and its metadata agrees with ``expected`` on every key of it."""
    for path in paths:
        if not Path(path).exists():
            return False
        try:
            meta = read_metadata(path)
        except (OSError, pa.ArrowInvalid, json.JSONDecodeError):
            return False
        if meta.get("format_version") != FORMAT_VERSION:
            return False
        if any(meta.get(key) != value for key, value in expected.items()):
            return False
    return True


def check_metadata(meta: dict, expected: dict | None, path) -> None:
    if not expected:
        return
    diff = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
    if diff:
        detail = "; ".join(f"{k}: cache has {have!r}, expected {want!r}" for k, (have, want) in diff.items())
        raise CacheMismatchError(f"{path}: built with other settings ({detail}); rerun `aam tokenize`")


@dataclass
class FeatureCache:
    """features.parquet in memory: ``tokens[i]`` is feature ``i``'s token row."""

    feature_ids: np.ndarray  # object array of str
    tokens: np.ndarray  # uint8 [F, max_bp]
    lengths: np.ndarray  # int32 [F]
    meta: dict = field(default_factory=dict)

    @property
    def max_bp(self) -> int:
        return int(self.tokens.shape[1])

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


@dataclass
class SampleCache:
    """samples.parquet as CSR: sample ``i`` has ``features[indptr[i]:indptr[i+1]]`` (by abundance)."""

    sample_ids: np.ndarray  # object array of str
    indptr: np.ndarray  # int64 [S + 1]
    features: np.ndarray  # int32 [nnz]
    counts: np.ndarray  # int64 [nnz]
    totals: np.ndarray  # int64 [S]
    rarefied: np.ndarray  # bool [S]
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.sample_ids.shape[0])

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.indptr[i], self.indptr[i + 1]
        return self.features[lo:hi], self.counts[lo:hi]

    def index_of(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.sample_ids)}


def _list_parts(column: pa.ChunkedArray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, flat values) of a list column as NumPy, without a Python object per row."""
    arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    offsets = arr.offsets.to_numpy().astype(np.int64)
    values = arr.values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    return offsets - offsets[0], values[offsets[0] : offsets[-1]]


def read_features(path: str | os.PathLike, expected: dict | None = None) -> FeatureCache:
    """Read features.parquet (memory-mapped). ``expected``: metadata values that must match."""
    table = pq.read_table(path, memory_map=True)
    meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    check_metadata(meta, expected, path)
    column = table.column("tokens")
    arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    width = arr.type.byte_width
    n = len(arr)
    data = np.frombuffer(arr.buffers()[1], dtype=np.uint8)
    tokens = data[arr.offset * width : (arr.offset + n) * width].reshape(n, width)
    return FeatureCache(
        feature_ids=np.asarray(table.column("feature_id").to_numpy(zero_copy_only=False), dtype=object),
        tokens=tokens,
        lengths=table.column("length").to_numpy().astype(np.int32, copy=False),
        meta=meta,
    )


def read_samples(path: str | os.PathLike, expected: dict | None = None) -> SampleCache:
    """Read samples.parquet (memory-mapped) as a CSR triple."""
    table = pq.read_table(path, memory_map=True)
    meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    check_metadata(meta, expected, path)
    indptr, features = _list_parts(table.column("features"), np.int32)
    _, counts = _list_parts(table.column("counts"), np.int64)
    return SampleCache(
        sample_ids=np.asarray(table.column("sample").to_numpy(zero_copy_only=False), dtype=object),
        indptr=indptr,
        features=features,
        counts=counts,
        totals=table.column("total").to_numpy().astype(np.int64, copy=False),
        rarefied=table.column("rarefied").to_numpy(zero_copy_only=False).astype(bool),
        meta=meta,
    )
