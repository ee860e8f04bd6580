"""aam.data.rarefy: exact subsampling without replacement, checked against the hypergeometric law."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from aam.data.rarefy import auto_depth, choose_depth, rarefy, rarefy_rows, sample_totals


def random_counts(seed=0, n=40, m=60, density=0.3):
    rng = np.random.default_rng(seed)
    dense = rng.negative_binomial(1, 0.02, size=(n, m)) * (rng.random((n, m)) < density)
    return sp.csr_matrix(dense.astype(np.int64))


def test_rows_sum_to_depth_and_keep_only_observed_features():
    counts = random_counts()
    depth = int(np.sort(sample_totals(counts))[len(counts.indptr) // 3])
    result = rarefy(counts, depth, seed=1)
    assert np.all(sample_totals(result.counts) == depth)
    before = counts[result.kept].toarray()
    after = result.counts.toarray()
    assert np.all(after <= before)  # only observed features, never more reads than observed
    assert np.all((after > 0) <= (before > 0))
    assert result.counts.dtype == np.int64
    assert np.all(result.counts.data > 0)  # no explicit zeros
    assert np.array_equal(result.kept, sample_totals(counts) >= depth)


def test_depth_equal_to_total_returns_sample_unchanged():
    counts = sp.csr_matrix(np.array([[5, 0, 3, 2], [1, 1, 1, 1], [0, 7, 0, 3]], dtype=np.int64))
    result = rarefy_rows(counts[[0, 2]], 10, seed=3)
    assert np.array_equal(result.toarray(), counts[[0, 2]].toarray())
    mixed = rarefy(counts, 10, seed=3)
    assert np.array_equal(mixed.kept, [True, False, True])
    assert np.array_equal(mixed.counts.toarray(), counts[[0, 2]].toarray())


def test_seeded_and_input_untouched():
    counts = random_counts(seed=4)
    copy = counts.copy()
    a = rarefy(counts, 100, seed=7).counts
    b = rarefy(counts, 100, seed=7).counts
    c = rarefy(counts, 100, seed=8).counts
    assert (a != b).nnz == 0
    assert (a != c).nnz > 0
    assert (counts != copy).nnz == 0


def test_many_draws_match_hypergeometric_moments():
    """20,000 draws of one sample: per-feature means, variances and covariances match the
    multivariate hypergeometric law. The seed is fixed, so the outcome is deterministic; the
    tolerances are still about 5 standard errors wide, so any seed would pass."""
    colors = np.array([50, 1, 20, 7, 300, 2, 120], dtype=np.int64)
    total, depth, draws = int(colors.sum()), 100, 20_000
    counts = sp.csr_matrix(np.tile(colors, (draws, 1)))
    sample = rarefy_rows(counts, depth, seed=12345).toarray().astype(np.float64)
    p = colors / total
    finite = (total - depth) / (total - 1)
    mean = depth * p
    var = depth * p * (1 - p) * finite
    cov = -depth * np.outer(p, p) * finite
    np.fill_diagonal(cov, var)
    got_mean = sample.mean(axis=0)
    got_cov = np.cov(sample, rowvar=False)
    # standard error of a mean: sqrt(var / draws); of a variance: about var * sqrt(2 / draws)
    assert np.all(np.abs(got_mean - mean) <= 5 * np.sqrt(var / draws) + 1e-12)
    assert np.all(np.abs(np.diag(got_cov) - var) <= 5 * var * np.sqrt(2 / draws) + 1e-12)
    # covariances: standard error about sqrt((var_i var_j + cov_ij^2) / draws)
    se_cov = np.sqrt((np.outer(var, var) + cov**2) / draws)
    assert np.all(np.abs(got_cov - cov) <= 5 * se_cov + 1e-12)


def test_rows_are_independent_draws():
    counts = sp.csr_matrix(np.tile(np.array([10, 10, 10], dtype=np.int64), (2000, 1)))
    sample = rarefy_rows(counts, 15, seed=5).toarray()
    assert len({tuple(r) for r in sample}) > 5  # not one draw repeated


def test_rows_below_depth():
    counts = sp.csr_matrix(np.array([[5, 5], [1, 0]], dtype=np.int64))
    with pytest.raises(ValueError, match="fewer than"):
        rarefy_rows(counts, 3)
    with pytest.raises(ValueError, match="above every sample's total"):
        rarefy(counts, 11)


def test_auto_depth_keeps_fraction():
    totals = np.array([0, 10, 20, 30, 40, 50, 60, 70, 80, 90])
    assert auto_depth(totals, 0.9) == 10  # 9 of 10 samples reach 10
    assert auto_depth(totals, 0.5) == 50  # 5 of 10 reach 50
    assert auto_depth(totals, 0.51) == 40  # ceil(5.1) = 6 samples must be kept
    assert auto_depth(totals, 0.05) == 90
    for fraction in (0.1, 0.33, 0.77, 0.9):
        depth = auto_depth(totals, fraction)
        assert np.mean(totals >= depth) >= fraction
        assert np.mean(totals >= depth + 1) < fraction  # the largest such depth


def test_auto_depth_errors():
    with pytest.raises(ValueError, match="depth of 0"):
        auto_depth(np.array([0, 0, 5]), 1.0)
    with pytest.raises(ValueError):
        auto_depth(np.array([1, 2]), 0)


def test_choose_depth():
    totals = np.array([10, 20, 30, 40])
    assert choose_depth(totals, 15) == 15
    assert choose_depth(totals, "auto", 0.75) == 20
    for bad in ("deep", 0, -3, 2.5, True):
        with pytest.raises(ValueError):
            choose_depth(totals, bad)
