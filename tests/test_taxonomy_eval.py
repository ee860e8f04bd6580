"""Taxonomy evaluation (tax-credit's protocols): folds that leave whole taxa out, scores against a
hand-worked example and against scikit-learn's micro precision/recall (what tax-credit calls), and
the q2-feature-classifier naive Bayes confidence against a direct sum over its posteriors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from aam.evaluate.taxonomy_eval import (
    bootstrap_f_difference,
    identical_to_any,
    lineage_paths,
    novel_taxa_folds,
    novel_taxa_scores,
    random_fold_scores,
    random_folds,
    read_hits,
    taxa_in_training,
)
from aam.evaluate.taxonomy_nb import PerRankNaiveBayes, Q2NaiveBayes, RankCalls, taxonomy_strings


def _lineages(rng, n=300):
    """n lineages of 4 ranks under 2 kingdoms, some genera unnamed."""
    rows = []
    for _ in range(n):
        k = int(rng.integers(2))
        f = int(rng.integers(3))
        g = int(rng.integers(4))
        rows.append([f"K{k}", f"F{k}{f}", None if g == 3 else f"G{k}{f}{g}", None])
    return np.array(rows, dtype=object)


def test_novel_taxa_folds_never_train_on_a_left_out_genus():
    lineage = _lineages(np.random.default_rng(0))
    rank = 2
    folds = novel_taxa_folds(lineage, rank, 3, seed=5)
    paths = lineage_paths(lineage, rank)
    all_left_out = set()
    for test, left_out in folds:
        train = np.setdiff1d(np.arange(len(lineage)), test)
        assert left_out and not (left_out & {paths[i] for i in train})  # never in training
        assert {paths[i] for i in test} == left_out  # every test read is of a left-out genus
        # its family stays in training: the parent rank can be right
        assert {p[:-1] for p in left_out} <= {tuple(lineage[i, :rank]) for i in train}
        assert not (left_out & all_left_out)  # each genus is left out once
        all_left_out |= left_out
    # every branching genus (its family has >= 2 named genera) is left out once; here all are
    assert all_left_out == {p for p in paths if p is not None}


def test_random_folds_partition_the_reads():
    folds = random_folds(10, 3, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(10))
    assert [len(f) for f in folds] == [4, 3, 3]


def _calls(names, conf):
    names = np.array(names, dtype=object)
    return RankCalls(names, np.array(conf, dtype=float), np.ones(names.shape, dtype=bool))


def test_random_fold_scores_by_hand():
    truth = np.array([["A", "a"], ["A", "a"], ["A", "b"], ["B", "c"], ["B", None]], dtype=object)
    calls = _calls(
        [["A", "a"], ["A", "b"], ["A", "b"], ["A", "a"], ["B", "c"]],
        [[0.9, 0.8], [0.9, 0.9], [0.9, 0.5], [0.6, 0.6], [0.9, 0.9]],
    )
    # threshold 0.7: read 1 A;a right; read 2 A;b wrong genus; read 3 stops at A (right family,
    # unassigned genus); read 4 Unassigned; read 5 B;c, but its true genus is unnamed: not scored
    # at genus. Family: 5 reads, assigned 1,2,3,5 (4), right 1,2,3,5 (4): P 4/4, R 4/5.
    # Genus: 4 reads named (1-4), assigned 1,2 (2), right 1: P 1/2, R 1/4, F 2 PR / (P + R) = 1/3.
    family, genus = random_fold_scores(calls, truth, 0.7)
    assert (family["reads"], family["assigned"], family["right"]) == (5, 4, 4)
    assert family["precision"] == 1.0 and family["recall"] == pytest.approx(0.8)
    assert (genus["reads"], genus["assigned"], genus["right"]) == (4, 2, 1)
    assert genus["precision"] == 0.5 and genus["recall"] == 0.25 and genus["f"] == pytest.approx(1 / 3)
    # tax-credit: scikit-learn micro averages over the labels of full depth; a call cut short is
    # a label of lesser depth, so it counts against recall only
    exp = ["A;a", "A;a", "A;b", "B;c"]
    obs = ["A;a", "A;b", "A", "Unassigned"]
    labels = [t for t in set(exp + obs) if len(t.split(";")) >= 2]
    p, r, f, _ = precision_recall_fscore_support(exp, obs, average="micro", labels=labels)
    assert (genus["precision"], genus["recall"], genus["f"]) == pytest.approx((p, r, f))


def test_novel_taxa_scores_by_hand():
    # genus (rank 1) left out: the right call is the family and nothing below
    truth = np.array([["A", "x"]] * 5, dtype=object)
    calls = _calls(
        [["A", "y"], ["A", "y"], ["B", "z"], ["A", "y"], ["B", "z"]],
        [[0.9, 0.5], [0.9, 0.9], [0.9, 0.1], [0.5, 0.1], [0.9, 0.9]],
    )
    s = novel_taxa_scores(calls, truth, 1, 0.7)
    # 1: stops at A = match; 2: A;y = overclassification; 3: B = misclassification;
    # 4: Unassigned = underclassification; 5: B;z = misclassification
    kinds = ("match", "overclassification", "misclassification", "underclassification")
    assert [s[k] for k in kinds] == [1, 1, 2, 1]
    # assigned down to the family or deeper: 1, 2, 3, 5; precision 1/4, recall 1/5
    assert s["precision"] == 0.25 and s["recall"] == 0.2 and s["f"] == pytest.approx(2 * 0.05 / 0.45)


def test_identical_training_sequences_are_found_case_aside():
    train = ["ACGT", "acgA", "TTTT", "ACGA"]
    test = ["ACGA", "GGGG", "acgt"]
    assert identical_to_any(train, test).tolist() == [True, True, False, True]
    assert identical_to_any(test, train).tolist() == [True, False, True]


def test_taxa_in_training_by_hand():
    train = np.array([["K", "F1", "G1"], ["K", "F1", None], ["K", "F2", "G3"]], dtype=object)
    test = np.array(
        [
            ["K", "F1", "G1"],  # genus in training: seen
            ["K", "F1", "G2"],  # genus absent, family F1 in training: unseen (a novel genus)
            ["K", "F9", "G9"],  # family absent too: neither (its parent cannot be right)
            ["K", "F2", None],  # genus unnamed: neither
            ["K", "F2", "G1"],  # a G1 under another family is another genus: unseen
        ],
        dtype=object,
    )
    seen, unseen = taxa_in_training(train, test, 2)
    assert seen.tolist() == [True, False, False, False, False]
    assert unseen.tolist() == [False, True, False, False, True]
    seen, unseen = taxa_in_training(train, test, 1)  # families: F9 unseen (kingdom K in training)
    assert seen.tolist() == [True, True, False, True, True]
    assert unseen.tolist() == [False, False, True, False, False]


def test_read_hits_and_bootstrap_by_hand():
    # the example of test_random_fold_scores_by_hand: genus right 1, assigned 2 of 4 named reads
    truth = np.array([["A", "a"], ["A", "a"], ["A", "b"], ["B", "c"], ["B", None]], dtype=object)
    calls = _calls(
        [["A", "a"], ["A", "b"], ["A", "b"], ["A", "a"], ["B", "c"]],
        [[0.9, 0.8], [0.9, 0.9], [0.9, 0.5], [0.6, 0.6], [0.9, 0.9]],
    )
    right, assigned = read_hits(calls, truth, 1, 0.7, novel=False)
    assert right.tolist() == [True, False, False, False] and assigned.tolist() == [True, True, False, False]
    # as novel genera (the right call stops at the family): read 3 matches, reads 1, 2, 5 go deeper
    right, assigned = read_hits(calls, truth, 1, 0.7, novel=True)
    assert right.tolist() == [False, False, True, False, False]
    assert assigned.tolist() == [True, True, True, False, True]
    # a classifier against itself: no difference in any resample
    same = bootstrap_f_difference((right, assigned), (right, assigned), n_boot=50)
    assert same["diff"] == same["lo"] == same["hi"] == 0.0
    # 200 reads: a right on all, b right on the first 100 and wrong on the rest (all assigned):
    # F(a) = 1, F(b) = 2 * 0.5 * 0.5 / 1 = 0.5; the difference is far from 0 in every resample
    a = (np.ones(200, bool), np.ones(200, bool))
    b = (np.arange(200) < 100, np.ones(200, bool))
    d = bootstrap_f_difference(a, b, n_boot=500, seed=1)
    assert d["diff"] == pytest.approx(0.5) and 0.4 < d["lo"] < 0.5 < d["hi"] < 0.6


def test_q2_naive_bayes_confidence_is_the_posterior_summed_under_the_taxon():
    rng = np.random.default_rng(3)
    roots = {"F0": "".join(rng.choice(list("ACGT"), 80)), "F1": "".join(rng.choice(list("ACGT"), 80))}
    seqs, rows = [], []
    for fam, root in roots.items():
        for g in range(3):
            base = np.array(list(root))
            base[rng.random(80) < 0.1] = "A"
            for _ in range(4):
                s = base.copy()
                s[rng.random(80) < 0.03] = "C"
                seqs.append("".join(s))
                rows.append(["Bacteria", fam, f"G{fam}{g}" if g < 2 else None])
    lineage = np.array(rows, dtype=object)
    nb = Q2NaiveBayes().fit(seqs, lineage)
    calls = nb.calls(seqs[:6])
    proba = nb.pipeline.predict_proba(seqs[:6])
    classes = nb.pipeline.classes_
    assert set(classes) == set(taxonomy_strings(lineage))
    for i in range(6):
        best = classes[proba[i].argmax()].split("; ")
        for r in range(3):
            under = [j for j, c in enumerate(classes) if c.split("; ")[: r + 1] == best[: r + 1]]
            assert calls.confidence[i, r] == pytest.approx(proba[i, under].sum())
            assert calls.names[i, r] == (best[r][3:] or None)
    per_rank = PerRankNaiveBayes(k=6).fit(seqs, lineage).calls(seqs)
    assert (per_rank.names[:, 1] == lineage[:, 1]).mean() > 0.9
