"""The kNN taxonomy classifier: hierarchical vote and truncation on hand-worked examples, the
q2-feature-classifier table format, and the k-mer cosine against a brute-force set computation."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from aam.evaluate.taxonomy import (
    GENUS,
    KnnSettings,
    KnnTaxonomyClassifier,
    candidate_kmer_cosine,
    kmer_matrix,
    kmer_sets,
    kmer_sketch,
    lineage_codes,
    presence_matrix,
    rank_vote,
    read_lengths,
    shared_kmers,
    truncate,
)


def test_lineage_codes_keep_homonyms_apart():
    lineage = np.array(
        [["B", "F1", "G"], ["B", "F2", "G"], ["B", "F1", "G"], ["B", "F1", None]], dtype=object
    )
    codes, prefixes = lineage_codes(lineage)
    assert codes[0, 2] == codes[2, 2] != codes[1, 2]  # genus G of F1 is not genus G of F2
    assert codes[3, 2] == -1 and codes[3, 1] == codes[0, 1]
    assert prefixes[codes[1, 2]] == ("B", "F2", "G")


def test_rank_vote_by_hand():
    # three neighbours: weights 0.5, 0.3, 0.2; family A, A, B; genus x, y, z (z under B)
    lineage = np.array([["A", "x"], ["A", "y"], ["B", "z"]], dtype=object)
    codes, prefixes = lineage_codes(lineage)
    weights = np.array([[0.5, 0.3, 0.2]])
    chosen, conf = rank_vote(weights, codes[np.array([[0, 1, 2]])])
    # family: A has 0.5 + 0.3 = 0.8 of 1.0; genus: x has 0.5
    assert [prefixes[c][-1] for c in chosen[0]] == ["A", "x"]
    np.testing.assert_allclose(conf[0], [0.8, 0.5])
    # weights 0.3, 0.3, 0.4: family A (0.6) but genus z of family B (0.4): neither over half
    chosen, conf = rank_vote(np.array([[0.3, 0.3, 0.4]]), codes[np.array([[0, 1, 2]])])
    assert prefixes[chosen[0, 0]] == ("A",) and prefixes[chosen[0, 1]] == ("B", "z")
    np.testing.assert_allclose(conf[0], [0.6, 0.4])


def test_unknown_names_lower_the_confidence_but_do_not_win():
    lineage = np.array([["A", None], ["A", "x"], ["A", None]], dtype=object)
    codes, prefixes = lineage_codes(lineage)
    chosen, conf = rank_vote(np.array([[0.5, 0.3, 0.2]]), codes[np.array([[0, 1, 2]])])
    np.testing.assert_allclose(conf[0], [1.0, 0.3])
    assert prefixes[chosen[0, 1]] == ("A", "x")


def test_classifier_cuts_where_winners_disagree():
    # references: two of family A (genera x, y), one of family B (genus z); queries equal weights
    lineage = np.array([["A", "x"], ["A", "y"], ["B", "z"]], dtype=object)
    vectors = np.eye(3, dtype=np.float32)
    settings = KnnSettings(
        k=3,
        candidates=3,
        kmer_weight=0.0,
        align=0,
        temperature=1e6,
        threshold=0.3,
        search="embedding",
        bayes_temperature=None,  # the vote alone: no sequences for the naive Bayes check
    )
    clf = KnnTaxonomyClassifier(vectors, lineage, settings=settings)
    names, conf = clf.predict(np.ones((1, 3), np.float32))
    np.testing.assert_allclose(conf[0], [2 / 3, 1 / 3], rtol=1e-5)
    table = clf.classify(["q"], np.ones((1, 3), np.float32))
    # family A wins; the genus winner (a tie, x first) descends from A: kept at threshold 0.3
    assert table["Taxon"][0] == "k__A; p__x" and table["Confidence"][0] == pytest.approx(1 / 3, rel=1e-5)


def test_truncation_at_the_threshold_by_hand():
    names = np.array(
        [
            ["Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Lachnospiraceae", "Blautia", None],
            [
                "Bacteria",
                "Firmicutes",
                "Bacilli",
                "Lactobacillales",
                "Streptococcaceae",
                "Lactococcus",
                "lactis",
            ],
            ["Bacteria", "Proteobacteria", "Gammaproteobacteria", None, None, None, None],
            [
                "Bacteria",
                "Firmicutes",
                "Clostridia",
                "Clostridiales",
                "Ruminococcaceae",
                "Oscillospira",
                None,
            ],
        ],
        dtype=object,
    )
    conf = np.array(
        [
            [1.0, 1.0, 1.0, 0.95, 0.9, 0.6, 0.0],  # genus below 0.7: cut after the family
            [1.0, 1.0, 1.0, 1.0, 1.0, 0.7, 0.7],  # exactly 0.7 is kept: down to the species
            [0.69, 0.6, 0.5, 0.0, 0.0, 0.0, 0.0],  # kingdom below 0.7: Unassigned
            [1.0, 0.9, 0.9, 0.5, 0.8, 0.8, 0.0],  # order below: nothing deeper, even if confident
        ]
    )
    taxa, c = truncate(names, conf, 0.7)
    assert taxa == [
        "k__Bacteria; p__Firmicutes; c__Clostridia; o__Clostridiales; f__Lachnospiraceae",
        "k__Bacteria; p__Firmicutes; c__Bacilli; o__Lactobacillales; f__Streptococcaceae; g__Lactococcus;"
        " s__lactis",
        "Unassigned",
        "k__Bacteria; p__Firmicutes; c__Clostridia",
    ]
    np.testing.assert_allclose(c, [0.9, 0.7, 0.69, 0.9])
    taxa, _ = truncate(names, conf, 0.5)
    assert taxa[0].endswith("g__Blautia") and taxa[2].endswith("c__Gammaproteobacteria")
    # a rank whose winner does not descend from the winner above ends the taxon there
    consistent = np.ones(names.shape, dtype=bool)
    consistent[0, 5] = False
    taxa, c = truncate(names, conf, 0.5, consistent)
    assert taxa[0].endswith("f__Lachnospiraceae") and c[0] == 0.9


def test_species_is_cut_at_a_fraction_of_the_threshold_by_hand():
    # one read, its genus at 0.3 and its species at 0.2 (two of ten neighbour weights name a
    # species, both the same one); the others at 1
    names = np.array([["Bacteria", "Firmicutes", "Bacilli", "Lactobacillales", "Streptococcaceae",
                       "Lactococcus", "lactis"]], dtype=object)
    conf = np.array([[1.0, 1.0, 1.0, 1.0, 1.0, 0.3, 0.2]])
    default = KnnSettings()  # threshold 0.25, species at 0.6 x 0.25 = 0.15
    np.testing.assert_allclose(default.rank_thresholds(), [0.25] * 6 + [0.15])
    taxa, c = truncate(names, conf, default.rank_thresholds())
    assert taxa[0].endswith("g__Lactococcus; s__lactis") and c[0] == 0.2
    # scale 1: one threshold at every rank, and 0.2 < 0.25 stops at the genus
    same = KnnSettings(species_threshold_scale=1.0)
    taxa, c = truncate(names, conf, same.rank_thresholds())
    assert taxa[0].endswith("g__Lactococcus") and c[0] == 0.3
    # a higher threshold moves the species cut with it: 0.5 x 0.6 = 0.3 > 0.2, and the genus (0.3)
    # is below 0.5: cut after the family
    taxa, _ = truncate(names, conf, KnnSettings(threshold=0.5).rank_thresholds())
    assert taxa[0].endswith("f__Streptococcaceae")
    # lineages of fewer ranks than species: the threshold at every rank
    np.testing.assert_allclose(default.rank_thresholds(2), [0.25, 0.25])


def test_kmer_cosine_matches_sets():
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(6)] + ["ACGTNACGTACGTAC"]
    k = 4
    x = kmer_sets(seqs, k)
    sets = [{s[i : i + k] for i in range(len(s) - k + 1) if set(s[i : i + k]) <= set("ACGT")} for s in seqs]
    idx = np.array([[1, 2, 0], [6, 3, 4]])
    got = candidate_kmer_cosine(x[[0, 5]], x, idx, k)
    for row, q in enumerate([0, 5]):
        for col, r in enumerate(idx[row]):
            want = len(sets[q] & sets[r]) / np.sqrt(len(sets[q]) * len(sets[r]))
            assert got[row, col] == pytest.approx(want, rel=1e-6)


def _table_kmer_cosine(query: np.ndarray, ref: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """The k-mer cosine as `aam classify` computed it before shared_kmers (one torch presence table
    per 256 queries): the fast path must give it bit for bit, ties and last bits included."""
    import torch

    m, c = idx.shape
    out = np.zeros((m, c), np.float32)
    pad = 4**k
    q_all, r_all = torch.from_numpy(query), torch.from_numpy(ref)
    nq, nr = (q_all < pad).sum(1).float(), (r_all < pad).sum(1).float()
    chunk = max(1, (1 << 24) // (pad + 1))
    for i in range(0, m, chunk):
        q = q_all[i : i + chunk]
        table = torch.zeros(len(q), pad + 1, dtype=torch.bool)
        table.scatter_(1, q, True)
        table[:, pad] = False
        cand = torch.from_numpy(idx[i : i + len(q)])
        shared = table.gather(1, r_all[cand].reshape(len(q), -1)).reshape(len(q), c, -1).sum(2).float()
        out[i : i + len(q)] = (shared / (nq[i : i + len(q), None] * nr[cand]).sqrt().clamp_min(1e-12)).numpy()
    return out


def _random_reads(rng, n: int, length: tuple[int, int] = (20, 160)) -> list[str]:
    p = [0.24] * 4 + [0.04]
    reads = ["".join(rng.choice(list("ACGTN"), rng.integers(*length), p=p)) for _ in range(n)]
    return reads + ["", "NNNNNNNNNN", "ACGTAC"]  # no k-mer at all


def test_shared_kmers_match_set_intersections():
    rng = np.random.default_rng(2)
    seqs, k = _random_reads(rng, 60), 4
    x = kmer_sets(seqs, k)
    sets = [{s[i : i + k] for i in range(len(s) - k + 1) if set(s[i : i + k]) <= set("ACGT")} for s in seqs]
    idx = rng.integers(0, len(seqs), (len(seqs), 9))
    want = np.array([[len(sets[q] & sets[r]) for r in row] for q, row in enumerate(idx)])
    for block in (1, 5, 8, 200):
        np.testing.assert_array_equal(shared_kmers(x, x, idx, k, block), want)


def test_kmer_cosine_bit_for_bit_as_before():
    rng = np.random.default_rng(3)
    ref = kmer_sets(_random_reads(rng, 400, (100, 160)), 8)
    query = kmer_sets(_random_reads(rng, 600, (100, 160)), 8)  # more than one block of 256 queries
    idx = rng.integers(0, len(ref), (len(query), 50))
    want = _table_kmer_cosine(query, ref, idx, 8)
    np.testing.assert_array_equal(candidate_kmer_cosine(query, ref, idx, 8), want)
    # 7 shared of 121 and 140 k-mers: torch's float32 sqrt(16940) is 130.15375, NumPy's 130.15376
    pad = 4**8
    query, ref = np.full((1, 140), pad), np.full((1, 140), pad)
    query[0, :121], ref[0, :] = np.arange(121), np.arange(114, 254)
    idx = np.zeros((1, 1), np.int64)
    assert candidate_kmer_cosine(query, ref, idx, 8)[0, 0] == _table_kmer_cosine(query, ref, idx, 8)[0, 0]


def test_sketch_of_kmer_sets_is_that_of_kmer_matrix():
    # the queries are tokenised once: presence_matrix of their k-mer sets is kmer_matrix itself,
    # so the sketches (and the candidates found with them) are those of the tokenised reads
    rng = np.random.default_rng(4)
    seqs = _random_reads(rng, 50)
    for k in (3, 8):
        got, want = presence_matrix(kmer_sets(seqs, k), k), kmer_matrix(seqs, k)
        assert got.has_canonical_format and want.has_canonical_format
        for part in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(got, part), getattr(want, part))
    x = kmer_matrix(seqs, 8)
    norms = np.sqrt(np.asarray(x.sum(axis=1)).ravel())
    from aam.evaluate.taxonomy import _projection

    want = np.asarray(sp.diags(1.0 / np.maximum(norms, 1.0)) @ x @ _projection(8, 16, 0), dtype=np.float32)
    np.testing.assert_array_equal(kmer_sketch(kmer_sets(seqs, 8), 8, 16), want)


def _toy_reference(rng, n_per=8):
    lineages = [
        ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Lachnospiraceae", "Blautia", None),
        ("Bacteria", "Firmicutes", "Clostridia", "Clostridiales", "Lachnospiraceae", "Dorea", None),
        ("Bacteria", "Bacteroidetes", "Bacteroidia", "Bacteroidales", "Bacteroidaceae", "Bacteroides", None),
    ]
    roots = ["".join(rng.choice(list("ACGT"), 60)) for _ in lineages]
    seqs, lin = [], []
    for root, lineage in zip(roots, lineages, strict=True):
        for _ in range(n_per):
            s = np.array(list(root))
            hit = rng.random(60) < 0.05
            s[hit] = rng.choice(list("ACGT"), hit.sum())
            seqs.append("".join(s))
            lin.append(lineage)
    return seqs, np.array(lin, dtype=object)


def test_classifier_table_is_what_qiime2_imports():
    rng = np.random.default_rng(1)
    seqs, lineage = _toy_reference(rng)
    # embeddings: a k-mer profile is a fine stand-in for a model here
    vectors = kmer_matrix(seqs, 3, binary=False).toarray()
    settings = KnnSettings(k=5, candidates=10, kmer=6, search="embedding")
    clf = KnnTaxonomyClassifier(vectors, lineage, seqs, settings)
    queries = [seqs[0], seqs[9], seqs[20], "".join(rng.choice(list("ACGT"), 60))]
    table = clf.classify(
        ["q1", "q2", "q3", "random"], kmer_matrix(queries, 3, binary=False).toarray(), queries
    )
    buf = io.StringIO()
    table.to_csv(buf, sep="\t", index=False)
    text = buf.getvalue()
    assert text.splitlines()[0] == "Feature ID\tTaxon\tConfidence"
    back = pd.read_csv(io.StringIO(text), sep="\t", dtype={"Feature ID": str})
    assert list(back["Feature ID"]) == ["q1", "q2", "q3", "random"]
    assert back["Confidence"].between(0, 1).all()
    assert back["Taxon"][0].endswith("g__Blautia")
    assert back["Taxon"][1].endswith("g__Dorea")
    assert back["Taxon"][2].startswith("k__Bacteria; p__Bacteroidetes")
    # names only ever in Greengenes rank order, no gaps
    for taxon in back["Taxon"]:
        if taxon != "Unassigned":
            prefixes = [p.strip()[:3] for p in taxon.split(";")]
            assert prefixes == ["k__", "p__", "c__", "o__", "f__", "g__", "s__"][: len(prefixes)]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="unknown"):
        KnnSettings.from_dict({"kk": 3})
    with pytest.raises(ValueError, match="candidates"):
        KnnSettings.from_dict({"k": 20, "candidates": 10})
    with pytest.raises(ValueError, match="threshold"):
        KnnSettings.from_dict({"threshold": 1.5})
    with pytest.raises(ValueError, match="species_threshold_scale"):
        KnnSettings.from_dict({"species_threshold_scale": 1.5})
    with pytest.raises(ValueError, match="align"):
        KnnSettings.from_dict({"k": 20, "align": 10})
    with pytest.raises(ValueError, match="genus_identity"):
        KnnSettings.from_dict({"genus_identity": 95})
    with pytest.raises(ValueError, match="genus_floor_margin"):
        KnnSettings.from_dict({"genus_floor_margin": -0.1})
    with pytest.raises(ValueError, match="genus_floor_scale"):
        KnnSettings.from_dict({"genus_floor_scale": 2})
    assert KnnSettings.from_dict({"genus_floor_margin": None}).genus_floor_margin is None
    with pytest.raises(ValueError, match="ann_above"):
        KnnSettings.from_dict({"ann_above": 0})
    with pytest.raises(ValueError, match="ann_probe"):
        KnnSettings.from_dict({"ann_lists": 8, "ann_probe": 9})
    assert KnnSettings.from_dict({"ann_above": None}).ann_above is None


def _random_sketches(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    """Normalised random search vectors: no two references tie for a query."""
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _phyla(n: int) -> np.ndarray:
    return np.array([["Bacteria", f"P{i % 3}", None, None, None, None, None] for i in range(n)], dtype=object)


def _exact_top(queries: np.ndarray, refs: np.ndarray, n: int) -> np.ndarray:
    """Brute force: each query's n most cosine-similar references, by NumPy."""
    return np.argsort(-(queries @ refs.T), axis=1, kind="stable")[:, :n]


@pytest.mark.parametrize("probe", [8, 2])
def test_inverted_lists_find_what_the_exact_search_finds(probe):
    # search: embedding on given vectors, no k-mers or alignment: the neighbours are the search's
    refs, queries = _random_sketches(400), _random_sketches(30, seed=1)
    lineage = _phyla(400)
    base = dict(k=5, candidates=5, kmer_weight=0.0, align=0, bayes_temperature=None, search="embedding")
    exact = KnnTaxonomyClassifier(refs, lineage, None, KnnSettings(**base))
    ivf = KnnTaxonomyClassifier(refs, lineage, None, KnnSettings(**base, ann_above=100, ann_lists=8,
                                                                  ann_probe=probe))
    assert exact.index is None and ivf.index is not None and ivf.index.nlist == 8
    _, idx_exact = exact.neighbours(queries)
    _, idx_ivf = ivf.neighbours(queries)
    assert (idx_exact == _exact_top(queries, refs, 5)).all()
    found = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(idx_exact, idx_ivf, strict=True)])
    if probe == 8:  # every cell probed: every reference compared, the exact neighbours
        assert (idx_ivf == idx_exact).all()
    else:  # 2 of 8 cells: most of them, not all (what ann_probe trades)
        assert 0.5 < found < 1.0


def test_a_read_whose_probed_cells_hold_too_few_references_is_searched_exactly():
    # 40 references in 20 cells, one probed: about 2 references per cell, fewer than 10 candidates
    refs, queries = _random_sketches(40), _random_sketches(12, seed=1)
    lineage = _phyla(40)
    settings = KnnSettings(k=10, candidates=10, kmer_weight=0.0, align=0, bayes_temperature=None,
                           search="embedding", ann_above=20, ann_lists=20, ann_probe=1)
    clf = KnnTaxonomyClassifier(refs, lineage, None, settings)
    assert clf.index is not None
    _, idx = clf.neighbours(queries)
    assert (idx == _exact_top(queries, refs, 10)).all()


def test_unclassifiable_reads_are_unassigned_with_confidence_0():
    rng = np.random.default_rng(2)
    seqs, lineage = _toy_reference(rng)
    vectors = kmer_matrix(seqs, 3, binary=False).toarray()
    settings = KnnSettings(k=5, candidates=10, kmer=6, threshold=0.0, search="embedding")
    clf = KnnTaxonomyClassifier(vectors, lineage, seqs, settings)
    # all N; shorter than k = 6; ambiguity codes every 5th base: no run of 6 valid bases
    queries = [seqs[0], "N" * 60, "ACG", "ACGTN" * 12, seqs[20]]
    table = clf.classify(list("abcde"), kmer_matrix(queries, 3, binary=False).toarray(), queries)
    assert list(table["Taxon"][1:4]) == ["Unassigned"] * 3
    assert list(table["Confidence"][1:4]) == [0.0] * 3
    # at threshold 0 every read with a k-mer is named down to the deepest named rank
    assert table["Taxon"][0].endswith("g__Blautia") and table["Taxon"][4].endswith("g__Bacteroides")
    names, conf = clf.predict(kmer_matrix(queries, 3, binary=False).toarray(), queries)
    assert (conf[1:4] == 0).all() and all(v is None for v in names[1:4].ravel())


def test_config_readme_states_the_classifier_defaults(repo_root):
    import dataclasses
    import re

    text = (repo_root / "config" / "README.md").read_text()
    section = text.split("### `seq_models.runs.<run>.classify`")[1].split("\n### ")[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, flags=re.M))
    defaults = {f.name: f.default for f in dataclasses.fields(KnnSettings)}
    assert set(rows) == set(defaults)
    for key, value in defaults.items():
        assert rows[key].strip() == ("null" if value is None else str(value)), key


def test_alignment_identity_ranks_what_kmer_cosine_ranks_wrong():
    rng = np.random.default_rng(3)
    query = "".join(rng.choice(list("ACGT"), 150))
    # X: 15 substitutions spread every 10 nt (identity 0.9, but nearly every 8-mer broken);
    # Y: one block of 30 nt replaced (identity 0.8, most 8-mers intact)
    x = list(query)
    for pos in range(5, 150, 10):
        x[pos] = "A" if x[pos] != "A" else "C"
    y = list(query)
    y[60:90] = ["A" if b != "A" else "C" for b in y[60:90]]
    refs = ["".join(x), "".join(y)]
    lineage = np.array([["Bacteria", "P", "C", "O", "F", g, None] for g in ("X", "Y")], dtype=object)
    kcos = candidate_kmer_cosine(kmer_sets([query]), kmer_sets(refs), np.array([[0, 1]]))[0]
    assert kcos[1] > kcos[0]  # the premise: 8-mer cosine prefers Y
    common = {"k": 1, "candidates": 2, "genus_identity": 0.0, "threshold": 0.0}
    by_kmer = KnnTaxonomyClassifier(None, lineage, refs, KnnSettings(**common, align=0))
    by_identity = KnnTaxonomyClassifier(None, lineage, refs, KnnSettings(**common, align=2))
    assert by_kmer.classify(["q"], None, [query])["Taxon"][0].endswith("g__Y")
    assert by_identity.classify(["q"], None, [query])["Taxon"][0].endswith("g__X")
    sim, idx = by_identity.neighbours(None, [query])
    assert idx[0, 0] == 0 and sim[0, 0] == pytest.approx(0.9)


def test_genus_identity_is_a_virtual_neighbour_without_a_genus():
    rng = np.random.default_rng(4)
    ref = "".join(rng.choice(list("ACGT"), 150))
    far = list(ref)
    for pos in range(2, 150, 5):  # 30 substitutions: identity 0.8
        far[pos] = "A" if far[pos] != "A" else "C"
    lineage = np.array([["Bacteria", "P", "C", "O", "F", "G", "S"]], dtype=object)
    settings = KnnSettings(k=1, candidates=1, align=1, genus_identity=0.9, temperature=0.02, threshold=0.25)
    clf = KnnTaxonomyClassifier(None, lineage, [ref], settings)
    names, conf = clf.predict(None, [ref, "".join(far)])
    # one neighbour of weight 1 and the virtual one of weight exp((0.9 - s) / 0.02), below the family
    for row, s in ((0, 1.0), (1, 0.8)):
        share = 1.0 / (1.0 + np.exp((0.9 - s) / 0.02))
        np.testing.assert_allclose(conf[row], [1, 1, 1, 1, 1, share, share], rtol=1e-5)
    table = clf.classify(["near", "far"], None, [ref, "".join(far)])
    assert table["Taxon"][0].endswith("g__G; s__S") and table["Taxon"][1].endswith("f__F")


def _substituted(seq: str, positions) -> str:
    out = list(seq)
    for pos in positions:
        out[pos] = "A" if out[pos] != "A" else "C"
    return "".join(out)


def test_a_read_farther_from_its_genus_than_the_genus_spread_stops_at_the_family():
    rng = np.random.default_rng(5)
    a = "".join(rng.choice(list("ACGT"), 150))
    b = _substituted(a, range(3, 150, 19))  # 8 substitutions: A and B, genus G, lie at 142/150
    lone = "".join(rng.choice(list("ACGT"), 150))  # genus H, one member: no floor
    refs = [a, b, lone]
    lineage = np.array(
        [["Bacteria", "P", "C", "O", "F", g, None] for g in ("G", "G", "H")], dtype=object
    )
    inside = _substituted(a, range(5, 150, 16))  # 10 substitutions: 0.933 to A
    outside = _substituted(a, range(5, 150, 12))  # 13 substitutions: 0.913 to A
    near_lone = _substituted(lone, range(5, 150, 8))  # 19 substitutions: 0.873 to the lone member
    common = {"k": 2, "candidates": 3, "align": 2, "genus_identity": 0.0, "threshold": 0.25}
    settings = KnnSettings(**common, genus_floor_margin=0.02, genus_floor_scale=0.0)
    clf = KnnTaxonomyClassifier(None, lineage, refs, settings)
    genus_g = clf.codes[0, GENUS]
    np.testing.assert_allclose(clf.genus_floor[genus_g], 142 / 150, rtol=1e-5)
    assert clf.genus_mates[genus_g] == 2
    np.testing.assert_allclose(clf.genus_lowest()[genus_g], 142 / 150 - 0.02, rtol=1e-5)
    assert np.isnan(clf.genus_lowest()[clf.codes[2, GENUS]])
    sim, idx = clf.neighbours(None, [inside, outside])
    np.testing.assert_allclose(sim[:, 0], [140 / 150, 137 / 150], rtol=1e-5)
    # 0.933 >= 0.947 - 0.02 keeps G; 0.913 < 0.927 stops at F; H has no floor, so nothing is cut
    taxa = clf.classify(["in", "out", "lone"], None, [inside, outside, near_lone])["Taxon"].tolist()
    assert taxa[0].endswith("f__F; g__G") and taxa[1].endswith("f__F") and taxa[2].endswith("g__H")
    off = KnnTaxonomyClassifier(None, lineage, refs, KnnSettings(**common, genus_floor_margin=None))
    assert off.classify(["out"], None, [outside])["Taxon"][0].endswith("g__G")
    # both members of G found their mate: a scale of 0.04 widens the margin by 0.04 / 2
    wide = KnnTaxonomyClassifier(
        None, lineage, refs, KnnSettings(**common, genus_floor_margin=0.02, genus_floor_scale=0.04)
    )
    np.testing.assert_allclose(wide.genus_lowest()[genus_g], 142 / 150 - 0.04, rtol=1e-5)
    assert wide.classify(["out"], None, [outside])["Taxon"][0].endswith("g__G")


def test_a_vote_of_given_neighbours_is_the_vote_of_the_reads():
    rng = np.random.default_rng(6)
    seqs, lineage = _toy_reference(rng)
    clf = KnnTaxonomyClassifier(None, lineage, seqs, KnnSettings(k=3, candidates=6, align=3))
    reads = [s[:120] for s in seqs[:8]] + ["N" * 50]
    sim, idx = clf.neighbours(None, reads)
    blank = np.array([False] * 8 + [True])
    lineage_ll = clf.lineage_log_likelihood(reads, idx)
    for scaled in (None, 120):  # the temperature scaled by the reads' lengths, or not
        clf.settings = KnnSettings(k=3, candidates=6, align=3, temperature_length=scaled)
        given = clf.vote_neighbours(sim, idx, True, blank, lineage_ll, read_lengths(reads))
        for a, b in zip(clf.vote(None, reads), given, strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="lengths"):
        clf.vote_neighbours(sim, idx, True, blank, lineage_ll)


def test_one_mismatch_weighs_the_same_at_any_read_length():
    """The vote's temperature holds at `temperature_length` nt and scales by it over the read's
    length: a neighbour one mismatch farther gets exp(-1 / (L * t) * L / 150) = exp(-1 / (150 t)) of
    the nearest's weight, for a 150-nt and a 450-nt read alike; unscaled, the longer read's weight is
    exp(-1 / (450 t)). Hand-worked: two references of two genera, the read equal to the first but
    one substitution from the second."""
    rng = np.random.default_rng(8)
    lineage = np.array([["Bacteria", "P", "C", "O", "F", g, None] for g in ("G", "H")], dtype=object)
    common = {"k": 2, "candidates": 2, "align": 2, "genus_identity": 0.0, "bayes_temperature": None,
              "temperature": 0.02, "threshold": 0.0}
    genus = {}
    for length in (150, 450):
        a = "".join(rng.choice(list("ACGT"), length))
        b = _substituted(a, [length // 2])  # one mismatch: identity 1 - 1 / length
        for scaled, per_identity in ((150, 150 / length * 0.02), (None, 0.02)):
            settings = KnnSettings(**common, temperature_length=scaled)
            clf = KnnTaxonomyClassifier(None, lineage, [a, b], settings)
            names, conf = clf.predict(None, [a])
            assert names[0, 5] == "G"
            genus[length, scaled] = conf[0, 5]
            np.testing.assert_allclose(conf[0, 5], 1 / (1 + np.exp(-(1 / length) / per_identity)), rtol=1e-4)
    assert genus[150, 150] == genus[150, None]  # at 150 nt the scaling changes nothing, bit for bit
    np.testing.assert_allclose(genus[450, 150], 1 / (1 + np.exp(-1 / 3)), rtol=1e-4)  # as at 150 nt
    assert genus[450, None] < 0.53  # unscaled: the one-mismatch neighbour counts almost as much
    with pytest.raises(ValueError, match="temperature_length"):
        KnnSettings.from_dict({"temperature_length": 0})


def test_full_length_references_fall_back_to_the_kmer_vote(caplog):
    import logging

    rng = np.random.default_rng(5)

    def dna(n: int) -> str:
        return "".join(rng.choice(list("ACGT"), n))

    def mutate(s: str, rate: float) -> str:
        return "".join(rng.choice(list("ACGT")) if rng.random() < rate else b for b in s)

    # 3 genera; references are 300 nt of upstream gene plus the 150-nt region the reads come from
    regions = [dna(150) for _ in range(3)]
    refs, lineage = [], []
    for g, region in enumerate(regions):
        for _ in range(5):
            refs.append(dna(300) + mutate(region, 0.02))
            lineage.append(["Bacteria", "P", "C", "O", "F", f"G{g}", None])
    reads = [mutate(regions[g], 0.02) for g in (0, 1, 2, 0, 1, 2)]
    clf = KnnTaxonomyClassifier(None, np.array(lineage, dtype=object), refs, KnnSettings(k=5, align=10))
    with caplog.at_level(logging.WARNING, logger="aam.evaluate.taxonomy"):
        table = clf.classify([f"r{i}" for i in range(6)], None, reads)
    # anchored at the references' starts the identities are those of unrelated sequence, so the
    # k-mer similarity decides, the genus floor is not applied, and the user is told once
    assert [t.split("; ")[-1] for t in table["Taxon"]] == ["g__G0", "g__G1", "g__G2"] * 2
    assert sum("full-length references" in r.getMessage() for r in caplog.records) == 1
