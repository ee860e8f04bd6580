"""The branch structure UniFrac needs, from a tree read by `aam.io.newick` (the project's one parser).

`aam.io.newick.Tree` holds the nodes in preorder, which gives what the distance kernels need at once:

- In preorder, the tips below a node are a contiguous run of the tips listed in preorder. So a
  branch is a half-open range ``[lo, hi)`` of "tip slots", and its count in a sample is
  ``cumsum[hi] - cumsum[lo]`` over the sample's counts laid out in slot order: two gathers for all
  branches at once, no level-by-level propagation.
- The tree is restricted to the features of the table (a node is kept when a feature lies below it),
  and branches whose restricted tip ranges coincide (unary chains after pruning) are merged into one
  branch with the summed length. Zero-length branches are dropped: they add nothing to any metric.

Conventions (those of scikit-bio, which the tests check against):
- A missing branch length is 0. A branch length on the root counts as a branch above every tip.
- Tip names are matched literally: unquoted underscores are not turned into spaces.
- Root: as for `aam ingest` (`aam.io.newick.check_rooted`): a root with one child is fine; a root
  with three or more children is how Newick writes an unrooted tree (FastTree, RAxML output) and is
  an InputError unless the text starts with ``[&R]``. ``[&U]`` marks an unrooted tree explicitly.
  Root such trees first (e.g. ``qiime phylogeny midpoint-root``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aam.errors import InputError
from aam.io.newick import Tree, check_rooted


def read_newick_text(path_or_text: str | os.PathLike) -> str:
    """The Newick text of a file, or the argument itself when it is Newick text (a string that starts
    with '(' or '[' or ends with ';')."""
    if isinstance(path_or_text, str) and (
        path_or_text.lstrip().startswith(("(", "[")) or path_or_text.rstrip().endswith(";")
    ):
        return path_or_text
    try:
        return Path(path_or_text).read_text()
    except OSError as err:
        raise InputError(f"cannot read tree {path_or_text}: {err}") from err


def subtree_end(parent: np.ndarray) -> np.ndarray:
    """``end[i]``: one past the last preorder index of node i's subtree (nodes in preorder, so the
    subtree of i is ``i .. end[i] - 1``). One reverse pass accumulating subtree sizes."""
    n = len(parent)
    size = [1] * n
    par = parent.tolist()
    for i in range(n - 1, 0, -1):
        size[par[i]] += size[i]
    return np.arange(n, dtype=np.int64) + np.asarray(size, dtype=np.int64)


@dataclass(frozen=True)
class BranchIndex:
    """The tree restricted to a feature list, as branches over tip slots.

    ``slot[f]``: tip slot of feature f (features in the order given). Branch k covers the slots
    ``[lo[k], hi[k])`` and has length ``length[k] > 0``. ``tip_depth[s]``: distance from the root
    (root length included) to the tip in slot s.
    """

    feature_ids: tuple[str, ...]
    slot: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    length: np.ndarray
    tip_depth: np.ndarray

    @property
    def n_features(self) -> int:
        return len(self.feature_ids)

    @property
    def n_branches(self) -> int:
        return len(self.length)


def build_branch_index(tree: Tree, feature_order: Sequence[str], source: str = "tree") -> BranchIndex:
    """Restrict `tree` to `feature_order` (each must be a tip name) and index its branches.

    InputError (naming `source`) for an unrooted tree, a feature that is not a tip or names several
    tips, or a negative branch length."""
    features = [str(f) for f in feature_order]
    if not features:
        raise InputError(f"{source}: no features to index")
    if len(set(features)) != len(features):
        raise InputError("duplicate feature IDs in the table")
    check_rooted(tree, source)
    tips = np.flatnonzero(tree.is_tip)
    tip_of: dict[str, int] = {}
    dup: list[str] = []
    for i in tips.tolist():
        label = tree.names[i]
        if label in tip_of:
            dup.append(label)
        tip_of[label] = i
    wanted = set(features)
    dup = [d for d in dup if d in wanted]
    if dup:
        raise InputError(f"{source}: {len(dup)} feature IDs name more than one tip, e.g. {dup[:3]}")
    missing = [f for f in features if f not in tip_of]
    if missing:
        raise InputError(
            f"{source}: the tree does not cover the table: {len(missing)} of {len(features)} features "
            f"are not tips of the tree, e.g. {[m[:60] for m in missing[:3]]}"
        )
    n = tree.n_nodes
    length = np.where(np.isnan(tree.length), 0.0, tree.length)  # a missing length counts as 0
    end = subtree_end(tree.parent)
    node_of_feature = np.fromiter((tip_of[f] for f in features), dtype=np.int64, count=len(features))
    # tip slots: the features' tips in preorder
    is_feature_tip = np.zeros(n, dtype=bool)
    is_feature_tip[node_of_feature] = True
    cum = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(is_feature_tip, out=cum[1:])
    slot = cum[node_of_feature]
    lo = cum[np.arange(n)]
    hi = cum[end]
    keep = (hi > lo) & (length != 0)
    if np.any(length[keep] < 0):
        raise InputError(f"{source}: negative branch lengths")
    lo, hi, lengths = lo[keep], hi[keep], length[keep]
    # merge branches with the same tip range (unary chains after pruning)
    n_feat = len(features)
    key = lo * (n_feat + 1) + hi
    uniq, inverse = np.unique(key, return_inverse=True)
    merged = np.zeros(len(uniq), dtype=np.float64)
    np.add.at(merged, inverse, lengths)
    lo_m, hi_m = uniq // (n_feat + 1), uniq % (n_feat + 1)
    # tip depths: every branch adds its length to the slots it covers (difference array)
    diff = np.zeros(n_feat + 1, dtype=np.float64)
    np.add.at(diff, lo_m, merged)
    np.add.at(diff, hi_m, -merged)
    tip_depth = np.cumsum(diff)[:n_feat]
    return BranchIndex(
        feature_ids=tuple(features),
        slot=slot,
        lo=lo_m.astype(np.int64),
        hi=hi_m.astype(np.int64),
        length=merged,
        tip_depth=tip_depth,
    )
