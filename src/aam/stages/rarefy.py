"""Stage `aam rarefy`: one seeded rarefaction of the table to a fixed depth, without replacement.

Input: ``--table``, the ingested ``ingest/counts.parquet`` (sample, feature, count) or any table
that aam.io.biom reads (BIOM, .qza, TSV); with ``--samples ingest/samples.parquet`` samples without
reads are listed as dropped too. The depth is an integer or ``auto`` (the largest depth that keeps
at least ``--min-sample-fraction`` of the samples). Outputs: ``--out`` (BIOM HDF5, the samples that
reach the depth, each summing to it; features without reads after the draw removed) and
``--dropped`` (TSV: ``sample``, ``reads``: the samples below the depth), both or neither
(`aam.io.atomic.publish_files`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import scipy.sparse as sp

from aam.data.rarefy import MAX_SAMPLE_TOTAL, choose_depth, rarefy, sample_totals
from aam.errors import InputError
from aam.io.atomic import publish_files
from aam.io.biom import csr_to_table, read_table, table_to_csr, write_biom

log = logging.getLogger(__name__)
PARQUET_MAGIC = b"PAR1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, help="ingest/counts.parquet, or a BIOM/.qza/TSV table")
    parser.add_argument("--samples", help="ingest/samples.parquet: lists samples without reads as dropped")
    parser.add_argument("--depth", default="auto", help="reads per sample, or 'auto' (default)")
    parser.add_argument(
        "--min-sample-fraction", type=float, default=0.9, help="share of samples that depth 'auto' keeps"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", required=True, help="rarefied BIOM table (HDF5) to write")
    parser.add_argument("--dropped", required=True, help="TSV of the samples below the depth to write")


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


def parse_depth(text: str) -> int | str:
    if str(text) == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"--depth: expected a positive integer or 'auto', got '{text}'") from None
    if value < 1:
        raise InputError(f"--depth: expected a positive integer or 'auto', got {value}")
    return value


def run(args: argparse.Namespace) -> None:
    depth_setting = parse_depth(args.depth)
    if not 0 < args.min_sample_fraction <= 1:
        raise InputError(f"--min-sample-fraction: must lie in (0, 1], got {args.min_sample_fraction}")
    counts, sample_ids, feature_ids = read_counts(args.table)
    if args.samples:
        counts, sample_ids = _with_all_samples(args.samples, counts, sample_ids)
    totals = sample_totals(counts)
    too_many = np.flatnonzero((totals > MAX_SAMPLE_TOTAL) | (totals < 0))  # < 0: the int64 sum overflowed
    if too_many.size:
        first = int(too_many[0])
        reads = f"{counts[first].data.astype(np.float64).sum():.6g}"
        raise InputError(
            f"{args.table}: sample '{sample_ids[first]}' has {reads} reads, more than the "
            f"{MAX_SAMPLE_TOTAL:,} that rarefaction supports ({too_many.size} such samples)"
        )
    try:
        depth = choose_depth(totals, depth_setting, args.min_sample_fraction)
    except ValueError as err:
        raise InputError(f"{args.table}: {err}") from None
    if depth > totals.max():
        raise InputError(
            f"{args.table}: rarefaction depth {depth} is above every sample's total "
            f"(largest {int(totals.max())})"
        )
    result = rarefy(counts, depth, seed=args.seed)
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
    table = csr_to_table(matrix, kept_ids, kept_features)
    with publish_files([args.out, args.dropped]) as (out, dropped_out):
        write_biom(table, out, generated_by=f"aam rarefy (depth {depth}, seed {args.seed})")
        dropped.to_csv(dropped_out, sep="\t", index=False)


def _with_all_samples(path, counts, sample_ids):
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
