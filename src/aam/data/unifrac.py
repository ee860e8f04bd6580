"""Exact UniFrac distances and Faith's PD as matrix products (torch, CPU or CUDA).

Formulas, with branches b of length l_b, and x_bi the count of sample i under branch b
(see `aam.data.phylo`: a branch is a range of tip slots, so x = cumsum[hi] - cumsum[lo]):

- presence  P_bi = [x_bi > 0];  a_i = sum_b l_b P_bi  (Faith's PD of sample i)
- unweighted:            d_ij = (a_i + a_j - 2 s_ij) / (a_i + a_j - s_ij),  s = P^T diag(l) P  (one GEMM)
- weighted_unnormalized: u_ij = sum_b l_b |p_bi - p_bj|,  p_bi = x_bi / T_i  (T_i: total of sample i)
- weighted_normalized:   u_ij / (D_i + D_j),  D_i = sum_tips depth_t p_ti  (depth: distance to the root)

These equal scikit-bio's definitions (`skbio.diversity.beta_diversity`, `alpha.faith_pd`), including
its conventions: a pair of empty samples is at distance 0; an empty sample has PD 0; a branch length
on the root counts.

The weighted L1 sum is split by how many samples a branch is present in. Branches present in many
samples go through a dense L1 kernel (`torch.cdist(p=1)` over l-scaled proportions). For the others
(most branches: tips and small clades) |x - y| = x + y - 2 min(x, y), and min(x, y) is non-zero only
for pairs of samples that both have the branch, so their part is A_i + A_j - 2 M_ij with M summed
over those pairs only (sparse pair expansion), which is far less work than all pairs x all branches.

`unifrac_matrix` computes the full matrix of a table in blocks of samples (memory stays bounded);
`batch_distances` computes the B x B matrix of one training batch on the batch's device.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from aam.data.phylo import BranchIndex, build_branch_index, read_newick_text
from aam.errors import InputError
from aam.io.newick import parse_newick

log = logging.getLogger(__name__)

METRICS = ("unweighted", "weighted_normalized", "weighted_unnormalized")


@dataclass
class PhyloIndex:
    """A tree restricted to a table's features, ready for distance kernels (built once per tree)."""

    branches: BranchIndex
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_newick(cls, path_or_text: str | os.PathLike, feature_order: Sequence[str]) -> PhyloIndex:
        """Parse a Newick file (or text) and index it for the features in `feature_order`.

        The column order of every counts matrix given to this index must be `feature_order`.
        Raises InputError for an unrooted tree, or one where a feature is not a tip.
        """
        text = read_newick_text(path_or_text)
        source = "tree" if text is path_or_text else str(path_or_text)
        tree = parse_newick(text, source=source)
        return cls(build_branch_index(tree, feature_order, source=source))

    @property
    def feature_ids(self) -> tuple[str, ...]:
        return self.branches.feature_ids

    @property
    def n_features(self) -> int:
        return self.branches.n_features

    @property
    def n_branches(self) -> int:
        return self.branches.n_branches

    def tensors(self, device: torch.device | str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """slot, lo, hi (int64), length and tip_depth (dtype) on `device`, cached."""
        key = (str(torch.device(device)), dtype)
        if key not in self._cache:
            b = self.branches
            self._cache[key] = {
                "slot": torch.as_tensor(b.slot, device=device),
                "lo": torch.as_tensor(b.lo, device=device),
                "hi": torch.as_tensor(b.hi, device=device),
                "length": torch.as_tensor(b.length, dtype=dtype, device=device),
                "tip_depth": torch.as_tensor(b.tip_depth, dtype=dtype, device=device),
            }
        return self._cache[key]


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown UniFrac metric {metric!r}; choose from {', '.join(METRICS)}")


# Where a branch goes: present in at least `fraction x samples` samples, to the dense kernel (GEMM for
# unweighted, the |x - y| loop for weighted); otherwise to the sparse pair expansion. The break-even
# is ~sqrt(dense cost per pair and branch / pair-expansion cost per pair), measured on CPU:
# a large two-thread GEMM ~0.03 ns, a skinny 32-sample GEMM ~0.3 ns, the |x - y| loop ~0.5 ns,
# torch.cdist(p=1) ~1 ns (two threads), pair expansion ~20 ns.
DENSE_FRACTION = {"unweighted": 0.05, "unweighted_batch": 0.15, "weighted": 0.2, "weighted_batch": 0.16}
_MAX_PAIRS = 1 << 22  # pairs per step of the sparse expansion (bounds its memory)


def _pair_sums(cols: torch.Tensor, vals: torch.Tensor | None, per_row: torch.Tensor, length: torch.Tensor,
               n: int, out: torch.Tensor) -> None:
    """out[i, j] += sum over rows r holding both samples i < j of length[r] * min(v_ri, v_rj), or of
    length[r] when vals is None.

    Rows are given by their entries (cols: sample, vals: value), sorted by row then sample; rows must
    come in order of non-decreasing entry count `per_row[r]` (>= 2), so that rows of equal count form
    one [rows, count] block whose pairs are gathered with fixed upper-triangle indices.
    """
    if per_row.numel() == 0:
        return
    flat = out.view(-1)
    device = cols.device
    counts, n_rows = torch.unique_consecutive(per_row, return_counts=True)
    row0 = entry0 = 0
    for kk, nr in zip(counts.tolist(), n_rows.tolist(), strict=True):
        iu, ju = torch.triu_indices(kk, kk, 1, device=device)
        step = max(1, _MAX_PAIRS // len(iu))
        for r in range(0, nr, step):
            m = min(step, nr - r)
            e0 = entry0 + r * kk
            c = cols[e0 : e0 + m * kk].view(m, kk)
            w = length[row0 + r : row0 + r + m, None]
            if vals is not None:
                v = vals[e0 : e0 + m * kk].view(m, kk)
                w = w * torch.minimum(v[:, iu], v[:, ju])
            else:
                w = w.expand(m, len(iu))
            flat.index_add_(0, (c[:, iu] * n + c[:, ju]).reshape(-1), w.reshape(-1))
        row0 += nr
        entry0 += nr * kk


def _take_rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t[idx] along dim 0 (numpy's take is several times faster than torch's on CPU)."""
    if t.device.type == "cpu":
        return torch.from_numpy(np.take(t.numpy(), idx.numpy(), axis=0))
    return t.index_select(0, idx)


def _dense_l1(x: torch.Tensor, out: torch.Tensor) -> None:
    """out[i, j] += sum_b |x_ib - x_jb| for i < j (x: [n, N], scaled by branch lengths; n small: for
    a batch this loop beats torch.cdist(p=1), which is not vectorized on CPU)."""
    n = x.shape[0]
    for i in range(n - 1):
        out[i, i + 1 :] += torch.sub(x[i + 1 :], x[i]).abs_().sum(1)


def _finish(dist: torch.Tensor) -> torch.Tensor:
    """Upper triangle -> symmetric matrix with a zero diagonal."""
    dist = torch.triu(dist, diagonal=1)
    return (dist + dist.T).clamp_(min=0.0)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, 1.0), 0.0)


def _combine(metric: str, shared_or_l1: torch.Tensor, a: torch.Tensor, depth: torch.Tensor | None):
    """Final distances from the upper triangle of shared lengths (unweighted) or L1 sums (weighted)."""
    upper = torch.triu(shared_or_l1, 1)
    if metric == "unweighted":
        pair_a = a[:, None] + a[None, :]
        return _finish(_ratio(pair_a - 2.0 * upper, pair_a - upper))
    if metric == "weighted_normalized":
        return _finish(_ratio(upper, depth[:, None] + depth[None, :]))
    return _finish(upper)


def _split_rows(k: torch.Tensor, n: int, frac: float):
    """Order of branches by how many samples hold them (k), and the bounds of the three groups:
    [0, s0): at most one sample; [s0, d0): sparse (pair expansion); [d0, end): dense."""
    threshold = max(2, int(np.ceil(frac * n)))
    k_sorted, order = torch.sort(k, stable=True)
    s0 = int(torch.searchsorted(k_sorted, torch.tensor(2, device=k.device)))
    d0 = int(torch.searchsorted(k_sorted, torch.tensor(threshold, device=k.device)))
    return order, s0, d0, k_sorted


def _batch_core(x: torch.Tensor, lengths: torch.Tensor, metric: str, totals: torch.Tensor,
                depth_sums: torch.Tensor | None) -> torch.Tensor:
    """B x B distances from the branch-major counts x [N, B] of the samples of one batch."""
    n = x.shape[1]
    dtype = lengths.dtype
    present = x > 0
    order, s0, d0, k_sorted = _split_rows(present.sum(1), n, DENSE_FRACTION[metric.split("_")[0] + "_batch"])
    x = _take_rows(x, order)
    lengths = lengths.index_select(0, order)
    acc = torch.zeros(n, n, dtype=dtype, device=x.device)
    if metric == "unweighted":
        pres = (x > 0).to(dtype)
        a = lengths @ pres
        if d0 < x.shape[0]:
            pd = pres[d0:]
            acc += pd.T @ (pd * lengths[d0:, None])
        if d0 > s0:
            cols = pres[s0:d0].nonzero(as_tuple=True)[1]
            _pair_sums(cols, None, k_sorted[s0:d0], lengths[s0:d0], n, acc)
        return _combine(metric, acc, a, None)
    safe = torch.where(totals > 0, totals, 1.0)
    a = (lengths[:d0] @ x[:d0]) / safe
    if d0 < x.shape[0]:
        _dense_l1((x[d0:] * lengths[d0:, None] / safe).T.contiguous(), acc)
    if d0 > s0:
        xs = x[s0:d0] / safe
        rows, cols = xs.nonzero(as_tuple=True)
        m = torch.zeros(n, n, dtype=dtype, device=x.device)
        _pair_sums(cols, xs[rows, cols], k_sorted[s0:d0], lengths[s0:d0], n, m)
        acc -= 2.0 * m
    acc += a[:, None] + a[None, :]
    depth = depth_sums / safe if depth_sums is not None else None
    return _combine(metric, acc, a, depth)


def batch_distances(index: PhyloIndex, counts: torch.Tensor, feature_idx, metric: str = "unweighted",
                    dtype: torch.dtype | None = None) -> torch.Tensor:
    """UniFrac distances among the samples of one batch, as a B x B tensor on `counts.device`.

    counts: [B, V] counts (any numeric dtype) of the features `feature_idx` [V] (indices into the
    index's feature order, each at most once). dtype: of the computation and result: float64 unless
    given (or unless `counts` is floating, then its dtype).
    """
    _check_metric(metric)
    device = counts.device
    if dtype is None:
        dtype = counts.dtype if counts.is_floating_point() else torch.float64
    t = index.tensors(device, dtype)
    fidx = torch.as_tensor(feature_idx, device=device, dtype=torch.long)
    if counts.ndim != 2 or counts.shape[1] != fidx.shape[0]:
        raise ValueError(f"counts {tuple(counts.shape)} does not match feature_idx ({fidx.shape[0]})")
    values = counts.to(dtype)
    n_features = index.n_features
    # restrict the branches to the batch's tip slots: rank[s] = number of batch slots below s
    slots = t["slot"].index_select(0, fidx)
    mark = torch.zeros(n_features + 1, dtype=torch.long, device=device)
    mark[slots + 1] = 1
    rank = torch.cumsum(mark, 0)
    n_present = int(rank[-1])
    if n_present != fidx.shape[0]:
        raise ValueError("feature_idx holds a feature more than once")
    plo = rank.index_select(0, t["lo"])
    phi = rank.index_select(0, t["hi"])
    keep = (phi > plo).nonzero(as_tuple=True)[0]
    cum = torch.zeros(n_present + 1, values.shape[0], dtype=dtype, device=device)
    cum[rank.index_select(0, slots) + 1] = values.T
    torch.cumsum(cum, 0, out=cum)
    x = _take_rows(cum, phi.index_select(0, keep)) - _take_rows(cum, plo.index_select(0, keep))
    lengths = t["length"].index_select(0, keep)
    totals = values.sum(1)
    depth_sums = values @ t["tip_depth"].index_select(0, slots) if metric == "weighted_normalized" else None
    return _batch_core(x, lengths, metric, totals, depth_sums)


def _slot_csr(index: PhyloIndex, counts) -> sp.csr_matrix:
    """Samples x features counts (scipy sparse or dense, columns in the index's feature order) as a
    float64 CSR matrix whose columns are tip slots."""
    mat = sp.csr_matrix(counts, dtype=np.float64)
    if mat.shape[1] != index.n_features:
        raise ValueError(f"counts have {mat.shape[1]} columns; the index has {index.n_features} features")
    if mat.nnz and mat.data.min() < 0:
        raise InputError("negative counts in the table")
    # copies: sorting the new indices must not reorder the caller's data in place
    out = sp.csr_matrix((mat.data.copy(), index.branches.slot[mat.indices], mat.indptr.copy()),
                        shape=mat.shape)
    out.sort_indices()
    return out


def _block_branch_counts(csr: sp.csr_matrix, start: int, stop: int, lo: torch.Tensor, hi: torch.Tensor,
                         dtype, device) -> torch.Tensor:
    """Branch-major counts [N, stop - start] of a block of samples (rows of the slot-ordered CSR)."""
    block = csr[start:stop].T.tocsr()  # slots x samples
    cum = np.zeros((csr.shape[1] + 1, stop - start))
    block.toarray(out=cum[1:])
    np.cumsum(cum, axis=0, out=cum)
    if device.type == "cpu":
        x = np.take(cum, hi.numpy(), axis=0)
        x -= np.take(cum, lo.numpy(), axis=0)
        return torch.from_numpy(x).to(dtype)
    cum_t = torch.from_numpy(cum).to(device=device, dtype=dtype)
    return cum_t.index_select(0, hi) - cum_t.index_select(0, lo)


def _default_device(device) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def unifrac_matrix(index: PhyloIndex, counts, metric: str = "unweighted", dtype: torch.dtype = torch.float64,
                   device=None, block_size: int = 512) -> np.ndarray:
    """The full S x S UniFrac distance matrix (float64 numpy) of a samples x features table.

    counts: scipy sparse or dense, columns in the index's feature order. Samples are processed in
    blocks of `block_size`: temporaries stay O(block_size x branches); what is kept is the output
    (S x S), the dense branches (S x branches held by many samples) and the sparse entries of the
    others. device: "cpu", "cuda", or None/"auto" (CUDA when available).
    """
    _check_metric(metric)
    device = _default_device(device)
    csr = _slot_csr(index, counts)
    n = csr.shape[0]
    t = index.tensors(device, dtype)
    block_size = max(1, int(block_size))
    blocks = [(s, min(s + block_size, n)) for s in range(0, n, block_size)]
    weighted = metric != "unweighted"
    # pass 1: in how many samples is each branch present; order the branches by that
    k = torch.zeros(index.n_branches, dtype=torch.long, device=device)
    first = None
    for s0, s1 in blocks:
        x = _block_branch_counts(csr, s0, s1, t["lo"], t["hi"], dtype, device)
        k += (x > 0).sum(1)
        first = x if len(blocks) == 1 else None  # one block: reuse it in pass 2
    del x
    order, g_sparse, g_dense, k_sorted = _split_rows(k, n, DENSE_FRACTION[metric.split("_")[0]])
    lo, hi = t["lo"].index_select(0, order), t["hi"].index_select(0, order)
    lengths = t["length"].index_select(0, order)
    n_dense = len(order) - g_dense
    totals = torch.as_tensor(np.asarray(csr.sum(1)).ravel(), dtype=dtype, device=device)
    safe = torch.where(totals > 0, totals, 1.0)
    # pass 2: per-sample sums, the dense branches, the entries of the sparse branches
    dense = torch.empty((n, n_dense) if weighted else (n_dense, n), dtype=dtype, device=device)
    a = torch.zeros(n, dtype=dtype, device=device)
    cols_l, vals_l = [], []
    for s0, s1 in blocks:
        if first is not None:
            x, first = first.index_select(0, order), None
        else:
            x = _block_branch_counts(csr, s0, s1, lo, hi, dtype, device)  # [N, block]
        if weighted:
            x /= safe[s0:s1]
            a[s0:s1] = lengths[:g_dense] @ x[:g_dense]
            dense[s0:s1] = (x[g_dense:] * lengths[g_dense:, None]).T
        else:
            x = (x > 0).to(dtype)
            a[s0:s1] = lengths @ x
            dense[:, s0:s1] = x[g_dense:]
        # entries of the sparse branches, as (branch, sample) pairs
        br, smp = x[g_sparse:g_dense].nonzero(as_tuple=True)
        cols_l.append((br, smp + s0))
        if weighted:
            vals_l.append(x[g_sparse:g_dense][br, smp])
        del x
    acc = torch.zeros(n, n, dtype=dtype, device=device)
    if n_dense:
        if weighted:
            for i, (s0, s1) in enumerate(blocks):
                for r0, r1 in blocks[i:]:
                    acc[s0:s1, r0:r1] += torch.cdist(dense[None, s0:s1], dense[None, r0:r1], p=1.0)[0]
        else:
            scaled = dense * lengths[g_dense:, None]
            for s0, s1 in blocks:
                acc[s0:s1, s0:] += dense[:, s0:s1].T @ scaled[:, s0:]
            del scaled
    del dense
    if g_dense > g_sparse:
        br = torch.cat([c[0] for c in cols_l])
        srt = torch.sort(br, stable=True).indices  # by branch, then sample (blocks come in order)
        cols = torch.cat([c[1] for c in cols_l]).index_select(0, srt)
        vals = torch.cat(vals_l).index_select(0, srt) if weighted else None
        del cols_l, vals_l, br, srt
        m = torch.zeros(n, n, dtype=dtype, device=device) if weighted else acc
        if not weighted and device.type == "cpu":
            # shared lengths of the sparse branches: scipy's sparse product (C++) beats the pair expansion
            per_row = k_sorted[g_sparse:g_dense].numpy()
            indptr = np.concatenate([[0], np.cumsum(per_row)])
            pres = sp.csr_matrix((np.ones(len(cols)), cols.numpy(), indptr), shape=(len(per_row), n))
            scaled = sp.csr_matrix((np.repeat(lengths[g_sparse:g_dense].double().numpy(), per_row),
                                    cols.numpy(), indptr), shape=pres.shape)
            acc += torch.from_numpy((pres.T @ scaled).toarray()).to(dtype)
        else:
            _pair_sums(cols, vals, k_sorted[g_sparse:g_dense], lengths[g_sparse:g_dense], n, m)
        if weighted:
            acc -= 2.0 * m
            del m
    if weighted:
        acc += a[:, None] + a[None, :]
    depth = None
    if metric == "weighted_normalized":
        depth = torch.as_tensor(csr @ index.branches.tip_depth, dtype=dtype, device=device) / safe
    return _combine(metric, acc, a, depth).to(device="cpu", dtype=torch.float64).numpy()


def faith_pd(index: PhyloIndex, counts, dtype: torch.dtype = torch.float64, device=None,
             block_size: int = 512) -> np.ndarray:
    """Faith's phylogenetic diversity per sample: the summed length of the branches between the
    sample's features and the root (root length included, as scikit-bio does; 0 for an empty sample)."""
    device = _default_device(device)
    csr = _slot_csr(index, counts)
    t = index.tensors(device, dtype)
    out = np.zeros(csr.shape[0])
    for s0 in range(0, csr.shape[0], max(1, int(block_size))):
        s1 = min(s0 + block_size, csr.shape[0])
        x = _block_branch_counts(csr, s0, s1, t["lo"], t["hi"], dtype, device)
        out[s0:s1] = (t["length"] @ (x > 0).to(dtype)).double().cpu().numpy()
    return out
