"""Naive Bayes taxonomy classifiers that `aam classify` is judged against, with a confidence per rank.

- `q2_naive_bayes`: q2-feature-classifier's default classifier (`fit-classifier-naive-bayes`, then
  `classify-sklearn --p-confidence 0.7`), rebuilt from scikit-learn as closely as we can without
  QIIME 2: its pipeline is HashingVectorizer(analyzer='char_wb', n_features=8192,
  ngram_range=(7, 7), alternate_sign=False) + MultinomialNB(alpha=0.001, fit_prior=False), trained
  on whole taxonomy strings (``k__...; ...; g__; s__``, empty ranks included, as a user's
  reference holds them). q2's LowMemoryMultinomialNB only fits MultinomialNB in chunks (the same
  counts). Prediction follows q2's ``_predict_chunk_with_conf``: the class of highest posterior,
  then, rank by rank down its taxonomy, the summed posterior of every class under that rank's
  taxon; the assignment stops before the first rank whose sum is below the threshold. Left out:
  `read_orientation` (all our reads have the reference's orientation) and joblib chunking.
- `per_rank_naive_bayes`: the 8-mer recipe of `bench_seq_models.py` and `aam seq-evaluate` (8-mer
  presence, MultinomialNB alpha 0.001, uniform prior), one model per rank over lineage paths (so
  two genera of one name in two families stay apart); a rank's confidence is its winner's
  posterior, and a rank whose winner does not descend from the winner above is inconsistent.

Both return `RankCalls`, which `aam.evaluate.taxonomy_eval` cuts at any threshold.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from aam.evaluate.lineage_bayes import ALPHA, q2_kmer_features
from aam.evaluate.taxonomy import PREFIXES, kmer_matrix

Q2_CONFIDENCE = 0.7  # classify-sklearn's default --p-confidence


class RankCalls(NamedTuple):
    """A classifier's calls, untruncated: (m, R) names (None: none), confidences, consistency."""

    names: np.ndarray
    confidence: np.ndarray
    consistent: np.ndarray


def taxonomy_strings(lineage: np.ndarray) -> np.ndarray:
    """(n, R) names (None = empty) -> Greengenes strings ``k__A; p__B; ...; g__; s__``."""
    rows = [
        "; ".join(f"{PREFIXES[r]}{'' if name is None else name}" for r, name in enumerate(row))
        for row in np.asarray(lineage, dtype=object)
    ]
    return np.asarray(rows, dtype=object)


def _names_of(strings: np.ndarray) -> np.ndarray:
    """Greengenes strings -> (n, R) names with None for empty ranks."""
    out = [[part.strip()[3:] or None for part in s.split(";")] for s in strings]
    return np.asarray(out, dtype=object)


# ------------------------------------------------------------------------------ q2's naive Bayes
class Q2NaiveBayes:
    """q2-feature-classifier's default naive Bayes (see the module docstring)."""

    def __init__(self) -> None:
        from sklearn.naive_bayes import MultinomialNB
        from sklearn.pipeline import Pipeline

        self.pipeline = Pipeline(
            [("feat_ext", q2_kmer_features()), ("classify", MultinomialNB(alpha=ALPHA, fit_prior=False))]
        )

    def fit(self, seqs: list[str], lineage: np.ndarray) -> Q2NaiveBayes:
        self.pipeline.fit(list(seqs), taxonomy_strings(lineage))
        classes = self.pipeline.classes_
        self.class_names = _names_of(classes)
        # per rank, the (classes x taxa) indicator of "class lies under the taxon" (q2's _TaxonNode
        # ranges: classes are sorted, so a taxon's classes are those sharing the prefix)
        self.groups = []
        for r in range(self.class_names.shape[1]):
            prefixes = ["; ".join(c.split(";")[: r + 1]) for c in classes]
            _, code = np.unique(np.asarray(prefixes, dtype=object).astype(str), return_inverse=True)
            member = sp.csr_matrix((np.ones(len(code)), (np.arange(len(code)), code)))
            self.groups.append((code, member))
        return self

    def calls(self, seqs: list[str], batch: int = 2048) -> RankCalls:
        parts = [self._calls(list(seqs[i : i + batch])) for i in range(0, len(seqs), batch)]
        return RankCalls(*(np.concatenate(p) for p in zip(*parts, strict=True)))

    def _calls(self, seqs: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        proba = self.pipeline.predict_proba(seqs)
        best = proba.argmax(axis=1)
        names = self.class_names[best]
        conf = np.empty(names.shape, dtype=np.float64)
        rows = np.arange(len(seqs))
        for r, (code, member) in enumerate(self.groups):
            conf[:, r] = np.asarray(member.T @ proba.T).T[rows, code[best]] if len(seqs) else 0.0
        return names, conf, np.ones(names.shape, dtype=bool)


# ------------------------------------------------------------------------ 8-mer NB, one per rank
class PerRankNaiveBayes:
    """8-mer presence naive Bayes per rank over lineage paths (see the module docstring)."""

    def __init__(self, k: int = 8, alpha: float = 0.001) -> None:
        self.k, self.alpha = k, alpha

    def fit(self, seqs: list[str], lineage: np.ndarray) -> PerRankNaiveBayes:
        from sklearn.naive_bayes import MultinomialNB

        lineage = np.asarray(lineage, dtype=object)
        x = kmer_matrix(list(seqs), self.k)
        self.models = []
        for r in range(lineage.shape[1]):
            paths = _paths(lineage, r)
            known = np.asarray([p is not None for p in paths])
            if not known.any():
                self.models.append(None)
                continue
            nb = MultinomialNB(alpha=self.alpha, fit_prior=False).fit(x[known], paths[known].astype(str))
            # predict needs only the log probabilities: halve the memory of 4^k columns per class
            nb.feature_log_prob_ = nb.feature_log_prob_.astype(np.float32)
            del nb.feature_count_
            self.models.append(nb)
        return self

    def calls(self, seqs: list[str], batch: int = 2048) -> RankCalls:
        n_ranks = len(self.models)
        names = np.full((len(seqs), n_ranks), None, dtype=object)
        conf = np.zeros((len(seqs), n_ranks))
        paths = np.full((len(seqs), n_ranks), None, dtype=object)
        for i in range(0, len(seqs), batch):
            x = kmer_matrix(list(seqs[i : i + batch]), self.k)
            for r, nb in enumerate(self.models):
                if nb is None:
                    continue
                proba = nb.predict_proba(x)
                best = proba.argmax(axis=1)
                paths[i : i + batch, r] = nb.classes_[best]
                conf[i : i + batch, r] = proba[np.arange(len(best)), best]
        consistent = np.ones(names.shape, dtype=bool)
        for r in range(n_ranks):
            known = np.asarray([p is not None for p in paths[:, r]])
            names[known, r] = [p.split("\t")[-1] for p in paths[known, r]]
            if r:
                consistent[:, r] = [
                    p is not None and a is not None and p.startswith(a + "\t")
                    for p, a in zip(paths[:, r], paths[:, r - 1], strict=True)
                ]
        return RankCalls(names, conf, consistent)


def _paths(lineage: np.ndarray, r: int) -> np.ndarray:
    """Tab-joined lineage paths through rank r (None where a rank up to r is unnamed)."""
    out = np.full(len(lineage), None, dtype=object)
    for i, row in enumerate(lineage):
        head = row[: r + 1]
        if all(v is not None for v in head):
            out[i] = "\t".join(str(v) for v in head)
    return out
