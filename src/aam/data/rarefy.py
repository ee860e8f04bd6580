"""Rarefaction: exact subsampling of reads without replacement, one sample at a time.

Drawing `depth` reads without replacement from a sample whose features hold ``c_1..c_k`` reads
gives counts that follow the multivariate hypergeometric distribution (mean ``depth * c_j / N``,
variance ``depth * (c_j/N) * (1 - c_j/N) * (N - depth) / (N - 1)``, with ``N = sum(c)``). We draw
them with ``numpy.random.Generator.multivariate_hypergeometric`` (method "marginals": one
hypergeometric draw per observed feature, in C) on each CSR row's nonzero values only. The cost is
proportional to the number of nonzeros, not to the number of reads, which is why it beats
biom-format's ``Table.subsample`` (a random choice of `depth` read positions, then a sort) by an
order of magnitude; see scripts/bench_rarefy.py.

The same functions serve the `rarefy` stage (one seeded draw) and per-epoch re-rarefaction during
training (`rarefy_rows` on a batch of rows that all reach the depth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# numpy's "marginals" method requires sum(colors) < 1e9
MAX_SAMPLE_TOTAL = 10**9 - 1


def _rng(seed: np.random.Generator | int | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def sample_totals(counts: sp.spmatrix) -> np.ndarray:
    """Reads per sample (row) as int64."""
    return np.asarray(counts.sum(axis=1), dtype=np.int64).ravel()


def auto_depth(totals: np.ndarray, min_sample_fraction: float) -> int:
    """The largest depth that keeps at least `min_sample_fraction` of the samples.

    With totals sorted from largest to smallest, keeping ``k = ceil(fraction * n)`` samples allows
    a depth up to the k-th largest total. Samples with no reads count among the samples.
    """
    totals = np.asarray(totals, dtype=np.int64)
    if totals.size == 0:
        raise ValueError("no samples to choose a rarefaction depth from")
    if not 0 < min_sample_fraction <= 1:
        raise ValueError(f"min_sample_fraction must be in (0, 1], got {min_sample_fraction}")
    k = max(1, math.ceil(min_sample_fraction * totals.size - 1e-9))
    depth = int(np.sort(totals)[::-1][k - 1])
    if depth < 1:
        raise ValueError(
            f"keeping {min_sample_fraction:.0%} of samples would need a depth of 0 (too many empty samples)"
        )
    return depth


def choose_depth(totals: np.ndarray, depth: int | str, min_sample_fraction: float = 0.9) -> int:
    """`depth` itself when it is an int, or `auto_depth` for ``"auto"``."""
    if isinstance(depth, str):
        if depth != "auto":
            raise ValueError(f"depth must be a positive integer or 'auto', got '{depth}'")
        return auto_depth(totals, min_sample_fraction)
    if isinstance(depth, bool) or not isinstance(depth, int | np.integer) or depth < 1:
        raise ValueError(f"depth must be a positive integer or 'auto', got {depth!r}")
    return int(depth)


def rarefy_rows(
    counts: sp.spmatrix, depth: int, seed: np.random.Generator | int | None = None
) -> sp.csr_matrix:
    """Draw `depth` reads without replacement from every row of `counts` (samples x features).

    Every row must hold at least `depth` reads (ValueError otherwise). Returns an int64 CSR matrix
    of the same shape whose rows sum to `depth`, nonzero only where the input is (explicit zeros
    removed). A row whose total equals `depth` is returned unchanged. Draws are made row by row in
    order from one generator, so a seed fixes the result.
    """
    rng = _rng(seed)
    counts = sp.csr_matrix(counts, dtype=np.int64, copy=True)
    counts.sum_duplicates()
    if counts.data.size and counts.data.min() < 0:
        raise ValueError("counts must be non-negative")
    depth = int(depth)
    if depth < 0:
        raise ValueError(f"depth must be non-negative, got {depth}")
    totals = sample_totals(counts)
    short = np.flatnonzero(totals < depth)
    if short.size:
        first = int(short[0])
        raise ValueError(f"{short.size} rows have fewer than {depth} reads (row {first}: {totals[first]})")
    if totals.size and totals.max() > MAX_SAMPLE_TOTAL:
        raise ValueError(f"samples with more than {MAX_SAMPLE_TOTAL} reads are not supported")
    data = counts.data
    indptr = counts.indptr
    draw = rng.multivariate_hypergeometric
    for row in np.flatnonzero(totals != depth).tolist():
        start, end = indptr[row], indptr[row + 1]
        data[start:end] = draw(data[start:end], depth)
    counts.eliminate_zeros()
    return counts


@dataclass
class Rarefied:
    """Result of `rarefy`: the rarefied rows that reached the depth, and which rows those were."""

    counts: sp.csr_matrix  # kept rows x features, int64, rows sum to depth
    kept: np.ndarray  # bool per input row
    totals: np.ndarray  # reads per input row before rarefaction
    depth: int


def rarefy(counts: sp.spmatrix, depth: int, seed: np.random.Generator | int | None = None) -> Rarefied:
    """Drop rows with fewer than `depth` reads, rarefy the others (see `rarefy_rows`).

    A depth above every row's total is a ValueError (nothing would be left).
    """
    counts = sp.csr_matrix(counts)
    totals = sample_totals(counts)
    depth = int(depth)
    if depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth}")
    kept = totals >= depth
    if not kept.any():
        largest = int(totals.max(initial=0))
        raise ValueError(f"depth {depth} is above every sample's total (largest {largest})")
    return Rarefied(rarefy_rows(counts[kept], depth, seed), kept, totals, depth)
