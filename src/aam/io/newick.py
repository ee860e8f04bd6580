"""Newick trees: a fast array-based reader, pruner and writer.

Why not scikit-bio: ``TreeNode.read`` builds one Python object per node and ``shear`` copies and
walks them several times; on the 217k-tip SEPP insertion tree that is tens of seconds and GBs of
memory, per run. Here a tree is a few flat arrays in preorder (``parent``, ``length``, ``names``),
parsed with one regular expression over the text, and pruning is array work plus a walk over the
kept nodes only. `Tree.prune` reproduces ``skbio.TreeNode.shear`` (which prunes single-child nodes)
topology and branch lengths; tests/test_io_tree.py checks that on random trees.

Conventions:
- Names are taken literally: underscores are NOT turned into spaces (unlike skbio's default), so
  feature IDs round-trip; quoted names ('...' with '' for a quote) are unquoted. Bracketed
  comments ``[...]`` are removed, except that a leading ``[&R]`` / ``[&U]`` (the rooted / unrooted
  marks of Newick dialects, e.g. Nexus) is kept in `Tree.root_marker` and written back.
- A missing branch length is NaN in `Tree.length` and omitted on writing; 0 stays 0.
- Rooted vs unrooted (`check_rooted`, shared with UniFrac in `aam.data.phylo`): plain Newick cannot
  say which a tree is. We call a tree unrooted when its root has three or more children (the basal
  trifurcation that unrooted inference such as FastTree or RAxML writes) unless the text starts
  with ``[&R]``, or when it starts with ``[&U]``; QIIME 2 archives of type Phylogeny[Unrooted] are
  rejected by type. A root with one child is accepted (and collapsed on pruning, as skbio does).
- Branch lengths must be finite numbers.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aam.errors import InputError
from aam.io import qza

ROOTED_TYPES = ("Phylogeny[Rooted]",)
UNROOTED_TYPES = ("Phylogeny[Unrooted]",)

# One token per structural character, followed by the (optional) label and ":length" that come after it.
_TOKEN = re.compile(
    r"""([(),;])\s*                                   # structural character
        ('(?:[^']|'')*'|[^(),:;'\s]*(?:\s+[^(),:;'\s]+)*)\s*  # label: quoted, or unquoted (inner blanks kept)
        (?::\s*([^(),:;\s]*))?\s*                        # :length
    """,
    re.VERBOSE,
)
_COMMENT = re.compile(r"\[[^\]]*\]")
_LEADING_COMMENTS = re.compile(r"\s*(?:\[[^\]]*\]\s*)+")
_ROOT_MARKER = re.compile(r"\[&([RU])\]", re.IGNORECASE)
_NEEDS_QUOTES = re.compile(r"[\s()\[\]':;,]")


@dataclass
class Tree:
    """A rooted tree as flat arrays in preorder; node 0 is the root (``parent[0] == -1``)."""

    parent: np.ndarray  # int64 [n]
    length: np.ndarray  # float64 [n], NaN where missing
    names: list[str | None]  # [n]
    is_tip: np.ndarray  # bool [n]
    root_marker: str | None = None  # "R" or "U" from a leading [&R] / [&U] comment, else None

    @property
    def n_nodes(self) -> int:
        return len(self.parent)

    def n_children(self) -> np.ndarray:
        """Number of children of each node."""
        return np.bincount(self.parent[1:], minlength=self.n_nodes)

    def tip_names(self) -> list[str | None]:
        """Tip names in preorder (left to right in the Newick text)."""
        return [self.names[i] for i in np.flatnonzero(self.is_tip)]

    def prune(self, keep: Iterable[str]) -> Tree:
        """The subtree spanning the tips named in `keep`, with single-child nodes collapsed.

        Same result as ``skbio.TreeNode.shear(keep)`` (names not in the tree are ignored, as with
        ``strict=False``): a collapsed node's length is added to its child's; a root left with one
        child takes over that child's name and children, its length adding to the root's. (One
        difference: skbio drops a length of 0 that meets a missing one; here their sum is 0.)
        Raises ValueError when no tip is kept.
        """
        keep = set(keep)
        n = self.n_nodes
        parent = self.parent
        kept = np.zeros(n, dtype=bool)
        kept_tips = [t for t in np.flatnonzero(self.is_tip).tolist() if self.names[t] in keep]
        if not kept_tips:
            raise ValueError("no tip of the tree is among the names to keep")
        kept[kept_tips] = True
        # Mark ancestors level by level, vectorised: each round moves the frontier one step up and
        # stops at nodes already marked, so the total work is the number of kept nodes.
        frontier = np.asarray(kept_tips)
        while frontier.size:
            up = parent[frontier]
            up = np.unique(up[up >= 0])
            up = up[~kept[up]]
            kept[up] = True
            frontier = up
        nodes = np.flatnonzero(kept)  # preorder, root first
        n_kept_children = np.bincount(parent[nodes[1:]], minlength=n)
        dropped = n_kept_children == 1
        dropped[0] = False
        # Preorder walk over the kept nodes only: each node hangs from its nearest surviving
        # ancestor and inherits the summed lengths of the dropped single-child nodes in between.
        new_index = np.full(n, -1, dtype=np.int64)
        anchor = np.full(n, -1, dtype=np.int64)
        acc = np.full(n, math.nan)  # NaN = nothing inherited
        length = self.length.tolist()
        out_nodes: list[int] = []
        out_parent: list[int] = []
        out_length: list[float] = []
        for node in nodes.tolist():
            if node:
                p = int(parent[node])
                if dropped[p]:
                    anchor[node] = anchor[p]
                    acc[node] = _add(acc[p], length[p])
                else:
                    anchor[node] = new_index[p]
            if dropped[node]:
                continue
            new_index[node] = len(out_nodes)
            out_nodes.append(node)
            out_parent.append(int(anchor[node]))
            out_length.append(_add(acc[node], length[node]))
        names = [self.names[i] for i in out_nodes]
        is_tip = self.is_tip[out_nodes]
        out_par = np.asarray(out_parent, dtype=np.int64)
        out_len = np.asarray(out_length, dtype=np.float64)
        if n_kept_children[0] == 1:
            # The root keeps its place but takes over its only child (node 1 in preorder).
            names[0] = names[1]
            out_len[0] = _add(out_len[0], out_len[1])
            is_tip = is_tip.copy()
            is_tip[0] = is_tip[1]
            out_par[out_par == 1] = 0
            out_par = np.delete(out_par, 1)
            out_par[out_par > 1] -= 1
            out_len = np.delete(out_len, 1)
            is_tip = np.delete(is_tip, 1)
            del names[1]
        return Tree(out_par, out_len, names, is_tip, self.root_marker)

    def to_newick(self) -> str:
        """Newick text of the tree (names quoted where needed, lengths with full precision)."""
        n = self.n_nodes
        order = np.argsort(self.parent[1:], kind="stable") + 1
        counts = np.bincount(self.parent[1:], minlength=n)
        starts = np.concatenate([[0], np.cumsum(counts)])
        out: list[str] = [f"[&{self.root_marker}] "] if self.root_marker else []
        # iterative DFS: ("open", node) writes '(' and children; ("close", node) writes ')label:len'
        stack: list[tuple[int, int]] = [(0, 0)]
        while stack:
            node, state = stack.pop()
            kids = order[starts[node] : starts[node + 1]]
            if state == 0 and len(kids):
                out.append("(")
                stack.append((node, 1))
                for k in reversed(kids.tolist()):
                    stack.append((k, 0))
                    stack.append((-1, 2))  # separator marker
                stack.pop()  # no comma before the first child
                continue
            if state == 2:
                out.append(",")
                continue
            if state == 1:
                out.append(")")
            out.append(_label(self.names[node], self.length[node]))
        out.append(";")
        return "".join(out)


def _label(name: str | None, length: float) -> str:
    text = ""
    if name:
        text = "'" + name.replace("'", "''") + "'" if _NEEDS_QUOTES.search(name) else name
    if not math.isnan(length):
        text += f":{float(length)!r}"
    return text


def _add(a: float, b: float) -> float:
    """Sum of two optional lengths (NaN = missing); missing only if both are."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return a + b


def parse_newick(text: str, source: str = "<text>") -> Tree:
    """Parse one Newick tree; a syntax error is an `InputError` naming `source`."""
    root_marker = None
    if "[" in text:
        leading = _LEADING_COMMENTS.match(text)
        if leading:
            marks = _ROOT_MARKER.findall(leading.group())
            root_marker = marks[-1].upper() if marks else None
        text = _COMMENT.sub("", text)
    text = text.strip()
    if not text.startswith("("):
        raise InputError(f"{source}: not a Newick tree (it does not start with '(')")
    parent: list[int] = []
    names: list[str | None] = []
    lengths: list[str | None] = []
    is_tip: list[bool] = []
    stack: list[int] = []
    slot_open = False  # a child position opened by '(' or ',' and not yet filled
    slot_label = slot_len = None
    finished = False
    pos = 0
    for m in _TOKEN.finditer(text):
        if m.start() != pos:
            raise InputError(f"{source}: not a Newick tree (unexpected text at character {pos})")
        pos = m.end()
        ch, label, blen = m.group(1), m.group(2), m.group(3)
        if finished:
            raise InputError(f"{source}: not a Newick tree (text after the closing ';')")
        if ch == "(":
            if slot_open and (slot_label or slot_len is not None):
                raise InputError(f"{source}: not a Newick tree (label before '(' at character {m.start()})")
            if not stack and parent:
                raise InputError(f"{source}: not a Newick tree (several trees or unbalanced parentheses)")
            parent.append(stack[-1] if stack else -1)
            names.append(None)
            lengths.append(None)
            is_tip.append(False)
            stack.append(len(parent) - 1)
            slot_open, slot_label, slot_len = True, label, blen
            continue
        if ch == ";":
            if stack or slot_open:
                raise InputError(f"{source}: not a Newick tree (unbalanced parentheses)")
            finished = True
            continue
        if not stack:
            raise InputError(f"{source}: not a Newick tree (unbalanced parentheses at character {m.start()})")
        if slot_open:  # the child position held a tip
            parent.append(stack[-1])
            names.append(slot_label)
            lengths.append(slot_len)
            is_tip.append(True)
        if ch == ",":
            slot_open, slot_label, slot_len = True, label, blen
        else:  # ')': the label and length belong to the node just closed
            node = stack.pop()
            names[node] = label
            lengths[node] = blen
            slot_open = False
    if pos != len(text) or not finished:
        raise InputError(
            f"{source}: not a Newick tree (it does not end with ';', or its parentheses are unbalanced)"
        )
    try:
        length = np.array([float(x) if x else math.nan for x in lengths], dtype=np.float64)
    except ValueError as err:
        raise InputError(f"{source}: not a Newick tree (a branch length is not a number: {err})") from None
    odd = np.flatnonzero(~np.isfinite(length))  # missing lengths, and written nan/inf
    bad = [lengths[i] for i in odd.tolist() if lengths[i]]
    if bad:
        raise InputError(f"{source}: not a Newick tree (branch length {bad[0]!r} is not finite)")
    clean = [_unquote(x) for x in names]
    par = np.asarray(parent, dtype=np.int64)
    return Tree(par, length, clean, np.asarray(is_tip, dtype=bool), root_marker)


def check_rooted(tree: Tree, source: str) -> None:
    """`InputError` naming `source` for a tree that counts as unrooted (see the module docstring)."""
    if tree.root_marker == "U":
        raise InputError(
            f"{source}: the tree is unrooted (marked [&U]); root it first, "
            "e.g. with 'qiime phylogeny midpoint-root'"
        )
    n_root_children = int(np.count_nonzero(tree.parent == 0))
    if n_root_children >= 3 and tree.root_marker != "R":
        raise InputError(
            f"{source}: the tree is unrooted (its root has {n_root_children} children); root it first, "
            "e.g. with 'qiime phylogeny midpoint-root', or mark it rooted with a leading [&R]"
        )


def _describe_branch(tree: Tree, node: int) -> str:
    """A branch a user can find in the file: its node's name, else the first tip of its clade."""
    if tree.names[node]:
        return f"the branch above '{tree.names[node]}'"
    tips = np.flatnonzero(tree.is_tip[node:])  # preorder: the clade's first tip comes next
    return f"the branch above the clade of tip '{tree.names[node + int(tips[0])]}'"


def check_branch_lengths(tree: Tree, source: str, missing: str = "error") -> Tree:
    """Check the lengths UniFrac and Faith's PD depend on; the root's own length is not needed.

    A negative length, a tree without lengths, or one whose lengths are all 0 is an `InputError`
    naming `source`: every distance would come out 0 without a word. Some missing lengths are an error
    with ``missing="error"``; with ``missing="zero"`` they become 0 (stated in a warning by the
    caller) in the returned tree, so the choice is written into the tree, not left implicit.
    """
    length = tree.length[1:]
    negative = np.flatnonzero(length < 0)
    if negative.size:
        node = int(negative[0]) + 1
        raise InputError(
            f"{source}: {negative.size} negative branch length(s), e.g. {length[node - 1]:g} on "
            f"{_describe_branch(tree, node)}"
        )
    absent = np.isnan(length)
    if absent.all():
        raise InputError(
            f"{source}: the tree has no branch lengths; UniFrac and Faith's PD need them (every distance "
            "would be 0): use a tree with lengths, e.g. from 'qiime phylogeny' or SEPP"
        )
    if absent.any():
        if missing != "zero":
            node = int(np.flatnonzero(absent)[0]) + 1
            raise InputError(
                f"{source}: {int(absent.sum())} of {length.size} branches have no length, e.g. "
                f"{_describe_branch(tree, node)}; give them lengths, or set "
                "ingest.missing_branch_lengths: zero to count them as 0"
            )
        filled = tree.length.copy()
        filled[1:][absent] = 0.0
        tree = Tree(tree.parent, filled, tree.names, tree.is_tip, tree.root_marker)
    if not np.nansum(tree.length[1:]) > 0:
        raise InputError(f"{source}: every branch length is 0 (every UniFrac distance would be 0)")
    return tree


def _unquote(label: str | None) -> str | None:
    if not label:
        return None
    if label[0] == "'":
        return label[1:-1].replace("''", "'")
    return label


def read_tree(path: str | os.PathLike) -> Tree:
    """Read a rooted tree from Newick text or a QIIME 2 Phylogeny[Rooted] archive.

    `InputError` (naming the file) for an unreadable or empty file, a Phylogeny[Unrooted] archive,
    malformed Newick, or an unrooted tree (see `check_rooted`).
    """
    path = Path(path)
    if qza.is_zip(path):
        sem_type = qza.qza_type(path)
        if sem_type in UNROOTED_TYPES:
            raise InputError(
                f"{path}: the tree is unrooted (QIIME 2 type {sem_type}); root it first, "
                "e.g. with 'qiime phylogeny midpoint-root'"
            )
        _, payload = qza.read_payload(path, ROOTED_TYPES, (".nwk", ".tre", ".tree", ".newick"))
        raw = payload
    else:
        raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a Newick tree (binary file)") from None
    tree = parse_newick(text, str(path))
    check_rooted(tree, str(path))
    return tree


def write_tree(tree: Tree, path: str | os.PathLike) -> None:
    """Write Newick text atomically."""
    from aam.io.atomic import write_text

    write_text(path, tree.to_newick() + "\n")
