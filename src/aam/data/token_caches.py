"""The token caches of AAM training, built from ingested features and counts.

Inputs: ``ingest/features.parquet`` (feature_id, sequence), ``ingest/counts.parquet`` (sample,
feature, count; long), optionally ``rarefied/table.biom`` (which samples reach the rarefaction
depth, and the depth). Outputs: ``features.parquet`` and ``samples.parquet`` (format in
:mod:`aam.io.parquet_cache`), both or neither (`aam.io.atomic.publish_together`: the folder must
hold nothing else). `aam tokenize` builds them for a dataset, `aam predict` for a new table.

The tokenizer settings and a SHA-256 of the inputs go into both files' metadata. If both outputs
already exist with the same settings and inputs they are kept as they are (logged); otherwise they
are rebuilt: a cache built with other settings is never reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pa_compute
import pyarrow.parquet as pq

from aam.data.nucleotides import NucleotideTokenizer
from aam.errors import InputError
from aam.io import parquet_cache as pc
from aam.io.atomic import publish_together

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ inputs
def _column(table, names: tuple[str, ...], path) -> str:
    for name in names:
        if name in table.column_names:
            return name
    raise InputError(f"{path}: no column {' or '.join(names)} (has {table.column_names})")


def read_ingest_features(path) -> tuple[np.ndarray, list[str]]:
    table = pq.read_table(path)
    fid = _column(table, ("feature_id", "feature", "id"), path)
    seq = _column(table, ("sequence", "seq"), path)
    ids = np.asarray(table.column(fid).to_pylist(), dtype=object).astype(str).astype(object)
    return ids, table.column(seq).to_pylist()


def read_ingest_counts(path, feature_ids: np.ndarray):
    """Long counts -> (sample ids in first-appearance order, CSR sorted by abundance)."""
    table = pq.read_table(path)
    scol = _column(table, ("sample", "sample_id"), path)
    fcol = _column(table, ("feature", "feature_id", "feature_index"), path)
    ccol = _column(table, ("count", "counts", "value"), path)
    counts = table.column(ccol).to_numpy().astype(np.int64)
    if (counts < 0).any():
        raise InputError(f"{path}: negative counts")
    table, counts = table.filter(pa.array(counts > 0)), counts[counts > 0]
    # Samples and feature names dictionary-encoded by Arrow (codes in order of first appearance): no
    # Python string per row, which at 50,000 samples (12.7M rows) took GBs and most of the time.
    samples = pa_compute.dictionary_encode(table.column(scol).cast(pa.string())).combine_chunks()
    scode = samples.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    sample_ids = np.asarray(samples.dictionary.to_pylist(), dtype=object)
    feats = table.column(fcol)
    if pa.types.is_integer(feats.type):  # already feature indices
        fidx = feats.to_numpy().astype(np.int64)
        if fidx.size and (fidx.min() < 0 or fidx.max() >= len(feature_ids)):
            raise InputError(f"{path}: feature index out of range 0..{len(feature_ids) - 1}")
    else:
        lookup = {f: i for i, f in enumerate(feature_ids)}
        names = pa_compute.dictionary_encode(feats.cast(pa.string())).combine_chunks()
        try:
            known = np.array([lookup[str(f)] for f in names.dictionary.to_pylist()], dtype=np.int64)
        except KeyError as err:
            raise InputError(f"{path}: feature {err.args[0]!r} is not in the features table") from err
        fidx = known[names.indices.to_numpy(zero_copy_only=False)] if len(known) else np.zeros(0, np.int64)
    # Within a sample: count descending, then feature index ascending (deterministic ties).
    perm = np.lexsort((fidx, -counts, scode))
    fidx, counts, scode = fidx[perm], counts[perm], scode[perm]
    if np.any((np.diff(scode) == 0) & (np.diff(fidx) == 0)):
        raise InputError(f"{path}: a (sample, feature) pair occurs twice")
    indptr = np.zeros(len(sample_ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(scode, minlength=len(sample_ids)), out=indptr[1:])
    return sample_ids.astype(object), indptr, fidx.astype(np.int32), counts


def read_rarefied(path) -> tuple[set[str], int | None]:
    """Sample IDs of the rarefied table and its depth (every sample sums to it)."""
    from aam.io.biom import read_table

    table = read_table(path)
    sums = table.sum(axis="sample")
    depth = int(sums[0]) if len(sums) else None
    if len(sums) and not np.all(sums == depth):
        log.warning("%s: samples do not all sum to one depth; using %s", path, depth)
    return set(map(str, table.ids(axis="sample"))), depth


# ------------------------------------------------------------------------------------------- build
def expected_metadata(features, counts, rarefied_info: tuple[set[str], int | None] | None,
                      max_bp: int) -> dict:
    """Settings and input hash a current cache must carry.

    The hash covers the bytes of the ingest files and, of the rarefied table, only what the cache
    uses (its depth and sample IDs): a BIOM file records its creation time, so its bytes differ
    between identical runs, and the caches must not.
    """
    digest = hashlib.sha256(pc.hash_files([features, counts]).encode())
    if rarefied_info is not None:
        survivors, depth = rarefied_info
        digest.update(json.dumps([depth, sorted(survivors)]).encode())
    return {"tokenizer": NucleotideTokenizer(max_bp).settings(), "input_sha256": digest.hexdigest()}


def build(features, counts, rarefied, out_features, out_samples, max_bp: int = 150,
          force: bool = False) -> bool:
    """Write both caches; returns False if they were current and kept, True if (re)built."""
    t0 = time.perf_counter()
    rarefied_info = read_rarefied(rarefied) if rarefied else None
    expected = expected_metadata(features, counts, rarefied_info, max_bp)
    if not force and pc.cache_is_current([out_features, out_samples], expected):
        log.info("token caches are current (same settings, same inputs): kept %s, %s",
                 out_features, out_samples)
        return False
    for path in (out_features, out_samples):
        if Path(path).exists():
            log.info("rebuilding %s: settings or inputs changed", path)

    feature_ids, sequences = read_ingest_features(features)
    tokenizer = NucleotideTokenizer(max_bp)
    tokens, lengths, stats = tokenizer.encode_with_lengths(sequences, ids=feature_ids)
    if stats.n_empty:
        raise InputError(f"{features}: {stats.n_empty} features have an empty sequence")
    sample_ids, indptr, fidx, cnt = read_ingest_counts(counts, feature_ids)
    if rarefied_info is not None:
        survivors, depth = rarefied_info
        is_rarefied = np.fromiter((s in survivors for s in sample_ids), dtype=bool, count=len(sample_ids))
    else:
        depth, is_rarefied = None, np.ones(len(sample_ids), dtype=bool)

    meta = {
        **expected,
        "n_features": int(len(feature_ids)),
        "n_samples": int(len(sample_ids)),
        "n_truncated": stats.n_truncated,
        "max_length_seen": stats.max_length_seen,
        "rarefaction_depth": depth,
        "n_rarefied_samples": int(is_rarefied.sum()),
    }
    # Both caches or neither: written into a temporary folder that takes the place of theirs.
    out_features, out_samples = Path(out_features), Path(out_samples)
    if out_features.parent != out_samples.parent:
        raise ValueError("the two token caches must share one folder")
    with publish_together(out_features.parent, (out_features.name, out_samples.name)) as tmp:
        pc.write_features(tmp / out_features.name, feature_ids, tokens, lengths, meta)
        pc.write_samples(tmp / out_samples.name, list(sample_ids), indptr, fidx, cnt, is_rarefied, meta)
    log.info(
        "tokenized %d features (max_bp %d, %d cut) and %d samples (%d reach depth %s) in %.2f s",
        len(feature_ids), max_bp, stats.n_truncated, len(sample_ids), int(is_rarefied.sum()), depth,
        time.perf_counter() - t0,
    )
    log.info("cache metadata: %s", json.dumps({k: v for k, v in meta.items() if k != "tokenizer"}))
    return True


def table_caches(counts, sample_ids, feature_ids, sequences, max_bp: int, folder: Path):
    """The token caches of a table held in memory (`aam predict`'s new table), built as `aam
    tokenize` builds a dataset's, in ``folder``."""
    coo = counts.tocoo()
    order = np.lexsort((coo.col, coo.row))  # samples in table order, features in table order
    pq.write_table(pa.table({"feature_id": pa.array(feature_ids, pa.string()),
                             "sequence": pa.array(sequences, pa.string())}), folder / "features.parquet")
    pq.write_table(pa.table({
        "sample": pa.array([sample_ids[i] for i in coo.row[order]], pa.string()),
        "feature": pa.array([feature_ids[j] for j in coo.col[order]], pa.string()),
        "count": pa.array(coo.data[order].astype(np.int64), pa.int64()),
    }), folder / "counts.parquet")
    tokens = folder / "tokens"
    tokens.mkdir()
    level = log.level  # the cache report of build means nothing here
    log.setLevel(logging.WARNING)
    try:
        build(folder / "features.parquet", folder / "counts.parquet", None, tokens / "features.parquet",
              tokens / "samples.parquet", max_bp=max_bp, force=True)
    finally:
        log.setLevel(level)
    log.info("read %d samples x %d features (max_bp %d)", len(sample_ids), len(feature_ids), max_bp)
    return pc.read_features(tokens / "features.parquet"), pc.read_samples(tokens / "samples.parquet")
