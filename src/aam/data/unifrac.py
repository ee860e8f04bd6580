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
_TILE_PAIRS = 4  # pairs per tile entry and step of a tile's pair expansion (memory bounded by the tile)


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


def _branch_tip_matrix(index: PhyloIndex) -> sp.csr_matrix:
    """Branches x tip slots, 1 where the branch lies above the slot (cached on the index).

    Its product with a slots x samples count matrix gives every branch's count in every sample as
    a sparse matrix: the work is the summed depth of the samples' tips (~10^4 per 16S sample on
    Greengenes), where a dense cumulative sum over all slots costs branches x samples."""
    if "branch_tip" not in index._cache:
        b = index.branches
        width = (b.hi - b.lo).astype(np.int64)
        indptr = np.concatenate([[0], np.cumsum(width)])
        indices = np.arange(indptr[-1]) - np.repeat(indptr[:-1] - b.lo, width)
        index._cache["branch_tip"] = sp.csr_matrix(
            (np.ones(len(indices)), indices.astype(np.int32), indptr), shape=(b.n_branches, b.n_features))
    return index._cache["branch_tip"]


def _branch_counts(branch_tip: sp.csr_matrix, csr: sp.csr_matrix, start: int, stop: int) -> sp.csr_matrix:
    """Branches x samples counts (sparse) of the samples start:stop of the slot-ordered CSR."""
    return branch_tip @ csr[start:stop].T.tocsr()


def _default_device(device) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# Samples per step of the preparation passes (their sparse temporaries are ~30 bytes per branch a
# sample holds: ~70 kB per 16S sample on Greengenes).
_PREP_SAMPLES = 2048


def tile_grid(n: int, block_size: int) -> list[tuple[int, int, int, int]]:
    """The tiles (r0, r1, c0, c1) of the upper triangle of an n x n matrix (c0 >= r0), row by row.

    The distance matrix is symmetric: each tile is computed once and written at (r, c) and, off the
    diagonal, transposed at (c, r)."""
    block_size = max(1, int(block_size))
    edges = [(s, min(s + block_size, n)) for s in range(0, n, block_size)]
    return [(r0, r1, c0, c1) for i, (r0, r1) in enumerate(edges) for c0, c1 in edges[i:]]


def part_tiles(tiles: Sequence[tuple[int, int, int, int]], part: int, parts: int):
    """Part `part` (0-based) of `parts`: a contiguous run of the tiles, all runs within one tile of
    the same length, so that row-block jobs on a cluster take equal time."""
    if not 0 <= part < parts:
        raise ValueError(f"part {part} is not in [0, {parts})")
    bounds = np.linspace(0, len(tiles), parts + 1).round().astype(int)
    return list(tiles[bounds[part]:bounds[part + 1]])


class UniFracTiles:
    """The UniFrac distance matrix of a table, one tile (rows x columns) at a time.

    Built once per table and metric; then `tile(r0, r1, c0, c1)` gives any block of the S x S matrix.
    Memory is what the kernels need, never S x S: per sample its Faith-like sum `a` (and depth sums
    for weighted_normalized), the branches held by many samples as a dense S x branches array
    (uint8 presence for unweighted, scaled proportions for weighted), and the (sample, branch)
    entries of the other branches in sparse form; a tile's temporaries are O(block_size^2). So a
    matrix of any size is written tile by tile (`aam.io.distance_matrix`), and row-block jobs on a
    cluster each compute their own tiles (`part_tiles`).

    Per tile: unweighted shared lengths = dense GEMM + scipy's sparse product over the other
    branches; weighted L1 sums = torch.cdist(p=1) over the dense branches + a_i + a_j - 2 M_ij, with
    M the l-weighted sums of min(p_i, p_j) over the sparse branches shared by a row and a column
    sample (pair expansion restricted to the tile). See the module docstring for the formulas.
    """

    def __init__(self, index: PhyloIndex, counts, metric: str = "unweighted",
                 dtype: torch.dtype = torch.float64, device=None, block_size: int = 512):
        _check_metric(metric)
        self.metric, self.dtype = metric, dtype
        self.device = device = _default_device(device)
        self.block_size = max(1, int(block_size))
        np_dtype = np.float32 if dtype == torch.float32 else np.float64
        csr = _slot_csr(index, counts)
        self.n = n = csr.shape[0]
        branch_tip = _branch_tip_matrix(index)
        blocks = [(s, min(s + _PREP_SAMPLES, n)) for s in range(0, n, _PREP_SAMPLES)]
        weighted = metric != "unweighted"
        # pass 1: in how many samples is each branch present; order the branches by that
        k = np.zeros(index.n_branches, dtype=np.int64)
        for s0, s1 in blocks:
            k += np.diff(_branch_counts(branch_tip, csr, s0, s1).indptr)
        fraction = DENSE_FRACTION[metric.split("_")[0]]
        order, g_sparse, g_dense, _ = _split_rows(torch.from_numpy(k), n, fraction)
        order = order.numpy()
        branch_tip = branch_tip[order]
        lengths = index.branches.length[order]
        self.n_dense, self.n_sparse = n_dense, n_sparse = len(order) - g_dense, g_dense - g_sparse
        self.dense_lengths = torch.as_tensor(lengths[g_dense:], dtype=dtype, device=device)
        totals = np.asarray(csr.sum(1)).ravel()
        safe = np.where(totals > 0, totals, 1.0)
        # pass 2: per-sample sums, the dense branches, the (sample, branch) entries of the sparse ones
        dense = np.empty((n, n_dense), dtype=np_dtype if weighted else np.uint8)
        a = np.zeros(n)
        row_counts, branch_idx, values = [], [], []
        for s0, s1 in blocks:
            x = _branch_counts(branch_tip, csr, s0, s1)  # branches x block
            if weighted:
                x.data /= safe[s0:s1][x.indices]
                a[s0:s1] = x[:g_dense].T @ lengths[:g_dense]
                dense[s0:s1] = (x[g_dense:].toarray() * lengths[g_dense:, None]).T
            else:
                x.data[:] = 1.0
                a[s0:s1] = x.T @ lengths
                dense[s0:s1] = x[g_dense:].toarray().T
            block = x[g_sparse:g_dense].T.tocsr()  # block x sparse branches
            block.sort_indices()
            row_counts.append(np.diff(block.indptr))
            branch_idx.append(block.indices.astype(np.int32))
            if weighted:
                values.append(block.data.astype(np_dtype))
            del x, block
        self.dense = torch.from_numpy(dense).to(device)
        self.a = torch.as_tensor(a, dtype=dtype, device=device)
        indptr = np.concatenate([[0], np.cumsum(np.concatenate(row_counts))]).astype(np.int64)
        indices = np.concatenate(branch_idx)
        del branch_idx, dense
        sparse_lengths = lengths[g_sparse:g_dense].astype(np_dtype)
        if not weighted:
            # presence (uint8) times l-scaled presence: scipy upcasts the row slice per tile only
            self.left = sp.csr_matrix((np.ones(len(indices), np.uint8), indices, indptr), shape=(n, n_sparse))
            self.right = sp.csr_matrix((sparse_lengths[indices], indices, indptr), shape=(n, n_sparse))
        else:
            self.rows = sp.csr_matrix((np.concatenate(values), indices, indptr), shape=(n, n_sparse))
            del values
            # branch-major copy keyed by branch * n + sample (sorted): a tile's column range of a
            # branch is then one searchsorted away
            by_branch = self.rows.tocsc()
            self.key = (np.repeat(np.arange(n_sparse, dtype=np.int64), np.diff(by_branch.indptr)) * n
                        + by_branch.indices)
            self.key_values = by_branch.data
            self.sparse_lengths = sparse_lengths
            del by_branch
        self.depth = None
        if metric == "weighted_normalized":
            self.depth = torch.as_tensor((csr @ index.branches.tip_depth) / safe, dtype=dtype, device=device)

    @property
    def nbytes(self) -> int:
        """Bytes held by the prepared structures (what a tile needs besides its own temporaries)."""
        held = self.dense.element_size() * self.dense.nelement() + self.a.element_size() * self.n
        for name in ("left", "right", "rows"):
            m = getattr(self, name, None)
            if m is not None:
                held += m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
        if hasattr(self, "key"):
            held += self.key.nbytes + self.key_values.nbytes
        return held

    def tile(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Distances of rows r0:r1 to columns c0:c1 (numpy, the computation's dtype). A tile on the
        diagonal (r0 == c0, r1 == c1) is exactly symmetric with a zero diagonal."""
        if self.metric == "unweighted":
            acc = self._shared(r0, r1, c0, c1)
            pair_a = self.a[r0:r1, None] + self.a[None, c0:c1]
            dist = _ratio(pair_a - 2.0 * acc, pair_a - acc)
        else:
            acc = -2.0 * self._min_sums(r0, r1, c0, c1)
            if self.n_dense:
                acc += torch.cdist(self.dense[None, r0:r1], self.dense[None, c0:c1], p=1.0)[0]
            acc += self.a[r0:r1, None] + self.a[None, c0:c1]
            if self.metric == "weighted_normalized":
                acc = _ratio(acc, self.depth[r0:r1, None] + self.depth[None, c0:c1])
            dist = acc
        dist = _finish(dist) if (r0, r1) == (c0, c1) else dist.clamp_(min=0.0)
        return dist.cpu().numpy()

    def _shared(self, r0, r1, c0, c1) -> torch.Tensor:
        """Summed lengths of the branches shared by each row and column sample (tile shape)."""
        acc = torch.zeros(r1 - r0, c1 - c0, dtype=self.dtype, device=self.device)
        if self.n_dense:
            rows = self.dense[r0:r1].to(self.dtype)
            cols = self.dense[c0:c1].to(self.dtype) * self.dense_lengths
            acc += rows @ cols.T
        if self.n_sparse:
            product = (self.left[r0:r1] @ self.right[c0:c1].T).toarray()
            acc += torch.from_numpy(product).to(device=self.device, dtype=self.dtype)
        return acc

    def _min_sums(self, r0, r1, c0, c1) -> torch.Tensor:
        """M_ij = sum over sparse branches held by row sample i and column sample j of
        l_b min(p_bi, p_bj), by expanding each row entry against the branch's column entries."""
        rb, cb = r1 - r0, c1 - c0
        out = np.zeros(rb * cb)
        block = self.rows[r0:r1]
        if block.nnz:
            row = np.repeat(np.arange(rb, dtype=np.int64), np.diff(block.indptr))
            branch = block.indices.astype(np.int64)
            base = branch * self.n
            lo = np.searchsorted(self.key, base + c0)
            count = np.searchsorted(self.key, base + c1) - lo
            ends = np.cumsum(count)
            # steps of a few pairs per tile entry: memory stays bounded by the tile
            step = max(1 << 16, _TILE_PAIRS * rb * cb)
            marks = np.arange(step, ends[-1] + step, step)
            bounds = np.unique(np.concatenate([[0], np.searchsorted(ends, marks, side="right")]))
            for e0, e1 in zip(bounds[:-1], bounds[1:], strict=True):
                c = count[e0:e1]
                offset = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
                pos = np.repeat(lo[e0:e1], c) + offset
                col = self.key[pos] - np.repeat(base[e0:e1], c) - c0
                weight = np.minimum(np.repeat(block.data[e0:e1], c), self.key_values[pos])
                weight *= self.sparse_lengths[np.repeat(branch[e0:e1], c)]
                out += np.bincount(np.repeat(row[e0:e1], c) * cb + col, weights=weight, minlength=rb * cb)
        return torch.from_numpy(out.reshape(rb, cb)).to(device=self.device, dtype=self.dtype)


def unifrac_matrix(index: PhyloIndex, counts, metric: str = "unweighted", dtype: torch.dtype = torch.float64,
                   device=None, block_size: int = 512) -> np.ndarray:
    """The full S x S UniFrac distance matrix (float64 numpy) of a samples x features table, in memory.

    For tables whose matrix fits in memory (tests, benchmarks, GPU checks); the `unifrac` stage writes
    large matrices tile by tile instead (`UniFracTiles`). counts: scipy sparse or dense, columns in
    the index's feature order. device: "cpu", "cuda", or None/"auto" (CUDA when available).
    """
    tiles = UniFracTiles(index, counts, metric, dtype=dtype, device=device, block_size=block_size)
    out = np.zeros((tiles.n, tiles.n))
    for r0, r1, c0, c1 in tile_grid(tiles.n, block_size):
        block = tiles.tile(r0, r1, c0, c1)
        out[r0:r1, c0:c1] = block
        out[c0:c1, r0:r1] = block.T
    return out


def faith_pd(index: PhyloIndex, counts, block_size: int = 4096) -> np.ndarray:
    """Faith's phylogenetic diversity per sample: the summed length of the branches between the
    sample's features and the root (root length included, as scikit-bio does; 0 for an empty sample)."""
    csr = _slot_csr(index, counts)
    branch_tip = _branch_tip_matrix(index)
    out = np.zeros(csr.shape[0])
    for s0 in range(0, csr.shape[0], max(1, int(block_size))):
        s1 = min(s0 + block_size, csr.shape[0])
        present = _branch_counts(branch_tip, csr, s0, s1)
        present.data[:] = 1.0
        out[s0:s1] = present.T @ index.branches.length
    return out
