"""aam.io.newick: the fast parser and pruner against scikit-bio's reader and shear()."""

from __future__ import annotations

import io
import math
import zipfile

import numpy as np
import pytest
import skbio

from aam.errors import InputError
from aam.io.newick import parse_newick, read_tree


def random_newick(rng: np.random.Generator, n_tips: int, *, missing: float = 0.0, zero: float = 0.0) -> str:
    """A random rooted tree with multifurcations, odd names and optional missing / zero lengths."""
    names = []
    for i in range(n_tips):
        kind = rng.integers(4)
        if kind == 0:
            names.append(f"t{i}")
        elif kind == 1:
            names.append(f"'tip {i}'")  # quoted, with a blank
        elif kind == 2:
            names.append(f"'it''s_{i}'")  # quoted quote and an underscore
        else:
            names.append("ACGT"[i % 4] * 3 + str(i))
    nodes = list(names)
    serial = 0
    while len(nodes) > 2:
        k = int(min(len(nodes) - 1, rng.integers(2, 5)))  # 2..4 children
        pick = rng.choice(len(nodes), size=k, replace=False)
        kids = [nodes[i] for i in sorted(pick)]
        kids = [_with_length(rng, c, missing, zero) for c in kids]
        label = f"n{serial}" if rng.random() < 0.5 else ""
        serial += 1
        picked = set(pick.tolist())
        nodes = [n for i, n in enumerate(nodes) if i not in picked] + [f"({','.join(kids)}){label}"]
    kids = [_with_length(rng, c, missing, zero) for c in nodes]
    return f"({','.join(kids)})root;"


def _with_length(rng, text, missing, zero):
    u = rng.random()
    if u < missing:
        return text
    if u < missing + zero:
        return text + ":0"
    return text + f":{rng.uniform(0.01, 2):.6f}"


def clades(tree: skbio.TreeNode) -> list[tuple[frozenset, float | None]]:
    """Every node as (tip names below it, branch length): equal lists mean equal trees."""
    out = []
    for node in tree.postorder(include_self=True):
        tips = frozenset(t.name for t in node.tips(include_self=True))
        length = None if node.length is None else round(float(node.length), 9)
        out.append((tips, length))
    return sorted(out, key=lambda x: (sorted(x[0]), -1 if x[1] is None else x[1]))


def sk_read(source) -> skbio.TreeNode:
    """scikit-bio's reader with names taken literally (no underscore-to-blank conversion)."""
    if isinstance(source, str) and source.rstrip().endswith(";"):
        source = io.StringIO(source)
    return skbio.TreeNode.read(source, format="newick", convert_underscores=False)


def ours_as_skbio(text: str) -> skbio.TreeNode:
    return sk_read(text)


@pytest.mark.parametrize("seed", range(12))
def test_prune_matches_skbio_shear(seed):
    rng = np.random.default_rng(seed)
    text = random_newick(rng, int(rng.integers(5, 60)), missing=0.15 if seed % 3 == 0 else 0.0)
    reference = sk_read(text)
    tips = [t.name for t in reference.tips()]
    ours = parse_newick(text)
    assert sorted(ours.tip_names()) == sorted(tips)
    # a parse-write round trip is the same tree
    assert clades(ours_as_skbio(ours.to_newick())) == clades(reference)
    for size in (1, 2, 3, max(1, len(tips) // 2), len(tips)):
        keep = list(rng.choice(tips, size=size, replace=False))
        expected = reference.shear(keep)
        got = ours.prune(keep + ["not-a-tip"])
        assert clades(ours_as_skbio(got.to_newick())) == clades(expected), (seed, size)


def test_zero_lengths_kept():
    tree = parse_newick("((a:0,b:0.5):0,(c:1,d:0):0.25);")
    pruned = tree.prune(["a", "c", "d"])
    ref = ours_as_skbio("((a:0,b:0.5):0,(c:1,d:0):0.25);").shear(["a", "c", "d"])
    assert clades(ours_as_skbio(pruned.to_newick())) == clades(ref)
    assert "a:0.0" in pruned.to_newick()


def test_quoted_names_and_comments():
    tree = parse_newick("(('a b':1,'it''s':2)[comment]x:1, 'c,(d)':3)'my root';")
    assert tree.tip_names() == ["a b", "it's", "c,(d)"]
    assert tree.names[0] == "my root"
    back = parse_newick(tree.to_newick())
    assert back.tip_names() == tree.tip_names()
    assert np.allclose(back.length, tree.length, equal_nan=True)


def test_parser_matches_skbio():
    """Names and lengths in preorder as scikit-bio reads them, with blanks, newlines and a [&R] mark
    in the text (moved here from test_unifrac when aam.data.phylo's own parser was removed)."""
    rng = np.random.default_rng(3)
    text = random_newick(rng, 40, missing=0.1, zero=0.15)
    text = "[&R] " + text.replace("(", "( ", 3).replace(",", " ,\n", 2)
    ours = parse_newick(text)
    ref = list(sk_read(text).preorder())
    assert ours.names == [n.name for n in ref]
    np.testing.assert_array_equal(ours.length, [math.nan if n.length is None else n.length for n in ref])
    assert ours.root_marker == "R"
    assert parse_newick("('a''b':1,[c]b:2.5e-1)root;").names == ["root", "a'b", "b"]


def test_root_markers(tmp_path):
    assert parse_newick("((a,b),c);").root_marker is None
    assert parse_newick(" [x] [&u] ((a,b),c);").root_marker == "U"
    assert parse_newick("([&R](a,b),c);").root_marker is None  # only a leading mark counts
    tree = parse_newick("[&R](a:1,b:2,(c:3,d:4):1);")
    for t in (tree, tree.prune(["a", "b", "c"]), parse_newick(tree.to_newick())):
        assert t.root_marker == "R"
        assert t.to_newick().startswith("[&R] (")
    # read_tree: [&R] makes a basal trifurcation acceptable, [&U] is always an error
    (tmp_path / "r.nwk").write_text(tree.to_newick())
    assert read_tree(tmp_path / "r.nwk").root_marker == "R"
    (tmp_path / "u.nwk").write_text("[&U]((a:1,b:1):1,c:1);")
    with pytest.raises(InputError, match=r"u.nwk: the tree is unrooted \(marked \[&U\]\)"):
        read_tree(tmp_path / "u.nwk")


@pytest.mark.parametrize(
    "text, match",
    [("(a:x,b);", "not a number"), ("(a:1,b:nan);", "'nan' is not finite"), ("(a:1,b:-inf);", "not finite"),
     ("((a,b),c)", "does not end with ';'")],
)
def test_bad_lengths_and_end(text, match):
    with pytest.raises(InputError, match=match):
        parse_newick(text, "t.nwk")


def test_root_with_one_child():
    text = "(((a:1,b:2):3,c:4):5)r:0.5;"
    tree = parse_newick(text)
    pruned = tree.prune(["a", "b", "c"])
    ref = ours_as_skbio(text).shear(["a", "b", "c"])
    assert clades(ours_as_skbio(pruned.to_newick())) == clades(ref)
    assert np.count_nonzero(pruned.parent == 0) == 2


def test_single_kept_tip():
    tree = parse_newick("((a:1,b:2):3,c:4);")
    pruned = tree.prune(["a"])
    assert pruned.n_nodes == 1
    assert pruned.names == ["a"]
    assert math.isclose(pruned.length[0], 4.0)


def test_no_kept_tip():
    with pytest.raises(ValueError):
        parse_newick("(a,b);").prune(["z"])


@pytest.mark.parametrize(
    "text",
    ["(a,b", "(a,b));", "a;", "", "(a,b);(c,d);", "(a:x,b);", "(a,b)c d(e);"],
)
def test_malformed(tmp_path, text):
    path = tmp_path / "bad.nwk"
    path.write_text(text)
    with pytest.raises(InputError, match="bad.nwk"):
        read_tree(path)


def test_unrooted_trifurcation(tmp_path):
    path = tmp_path / "unrooted.nwk"
    path.write_text("(a:1,b:1,(c:1,d:1):1);")
    with pytest.raises(InputError, match=r"unrooted.nwk: the tree is unrooted \(its root has 3 children\)"):
        read_tree(path)


def _qza(path, sem_type, member, payload):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("u1/metadata.yaml", f"uuid: u1\ntype: {sem_type}\nformat: NewickDirectoryFormat\n")
        zf.writestr(f"u1/data/{member}", payload)


def test_qza_rooted_and_unrooted(tmp_path):
    _qza(tmp_path / "rooted.qza", "Phylogeny[Rooted]", "tree.nwk", "((a:1,b:2):1,c:1);")
    assert sorted(read_tree(tmp_path / "rooted.qza").tip_names()) == ["a", "b", "c"]
    _qza(tmp_path / "unrooted.qza", "Phylogeny[Unrooted]", "tree.nwk", "((a:1,b:2):1,c:1);")
    with pytest.raises(InputError, match="unrooted.qza: the tree is unrooted"):
        read_tree(tmp_path / "unrooted.qza")
    _qza(tmp_path / "table.qza", "FeatureTable[Frequency]", "feature-table.biom", "x")
    with pytest.raises(InputError, match=r"table.qza: QIIME 2 archive of type FeatureTable\[Frequency\]"):
        read_tree(tmp_path / "table.qza")


def test_demo_tree_against_skbio(demo_ibd):
    ours = read_tree(demo_ibd / "tree.nwk")
    ref = sk_read(str(demo_ibd / "tree.nwk"))
    assert sorted(ours.tip_names()) == sorted(t.name for t in ref.tips())
    rng = np.random.default_rng(0)
    keep = list(rng.choice(ours.tip_names(), size=200, replace=False))
    got = ours_as_skbio(ours.prune(keep).to_newick())
    assert clades(got) == clades(ref.shear(keep))


def test_sepp_tree_loads_and_prunes(shared_data):
    """The 217k-tip SEPP tree: pruned to the table's features it is the bundled demo tree.

    (No timing assertion here; scripts/bench_tree.py measures it.)
    """
    from aam.io.biom import read_table

    tree = read_tree(shared_data / "ibd2538" / "sepp-insertion-tree.qza")
    assert int(tree.is_tip.sum()) == 217_407
    features = read_table(shared_data / "ibd2538" / "table.qza").ids("observation")
    pruned = tree.prune(features)
    demo = read_tree(shared_data / "ibd2538" / "tree.nwk")
    assert sorted(pruned.tip_names()) == sorted(demo.tip_names())
    ref = sk_read(str(shared_data / "ibd2538" / "tree.nwk"))
    assert clades(ours_as_skbio(pruned.to_newick())) == clades(ref)
