"""Taxonomy classifiers evaluated as the field does it (Bokulich et al. 2018, Microbiome 6:90;
tax-credit): cross-validation over the reference with random folds, and novel-taxa folds in which
whole taxa of one rank are left out of training.

Scores follow tax-credit's ``compute_prf`` (scikit-learn's micro precision/recall over the labels
that reach the scored depth), which comes down to:

- random folds, rank r, over the test reads whose true lineage names r: a read *assigned* at r
  (its taxonomy, cut at the threshold, reaches r) counts toward precision, right if its lineage
  down to r is the true one; unassigned reads count against recall only.
  precision = right / assigned, recall = right / reads, F = 2 P R / (P + R).
- novel taxa left out at rank L (genus, or species): the right answer is the parent lineage and
  nothing at L. *match*: the taxonomy stops exactly at the parent, which is right;
  *overclassification*: it goes on to some taxon at L (which cannot be right) with the parent
  right; *underclassification*: it stops above the parent, right as far as it goes (or
  Unassigned); *misclassification*: anything else. precision = match / reads assigned down to the
  parent or deeper, recall = match / reads.

Folds: random K-fold over the reads (not stratified by lineage, as tax-credit's cross-validated
test); novel taxa: the taxa named at L whose parent has at least two named children ("branching",
as tax-credit keeps them, so the parent stays in the reference) are dealt at random into K groups;
fold j tests on every read of group j's taxa and trains on every other read (reads whose rank L is
unnamed stay in training). tax-credit also removes references with unnamed ranks and queries one
read per taxon; we keep the reference as a user has it and score each rank on the reads that name
it, and query every read of a left-out taxon.

External test set (reads disjoint from the reference, e.g. new reads): training drops any
reference sequence identical to a test read (`identical_to_any`); its novel taxa are the test reads
whose taxon the reference lacks while holding the parent (`taxa_in_training`); with one split, the
spread of a difference in F is a paired bootstrap over the test reads (`bootstrap_f_difference`).
"""

from __future__ import annotations

import numpy as np

from aam.evaluate.taxonomy_nb import RankCalls


# ------------------------------------------------------------------------------------------ folds
def random_folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    """k disjoint test index sets covering range(n), dealt at random."""
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, k)]


def lineage_paths(lineage: np.ndarray, rank: int) -> np.ndarray:
    """(n,) tuples of the names down to `rank` (None where a rank up to it is unnamed)."""
    out = np.full(len(lineage), None, dtype=object)
    for i, row in enumerate(np.asarray(lineage, dtype=object)):
        head = tuple(row[: rank + 1])
        if all(v is not None for v in head):
            out[i] = head
    return out


def branching_taxa(paths: np.ndarray) -> list[tuple]:
    """The sorted `lineage_paths` whose parent has at least two named children (see the docstring)."""
    children: dict[tuple, set] = {}
    for p in paths:
        if p is not None:
            children.setdefault(p[:-1], set()).add(p)
    return sorted(p for kids in children.values() if len(kids) >= 2 for p in kids)


def novel_taxa_folds(lineage: np.ndarray, rank: int, k: int, seed: int) -> list[tuple[np.ndarray, set]]:
    """k folds of (test indices, left-out taxa as lineage paths down to `rank`); see the docstring."""
    paths = lineage_paths(lineage, rank)
    taxa = branching_taxa(paths)
    order = np.random.default_rng(seed).permutation(len(taxa))
    folds = []
    for part in np.array_split(order, k):
        left_out = {taxa[i] for i in part}
        test = np.flatnonzero([p in left_out for p in paths])
        folds.append((test, left_out))
    return folds


# ----------------------------------------------------------------------------------------- scores
def depth_at(calls: RankCalls, threshold: float | np.ndarray) -> np.ndarray:
    """(m,) ranks kept at the threshold (one, or (R,) one per rank): the leading ranks named,
    consistent and confident enough (what `aam.evaluate.taxonomy.truncate` and q2's classify-sklearn
    keep)."""
    named = np.vectorize(lambda v: v is not None, otypes=[bool])(calls.names)
    keep = named & calls.consistent & (calls.confidence >= threshold)
    return np.cumprod(keep, axis=1).sum(axis=1)


def right_prefix(calls: RankCalls, truth: np.ndarray) -> np.ndarray:
    """(m, R) bool: the called lineage equals the true one down to each rank (both named)."""
    truth = np.asarray(truth, dtype=object)
    same = np.vectorize(lambda a, b: a is not None and a == b, otypes=[bool])(calls.names, truth)
    return np.cumprod(same, axis=1).astype(bool)


def prf(right: int, assigned: int, total: int) -> dict:
    p = right / assigned if assigned else 0.0
    r = right / total if total else 0.0
    return {"precision": p, "recall": r, "f": 2 * p * r / (p + r) if p + r else 0.0}


def random_fold_scores(calls: RankCalls, truth: np.ndarray, threshold: float | np.ndarray) -> list[dict]:
    """Per rank: reads scored, assigned, right, precision, recall, F (see the module docstring)."""
    truth = np.asarray(truth, dtype=object)
    depth = depth_at(calls, threshold)
    right = right_prefix(calls, truth)
    out = []
    for r in range(truth.shape[1]):
        scored = np.asarray([v is not None for v in truth[:, r]], dtype=bool)
        assigned = scored & (depth > r)
        hit = assigned & right[:, r]
        counts = {"reads": int(scored.sum()), "assigned": int(assigned.sum()), "right": int(hit.sum())}
        out.append({**counts, **prf(counts["right"], counts["assigned"], counts["reads"])})
    return out


def novel_taxa_scores(calls: RankCalls, truth: np.ndarray, rank: int, threshold: float | np.ndarray) -> dict:
    """Scores of reads whose taxon at `rank` was left out of training (see the module docstring)."""
    depth = depth_at(calls, threshold)
    right = right_prefix(calls, truth)
    parent = rank - 1
    parent_right = right[:, parent]
    match = (depth == rank) & parent_right
    over = (depth > rank) & parent_right
    shallow_right = np.asarray([d == 0 or right[i, d - 1] for i, d in enumerate(depth)], dtype=bool)
    under = (depth < rank) & shallow_right
    mis = ~(match | over | under)
    n = len(depth)
    out = {
        "reads": n,
        "match": int(match.sum()),
        "overclassification": int(over.sum()),
        "underclassification": int(under.sum()),
        "misclassification": int(mis.sum()),
    }
    return {**out, **prf(out["match"], int((depth >= rank).sum()), n)}


# ----------------------------------------------------------------------- an external test set
def identical_to_any(seqs: list[str], others: list[str]) -> np.ndarray:
    """(len(seqs),) bool: the sequence (case aside) is one of `others`: a training sequence that
    would hand a test read its own label, to be dropped before an external test."""
    other = {s.upper() for s in others}
    return np.fromiter((s.upper() in other for s in seqs), dtype=bool, count=len(seqs))


def taxa_in_training(train: np.ndarray, test: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Test reads whose taxon at `rank` training (a) holds, or (b) lacks while holding its parent.

    (b) are an external test set's novel taxa: the right call is the parent and nothing below
    (`novel_taxa_scores`). Reads whose lineage down to `rank` is not fully named are in neither.
    """
    paths, test_paths = set(lineage_paths(train, rank)), lineage_paths(test, rank)
    parents = set(lineage_paths(train, rank - 1))
    seen = np.asarray([p is not None and p in paths for p in test_paths], dtype=bool)
    unseen = [p is not None and p not in paths and p[:-1] in parents for p in test_paths]
    return seen, np.asarray(unseen, dtype=bool)


def read_hits(
    calls: RankCalls, truth: np.ndarray, rank: int, threshold: float | np.ndarray, novel: bool
) -> tuple:
    """Per-read (right, assigned) bools behind the F at `rank` of `random_fold_scores` (over the
    reads naming `rank`) or, `novel`, of `novel_taxa_scores` (match, assigned down to the parent
    or deeper): what `bootstrap_f_difference` resamples."""
    depth = depth_at(calls, threshold)
    right = right_prefix(calls, truth)
    if novel:
        return (depth == rank) & right[:, rank - 1], depth >= rank
    scored = np.asarray([v is not None for v in np.asarray(truth, dtype=object)[:, rank]], dtype=bool)
    assigned = depth > rank
    return (assigned & right[:, rank])[scored], assigned[scored]


def bootstrap_f_difference(a: tuple, b: tuple, n_boot: int = 2000, seed: int = 0) -> dict:
    """Paired bootstrap over reads of F(a) - F(b), each given as per-read (right, assigned) bools
    over the same scored reads (`read_hits`): the observed difference and its 95 % interval."""
    ra, aa, rb, ab = (np.asarray(x, dtype=np.int64) for x in (*a, *b))
    n = len(ra)

    def f_diff(idx: np.ndarray) -> float:
        fa = prf(int(ra[idx].sum()), int(aa[idx].sum()), n)["f"]
        return fa - prf(int(rb[idx].sum()), int(ab[idx].sum()), n)["f"]

    rng = np.random.default_rng(seed)
    diffs = [f_diff(rng.integers(0, n, n)) for _ in range(n_boot)]
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"diff": f_diff(np.arange(n)), "lo": float(lo), "hi": float(hi), "n_boot": n_boot}
