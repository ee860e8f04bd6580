"""The naive Bayes check of `aam classify`'s vote: its features are scikit-learn's HashingVectorizer's
(q2-feature-classifier's) to the bit, its posterior equals scikit-learn's MultinomialNB renormalised
over the neighbours' lineages, and the vote's confidence is the smaller of the two on a hand-worked
example."""

from __future__ import annotations

import numpy as np
import pytest

from aam.evaluate.lineage_bayes import LineageBayes, hashed_7mers, q2_kmer_features
from aam.evaluate.taxonomy import KnnSettings, KnnTaxonomyClassifier, lineage_codes, truncate
from aam.evaluate.taxonomy_nb import Q2NaiveBayes, taxonomy_strings


def _mutated(rng, root: str, rate: float) -> str:
    s = np.array(list(root))
    hit = rng.random(len(s)) < rate
    s[hit] = rng.choice(list("ACGT"), hit.sum())
    return "".join(s)


def _reference(rng, n_per: int = 5):
    """Reads of five lineages (one genus without a species name, one named down to species), each
    mutated from its own root."""
    lineages = [
        ("Bacteria", "P1", "C1", "O1", "F1", "G1", None),
        ("Bacteria", "P1", "C1", "O1", "F1", "G1", "s1"),
        ("Bacteria", "P1", "C1", "O1", "F1", "G2", None),
        ("Bacteria", "P1", "C1", "O1", "F2", "G3", None),
        ("Bacteria", "P2", "C2", "O2", "F3", "G4", None),
    ]
    roots = ["".join(rng.choice(list("ACGT"), 150)) for _ in lineages]
    seqs, lineage = [], []
    for root, lin in zip(roots, lineages, strict=True):
        for _ in range(n_per):
            seqs.append(_mutated(rng, root, 0.08))
            lineage.append(lin)
    return seqs, np.array(lineage, dtype=object), roots


def test_posterior_is_scikit_learns_naive_bayes_renormalised_over_the_neighbours_lineages():
    rng = np.random.default_rng(0)
    seqs, lineage, roots = _reference(rng)
    queries = [_mutated(rng, r, 0.1) for r in roots] + ["ACGTNNACGT" * 15]
    codes, _ = lineage_codes(lineage)
    bayes = LineageBayes(seqs, codes)
    # q2's classifier, fitted independently through scikit-learn on the taxonomy strings
    q2 = Q2NaiveBayes().fit(seqs, lineage)
    log_proba = q2.pipeline.predict_log_proba(queries)
    class_of_read = np.searchsorted(q2.pipeline.classes_, taxonomy_strings(lineage))
    idx = rng.integers(0, len(seqs), size=(len(queries), 7))
    idx[:, 1] = idx[:, 0]  # a repeated neighbour: its class counts once
    for temperature in (1.0, 2.0):
        posterior = bayes.posterior(bayes.log_likelihood(queries, idx), idx, temperature)
        for i in range(len(queries)):
            classes = np.unique(class_of_read[idx[i]])
            scaled = log_proba[i, classes] / temperature
            expected = np.exp(scaled - scaled.max())
            expected /= expected.sum()
            got = {c: posterior[i, class_of_read[idx[i]] == c].sum() for c in classes}
            np.testing.assert_allclose([got[c] for c in classes], expected, rtol=1e-6, atol=1e-9)
            # each distinct class holds its mass at its first neighbour only
            firsts = [list(class_of_read[idx[i]]).index(c) for c in classes]
            assert np.count_nonzero(posterior[i]) <= len(firsts)
            assert set(np.flatnonzero(posterior[i])) <= set(firsts)
        np.testing.assert_allclose(posterior.sum(axis=1), 1.0)


def test_no_rank_is_surer_than_naive_bayes_posterior_of_the_voted_taxon():
    rng = np.random.default_rng(1)
    refs = ["".join(rng.choice(list("ACGT"), 150)) for _ in range(3)]
    # neighbours 0 and 1: family F, genus G (one lineage); neighbour 2: family F, genus H
    lineage = np.array([["Bacteria", "F", "G"], ["Bacteria", "F", "G"], ["Bacteria", "F", "H"]], dtype=object)
    settings = KnnSettings(k=3, candidates=3, align=0, temperature=1e6, threshold=0.3, bayes_temperature=2.0)
    clf = KnnTaxonomyClassifier(None, lineage, refs, settings)
    sim = np.array([[0.9, 0.9, 0.9]], np.float32)  # equal weights: G holds 2 / 3 of the vote
    idx = np.array([[0, 1, 2]])
    # by hand: at temperature 2, log-likelihoods (0, 0, 2 ln 3) give G's lineage 1 / (1 + 3) = 0.25
    # (its two neighbours count once) and H's 0.75; the family F holds both
    lineage_ll = np.array([[0.0, 0.0, 2 * np.log(3.0)]])
    names, conf, consistent = clf.vote_neighbours(sim, idx, aligned=False, lineage_ll=lineage_ll)
    assert list(names[0]) == ["Bacteria", "F", "G"]
    np.testing.assert_allclose(conf[0], [1.0, 1.0, 0.25], rtol=1e-9)
    taxa, confidence = truncate(names, conf, settings.threshold, consistent)
    assert taxa == ["k__Bacteria; p__F"] and confidence[0] == pytest.approx(1.0)
    # without the check the vote's 2 / 3 names the genus
    clf.settings = KnnSettings(**{**settings.__dict__, "bayes_temperature": None})
    names, conf, _ = clf.vote_neighbours(sim, idx, aligned=False)
    np.testing.assert_allclose(conf[0], [1.0, 1.0, 2 / 3], rtol=1e-9)



@pytest.mark.parametrize("non_ascii", [False, True])
def test_hashed_7mers_are_scikit_learns_hashing_vectorizer_to_the_bit(non_ascii):
    rng = np.random.default_rng(3)
    mixed = list("ACGTacgtNRY- ")
    seqs = [
        "".join(rng.choice(mixed if rng.random() < 0.2 else list("ACGT"), rng.integers(0, 160)))
        for _ in range(2000)
    ]
    # shorter than 7, exactly 6 and 7, lowercase, an ambiguity code, inner whitespace, empty
    seqs += ["ACG", "ACGTAC", "ACGTACG", "acgtacgtTTGA", "ACGTRACGTACGT", "ACGT ACGTACG", ""]
    if non_ascii:  # a read that is not ASCII sends every read through scikit-learn
        seqs.append("ACGTÄCGTACGT")
    expected = q2_kmer_features().transform(seqs)
    got = hashed_7mers(seqs)
    assert got.shape == expected.shape
    assert (got != expected).nnz == 0
