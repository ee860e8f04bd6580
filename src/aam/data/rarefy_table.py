"""Reading the ingested counts and rarefying them into the table and the dropped list of `aam rarefy`.

The draw itself is :func:`aam.data.rarefy.rarefy` (seeded, without replacement); this module reads
``ingest/counts.parquet`` (or any table aam.io.biom reads), adds the samples without reads that the
metadata lists (so that they are reported as dropped rather than silently absent), checks the depth
and keeps only the features that still have reads after the draw.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import scipy.sparse as sp

from aam.data.rarefy import MAX_SAMPLE_TOTAL, choose_depth, rarefy, sample_totals
from aam.errors import InputError
from aam.io.biom import csr_to_table, read_table, table_to_csr

log = logging.getLogger(__name__)
PARQUET_MAGIC = b"PAR1"


def read_counts(path: str | Path) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """(samples x features CSR, sample IDs, feature IDs) from counts.parquet or a table file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    if magic != PARQUET_MAGIC:
        return table_to_csr(read_table(path))
    try:
        frame = pq.read_table(path).to_pandas()
    except Exception as err:
        raise InputError(f"{path}: cannot read Parquet ({err})") from None
    if not {"sample", "feature", "count"} <= set(frame.columns):
        raise InputError(f"{path}: needs columns sample, feature, count")
    if frame.empty:
        raise InputError(f"{path}: empty table")
    sample_codes, sample_ids = pd.factorize(frame["sample"].astype(str), sort=False)
    feature_codes, feature_ids = pd.factorize(frame["feature"].astype(str), sort=False)
    counts = frame["count"].to_numpy()
    if (counts < 0).any() or not np.all(counts == np.rint(counts)):
        raise InputError(f"{path}: counts must be non-negative integers")
    matrix = sp.csr_matrix(
        (counts.astype(np.int64), (sample_codes, feature_codes)), shape=(len(sample_ids), len(feature_ids))
    )
    if matrix.nnz != len(frame) - int((counts == 0).sum()):
        raise InputError(f"{path}: a (sample, feature) pair occurs twice")
    return matrix, list(sample_ids), list(feature_ids)


def with_all_samples(path, counts, sample_ids):
    """Add the samples of samples.parquet that have no reads (rows of zeros).

    Order: samples.parquet's, then table samples it lacks (ingest keeps those, without metadata,
    for self-supervised pretraining) in table order.
    """
    try:
        all_ids = [str(s) for s in pq.read_table(path, columns=["sample"]).column("sample").to_pylist()]
    except Exception as err:
        raise InputError(f"{path}: cannot read the sample column ({err})") from None
    index = {s: i for i, s in enumerate(sample_ids)}
    known = set(all_ids)
    all_ids += [s for s in sample_ids if s not in known]
    order = [index.get(s, -1) for s in all_ids]
    empty = sp.csr_matrix((1, counts.shape[1]), dtype=counts.dtype)
    stacked = sp.vstack([counts, empty]).tocsr()
    rows = [i if i >= 0 else counts.shape[0] for i in order]
    return stacked[rows], [str(s) for s in all_ids]


def rarefied_table(counts: sp.csr_matrix, sample_ids: list[str], feature_ids: list[str], depth_setting,
                   min_sample_fraction: float, seed: int, where: str):
    """(the rarefied biom Table, the dropped samples (sample, reads), the depth) at `depth_setting`
    (an int or "auto"); `where` names the table in errors."""
    totals = sample_totals(counts)
    too_many = np.flatnonzero((totals > MAX_SAMPLE_TOTAL) | (totals < 0))  # < 0: the int64 sum overflowed
    if too_many.size:
        first = int(too_many[0])
        reads = f"{counts[first].data.astype(np.float64).sum():.6g}"
        raise InputError(
            f"{where}: sample '{sample_ids[first]}' has {reads} reads, more than the "
            f"{MAX_SAMPLE_TOTAL:,} that rarefaction supports ({too_many.size} such samples)"
        )
    try:
        depth = choose_depth(totals, depth_setting, min_sample_fraction)
    except ValueError as err:
        raise InputError(f"{where}: {err}") from None
    if depth > totals.max():
        raise InputError(
            f"{where}: rarefaction depth {depth} is above every sample's total "
            f"(largest {int(totals.max())})"
        )
    result = rarefy(counts, depth, seed=seed)
    kept_ids = [s for s, k in zip(sample_ids, result.kept, strict=True) if k]
    matrix = result.counts.tocsc()
    observed = np.diff(matrix.indptr) > 0
    matrix = matrix[:, observed].tocsr()
    kept_features = [f for f, k in zip(feature_ids, observed, strict=True) if k]
    dropped = pd.DataFrame(
        {
            "sample": [s for s, k in zip(sample_ids, result.kept, strict=True) if not k],
            "reads": totals[~result.kept],
        }
    )
    log.info(
        "depth %d: kept %d of %d samples (%d dropped), %d features observed",
        depth,
        len(kept_ids),
        len(sample_ids),
        len(dropped),
        len(kept_features),
    )
    return csr_to_table(matrix, kept_ids, kept_features), dropped, depth
