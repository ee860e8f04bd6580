"""Naive Bayes over a read's neighbours' lineages: the check of `aam classify`'s neighbour vote against
the read's k-mers.

Why: the neighbour vote (`aam.evaluate.taxonomy`) names the taxon of the references nearest by
alignment identity, and it cannot tell a read of a genus the reference lacks from a read of the
nearest genus: both have close neighbours. q2-feature-classifier's naive Bayes sees it otherwise: it
asks which lineage's pooled k-mers explain the read's, and a read of an absent genus is explained by
none well, so its posterior spreads over sibling lineages. On the tuning side of the Greengenes
reference (`scripts/tune_classify.py`, docs/results.md), taking at each rank the smaller of the
vote's confidence and the naive Bayes posterior of the voted taxon, over the lineages of the read's
`k` neighbours only, raised genus F on reads of left-out genera and left-out small genera without
the random-fold cost of the genus floors, on dense and sparse references.

The model is q2-feature-classifier's default one (`fit-classifier-naive-bayes`):
HashingVectorizer(analyzer='char_wb', n_features=8192, ngram_range=(7, 7), alternate_sign=False)
and MultinomialNB(alpha=0.001, fit_prior=False), one class per whole lineage (empty ranks included).
Only its scoring is narrowed: the posterior is normalised over the distinct lineages among the read's
neighbours, not over every lineage of the reference. That is why it costs a few thousand
multiply-adds per read where classify-sklearn's costs (lineages x 143); the mass outside the
neighbours is negligible for the taxa the vote can name (on the tuning protocols the full and the
narrowed posterior, at temperature 1, gave genus F within 0.003). Hand-written rather than scikit-learn's
MultinomialNB because MultinomialNB scores every class and fits through a dense (reads x classes)
label matrix; the features are scikit-learn's own.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

ALPHA = 0.001  # MultinomialNB's smoothing in q2-feature-classifier's default classifier
N_FEATURES = 8192


def q2_kmer_features():
    """q2-feature-classifier's default feature extractor: hashed 7-mer counts, L2-normalised per read."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        analyzer="char_wb", n_features=N_FEATURES, ngram_range=(7, 7), alternate_sign=False
    )


class LineageBayes:
    """q2's naive Bayes fitted on a labelled reference, scored over given candidate lineages.

    `lineage_codes`: (n, R) int codes of each reference's lineage prefixes
    (`aam.evaluate.taxonomy.lineage_codes`; -1 for an empty rank). References of one whole code row
    share a class, as references of one taxonomy string do in q2.
    """

    def __init__(self, sequences: list[str], lineage_codes: np.ndarray) -> None:
        codes = np.asarray(lineage_codes)
        _, self.class_of = np.unique(codes, axis=0, return_inverse=True)
        self.class_of = self.class_of.ravel()
        n_classes = int(self.class_of.max()) + 1 if len(self.class_of) else 0
        x = q2_kmer_features().transform(list(sequences))
        member = sp.csr_matrix(
            (np.ones(len(self.class_of)), (self.class_of, np.arange(len(self.class_of)))),
            shape=(n_classes, len(self.class_of)),
        )
        counts = sp.csr_matrix(member @ x)
        # log P(feature | class) = log(N_cf + alpha) - log(N_c + alpha F): the first term is
        # log(alpha) + log1p(N_cf / alpha), whose log(alpha) is the same for every class and drops
        # out of a posterior; log1p(N_cf / alpha) is 0 where the class never had the feature, so the
        # weights stay sparse
        self.weight = counts.copy()
        self.weight.data = np.log1p(self.weight.data / ALPHA)
        self.log_total = np.log(np.asarray(counts.sum(axis=1)).ravel() + ALPHA * N_FEATURES)

    def log_likelihood(self, sequences: list[str], idx: np.ndarray, block: int = 256) -> np.ndarray:
        """(m, k) naive Bayes log-likelihood of each query under the class of each of its neighbours
        (`idx`: reference indices), less a constant per query. `block` queries at a time are scored
        against the distinct classes of their neighbours only, in one sparse product."""
        m, k = idx.shape
        out = np.zeros((m, k))
        if m == 0 or k == 0:
            return out
        x = q2_kmer_features().transform(list(sequences))
        length = np.asarray(x.sum(axis=1)).ravel()
        for i in range(0, m, block):
            classes = self.class_of[idx[i : i + block]]
            used, position = np.unique(classes, return_inverse=True)
            shared = (x[i : i + block] @ self.weight[used].T).toarray()
            rows = np.arange(len(classes))[:, None]
            out[i : i + block] = shared[rows, position.reshape(classes.shape)]
            out[i : i + block] -= length[i : i + block, None] * self.log_total[classes]
        return out

    def posterior(self, log_likelihood: np.ndarray, idx: np.ndarray, temperature: float) -> np.ndarray:
        """(m, k) posterior of each neighbour's class over the distinct classes among a query's
        neighbours, with the log-likelihoods divided by `temperature` (> 1 softens naive Bayes's
        overconfident posteriors); a class's later neighbours get 0, so each row sums to 1."""
        m, k = idx.shape
        if m == 0 or k == 0:
            return np.zeros((m, k))
        classes = self.class_of[idx]
        first = np.ones((m, k), dtype=bool)
        for j in range(1, k):
            first[:, j] = (classes[:, :j] != classes[:, j : j + 1]).all(axis=1)
        score = np.where(first, log_likelihood / temperature, -np.inf)
        p = np.exp(score - score.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)
