"""UniFrac kernels (aam.data.unifrac, aam.data.phylo) against scikit-bio, in fp64 to 1e-9."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp
import skbio
import torch
from skbio.diversity import alpha_diversity, beta_diversity

from aam.data.phylo import subtree_end
from aam.data.unifrac import METRICS, PhyloIndex, batch_distances, faith_pd, unifrac_matrix
from aam.errors import InputError
from aam.io.newick import parse_newick

TOL = 1e-9


def random_newick(n_tips: int, rng: np.random.Generator, *, multifurcate: float = 0.3,
                  zero: float = 0.15, missing: float = 0.1, quoted: bool = True) -> tuple[str, list[str]]:
    """Random rooted tree: multifurcations, zero and missing lengths, quoted names with odd characters."""
    names = [f"'f {i}_x'" if quoted and i % 5 == 0 else f"f{i}" for i in range(n_tips)]
    ids = [n.strip("'") for n in names]
    nodes = [(n, True) for n in names]
    while len(nodes) > 1:
        k = 3 if rng.random() < multifurcate and len(nodes) > 3 else 2
        picked = [nodes.pop(int(rng.integers(len(nodes)))) for _ in range(k)]
        parts = []
        for text, _ in picked:
            r = rng.random()
            if r < missing:
                parts.append(text)
            elif r < missing + zero:
                parts.append(f"{text}:0")
            else:
                parts.append(f"{text}:{rng.exponential(0.2):.6g}")
        nodes.append(("(" + ",".join(parts) + ")", False))
    root = nodes[0][0]
    if not root.startswith("("):
        root = f"({root}:1)"
    return root + ";", ids


def skbio_tree(newick: str) -> skbio.TreeNode:
    """scikit-bio's tree with missing lengths as 0 (scikit-bio refuses missing lengths)."""
    tree = skbio.TreeNode.read(io.StringIO(newick), convert_underscores=False)
    for node in tree.traverse(include_self=False):
        if node.length is None:
            node.length = 0.0
    return tree


def skbio_beta(metric: str, counts: np.ndarray, ids: list[str], newick: str) -> np.ndarray:
    tree = skbio_tree(newick)
    if metric == "unweighted":
        return beta_diversity("unweighted_unifrac", counts, taxa=ids, tree=tree).data
    return beta_diversity("weighted_unifrac", counts, taxa=ids, tree=tree,
                          normalized=metric == "weighted_normalized").data


def special_table(rng: np.random.Generator, n_samples: int, n_features: int) -> np.ndarray:
    counts = rng.poisson(0.4, (n_samples, n_features)) * rng.integers(1, 30, (n_samples, n_features))
    counts[0] = 0
    counts[0, 3] = 5  # one feature
    counts[1] = counts[2]  # identical samples
    counts[3] = 0
    counts[3, : n_features // 2] = 0
    counts[4] = 0
    counts[4, n_features // 2 :] = rng.integers(1, 4, n_features - n_features // 2)  # disjoint from 5
    counts[5] = 0
    counts[5, : n_features // 2] = rng.integers(1, 4, n_features // 2)
    counts[6] = 0  # empty sample
    counts[3, 1] = 2
    return counts


@pytest.fixture(scope="module")
def random_case():
    rng = np.random.default_rng(7)
    newick, ids = random_newick(80, rng)
    counts = special_table(rng, 14, 80)
    return newick, ids, counts


@pytest.mark.parametrize("metric", METRICS)
def test_random_tree_matches_skbio(random_case, metric):
    newick, ids, counts = random_case
    index = PhyloIndex.from_newick(newick, ids)
    ours = unifrac_matrix(index, sp.csr_matrix(counts), metric, block_size=5)
    ref = skbio_beta(metric, counts, ids, newick)
    np.testing.assert_allclose(ours, ref, atol=TOL, rtol=0)
    assert np.array_equal(ours, ours.T) and np.all(np.diag(ours) == 0)
    assert ours[1, 2] == pytest.approx(0.0, abs=TOL)


@pytest.mark.parametrize("metric", METRICS)
def test_dense_and_sparse_paths_agree(random_case, metric, monkeypatch):
    """Forcing every branch through the dense kernel or through the pair expansion gives one answer."""
    import aam.data.unifrac as uf

    newick, ids, counts = random_case
    index = PhyloIndex.from_newick(newick, ids)
    ref = skbio_beta(metric, counts, ids, newick)
    for frac in (0.0, 1.01):
        monkeypatch.setattr(uf, "DENSE_FRACTION", dict.fromkeys(uf.DENSE_FRACTION, frac))
        np.testing.assert_allclose(unifrac_matrix(index, counts, metric), ref, atol=TOL, rtol=0)
        got = batch_distances(index, torch.as_tensor(counts), torch.arange(len(ids)), metric)
        np.testing.assert_allclose(got.numpy(), ref, atol=TOL, rtol=0)


def test_faith_pd_matches_skbio(random_case):
    newick, ids, counts = random_case
    index = PhyloIndex.from_newick(newick, ids)
    tree = skbio_tree(newick)
    ref = alpha_diversity("faith_pd", counts, taxa=ids, tree=tree).to_numpy()
    np.testing.assert_allclose(faith_pd(index, counts, block_size=4), ref, atol=TOL, rtol=0)


def test_root_length_and_single_child_root():
    newick = "(((a:1,b:2):0.5,c:3)inner:2):7;"
    ids = ["a", "b", "c"]
    counts = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 4]])
    index = PhyloIndex.from_newick(newick, ids)
    for metric in METRICS:
        np.testing.assert_allclose(unifrac_matrix(index, counts, metric),
                                   skbio_beta(metric, counts, ids, newick), atol=TOL, rtol=0)
    tree = skbio.TreeNode.read(io.StringIO(newick))
    np.testing.assert_allclose(faith_pd(index, counts),
                               alpha_diversity("faith_pd", counts, taxa=ids, tree=tree).to_numpy(), atol=TOL)


@pytest.fixture(scope="module")
def demo_case(demo_ibd):
    import biom

    table = biom.load_table(str(demo_ibd / "table.biom"))
    counts = table.matrix_data.T.tocsr()[:: 12][:40]
    keep = np.flatnonzero(np.asarray(counts.sum(0)).ravel())
    ids = [str(i) for i in np.asarray(table.ids("observation"))[keep]]
    counts = counts[:, keep]
    newick = (demo_ibd / "tree.nwk").read_text()
    # skbio wants the tree to hold the taxa; the full tree (9,970 tips) is fine, just slower
    return newick, ids, counts


@pytest.mark.parametrize("metric", METRICS)
def test_demo_subset_matches_skbio(demo_case, metric):
    newick, ids, counts = demo_case
    index = PhyloIndex.from_newick(newick, ids)
    ours = unifrac_matrix(index, counts, metric, block_size=16)
    np.testing.assert_allclose(ours, skbio_beta(metric, counts.toarray(), ids, newick), atol=TOL, rtol=0)


@pytest.mark.parametrize("metric", METRICS)
def test_batch_equals_block_of_full_matrix(demo_case, metric):
    newick, ids, counts = demo_case
    index = PhyloIndex.from_newick(newick, ids)
    full = unifrac_matrix(index, counts, metric)
    rows = np.array([3, 0, 17, 25, 8, 39, 12])
    sub = counts[rows]
    cols = np.flatnonzero(np.asarray(sub.sum(0)).ravel())
    rng = np.random.default_rng(0)
    cols = rng.permutation(cols)  # any feature order
    batch = torch.as_tensor(sub[:, cols].toarray(), dtype=torch.int64)
    got = batch_distances(index, batch, torch.as_tensor(cols), metric)
    assert got.dtype == torch.float64 and got.shape == (len(rows), len(rows))
    np.testing.assert_allclose(got.numpy(), full[np.ix_(rows, rows)], atol=TOL, rtol=0)
    got32 = batch_distances(index, batch.float(), torch.as_tensor(cols), metric)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), full[np.ix_(rows, rows)], atol=2e-5, rtol=0)


def test_float32_matrix_close(demo_case):
    newick, ids, counts = demo_case
    index = PhyloIndex.from_newick(newick, ids)
    for metric in METRICS:
        a = unifrac_matrix(index, counts, metric)
        b = unifrac_matrix(index, counts, metric, dtype=torch.float32)
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=0)


def test_subtree_end_matches_skbio():
    """The preorder subtree ranges that phylo derives from aam.io.newick's parent array."""
    rng = np.random.default_rng(3)
    newick, _ = random_newick(40, rng)
    tree = parse_newick(newick)
    ref = list(skbio_tree(newick).preorder())
    assert tree.names == [n.name for n in ref]
    sizes = [sum(1 for _ in n.preorder()) for n in ref]
    np.testing.assert_array_equal(subtree_end(tree.parent), np.arange(len(ref)) + sizes)
    np.testing.assert_array_equal(subtree_end(np.array([-1])), [1])


@pytest.mark.parametrize("newick, match", [
    ("(a:1,b:1,c:1);", "unrooted"),
    ("[&U]((a:1,b:1):1,c:1);", "unrooted"),
    ("[&R]((a:1,b:inf):1,c:1);", "not finite"),
    ("((a:1,b:1):1,d:1);", "does not cover"),
    ("((a:1,b:1):1,c:1;", "unbalanced"),
    ("((a:1,b:x):1,c:1);", "not a number"),
    ("((a:1,a:1):1,c:1);", "more than one tip"),
    ("((a:1,b:-1):1,c:1);", "negative"),
    ("((a:1,b:1):1,c:1)", "end with ';'"),
])
def test_bad_trees(newick, match):
    with pytest.raises(InputError, match=match):
        PhyloIndex.from_newick(newick, ["a", "b", "c"])


def test_marked_rooted_multifurcation_is_accepted():
    index = PhyloIndex.from_newick("[&R](a:1,b:2,c:3);", ["a", "b", "c"])
    d = unifrac_matrix(index, np.array([[1, 0, 0], [0, 1, 0]]), "unweighted")
    assert d[0, 1] == pytest.approx(1.0)


def test_tree_file_and_errors(tmp_path):
    path = tmp_path / "t.nwk"
    path.write_text("((a:1,b:2):1,c:3);\n")
    index = PhyloIndex.from_newick(path, ["c", "a"])  # extra tips are pruned away
    assert index.n_features == 2
    with pytest.raises(InputError, match="cannot read"):
        PhyloIndex.from_newick(tmp_path / "missing.nwk", ["a"])
    with pytest.raises(ValueError, match="unknown UniFrac metric"):
        unifrac_matrix(index, np.ones((2, 2)), "generalized")
    with pytest.raises(ValueError, match="columns"):
        unifrac_matrix(index, np.ones((2, 3)), "unweighted")
    with pytest.raises(ValueError, match="more than once"):
        batch_distances(index, torch.ones(2, 2), torch.tensor([0, 0]))
