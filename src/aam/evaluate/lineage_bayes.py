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
neighbours, not over every lineage of the reference, so a read is scored against the few hundred
lineages that the neighbours of its block of 64 reads name, where classify-sklearn scores every
lineage; the mass outside the neighbours is negligible for the taxa the vote can name (on the tuning
protocols the full and the narrowed posterior, at temperature 1, gave genus F within 0.003).
Hand-written rather than scikit-learn's MultinomialNB because MultinomialNB scores every class and
fits through a dense (reads x classes) label matrix; the features are scikit-learn's own
(`hashed_7mers` computes the same matrix faster).
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

ALPHA = 0.001  # MultinomialNB's smoothing in q2-feature-classifier's default classifier
N_FEATURES = 8192
K = 7


def q2_kmer_features():
    """q2-feature-classifier's default feature extractor: hashed 7-mer counts, L2-normalised per read."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        analyzer="char_wb", n_features=N_FEATURES, ngram_range=(K, K), alternate_sign=False
    )


def hashed_7mers(sequences: list[str]) -> sp.csr_matrix:
    """`q2_kmer_features().transform(sequences)`, the same matrix, computed without its per-n-gram
    Python loop, which cost more than the rest of `aam classify`'s naive Bayes check together.

    char_wb pads each read with a space on both sides, so a read of A/C/G/T (either case) of length
    L >= 7 gives its L - 6 7-mers and two edge n-grams (a space and its first 6 bases, its last 6 and
    a space). Each n-gram's column is a function of the n-gram alone (MurmurHash3 of its lowercase
    UTF-8 bytes, modulo 8192): those of all 4^7 7-mers and 2 x 4^6 edges are hashed once by
    scikit-learn's own murmurhash3_32 (`_hash_columns`), and the reads' columns are looked up by the
    7-mer codes of the project's KmerTokenizer (the edges' 6-mers are the first 7-mer's first six
    bases and the last 7-mer's last six). Reads with any other character or shorter than 7 go
    through scikit-learn, and so does a batch with a non-ASCII read (upper-casing one can change its
    length, which the tokenizer's concatenated buffer does not allow for).
    """
    from sklearn.preprocessing import normalize

    from aam.data.dna_tokenizers import N_SPECIAL, KmerTokenizer

    n = len(sequences)
    fast = np.zeros(n, dtype=bool)
    x = sp.csr_matrix((n, N_FEATURES))
    if n and "".join(sequences).isascii():
        enc = KmerTokenizer(k=K, stride=1, add_special_tokens=False).batch_encode(sequences)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        windows = mask.sum(axis=1)
        # a window over any character but A/C/G/T is [UNK], below N_SPECIAL
        fast = (windows > 0) & ~(mask & (ids < N_SPECIAL)).any(axis=1)
        rows = np.flatnonzero(fast)
        if len(rows):
            interior, first, last = _hash_columns()
            kmer = ids[rows] - N_SPECIAL
            head = kmer[:, 0] // 4
            tail = kmer[np.arange(len(rows)), windows[rows] - 1] % 4 ** (K - 1)
            row = np.concatenate([np.repeat(rows, windows[rows]), rows, rows])
            col = np.concatenate([interior[kmer[mask[rows]]], first[head], last[tail]])
            x = sp.csr_matrix((np.ones(len(col)), (row, col)), shape=(n, N_FEATURES))
            x.sum_duplicates()
            x = normalize(x, norm="l2", copy=False)
    slow = np.flatnonzero(~fast)
    if len(slow):
        placed = sp.csr_matrix((np.ones(len(slow)), (slow, np.arange(len(slow)))), shape=(n, len(slow)))
        x = sp.csr_matrix(x + placed @ q2_kmer_features().transform([sequences[i] for i in slow]))
    return x


@lru_cache(maxsize=1)
def _hash_columns() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The HashingVectorizer columns of every lowercase 7-mer and of every edge n-gram (a space and
    6 bases, 6 bases and a space), indexed by base-4 code: FeatureHasher's rule on scikit-learn's
    signed MurmurHash3 (seed 0)."""
    from sklearn.utils import murmurhash3_32

    def column(ngram: str) -> int:
        h = murmurhash3_32(ngram, seed=0)
        return (2147483647 - (N_FEATURES - 1)) % N_FEATURES if h == -2147483648 else abs(h) % N_FEATURES

    def words(k: int) -> list[str]:
        return ["".join(p) for p in itertools.product("acgt", repeat=k)]

    interior = np.array([column(w) for w in words(K)], dtype=np.int64)
    first = np.array([column(" " + w) for w in words(K - 1)], dtype=np.int64)
    last = np.array([column(w + " ") for w in words(K - 1)], dtype=np.int64)
    return interior, first, last


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
        x = hashed_7mers(list(sequences))
        member = sp.csr_matrix(
            (np.ones(len(self.class_of)), (self.class_of, np.arange(len(self.class_of)))),
            shape=(n_classes, len(self.class_of)),
        )
        counts = sp.csr_matrix(member @ x)
        # log P(feature | class) = log(N_cf + alpha) - log(N_c + alpha F): the first term is
        # log(alpha) + log1p(N_cf / alpha), whose log(alpha) is the same for every class and drops
        # out of a posterior; log1p(N_cf / alpha) is 0 where the class never had the feature, so the
        # weights stay sparse
        weight = counts.copy()
        weight.data = np.log1p(weight.data / ALPHA)
        # (features x classes): each block of queries takes the columns of its neighbours' classes
        self.weight_by_feature = sp.csc_matrix(weight.T)
        self.log_total = np.log(np.asarray(counts.sum(axis=1)).ravel() + ALPHA * N_FEATURES)

    def log_likelihood(self, sequences: list[str], idx: np.ndarray, block: int = 64) -> np.ndarray:
        """(m, k) naive Bayes log-likelihood of each query under the class of each of its neighbours
        (`idx`: reference indices), less a constant per query. `block` queries at a time are scored
        against the distinct classes of their neighbours only, in one sparse product (on the
        Greengenes reference, blocks of 32-64 took 0.7x the time of 256, 0.5x that of 1,024: a larger
        block scores every query against more classes)."""
        m, k = idx.shape
        out = np.zeros((m, k))
        if m == 0 or k == 0:
            return out
        x = hashed_7mers(list(sequences))
        length = np.asarray(x.sum(axis=1)).ravel()
        for i in range(0, m, block):
            classes = self.class_of[idx[i : i + block]]
            used, position = np.unique(classes, return_inverse=True)
            shared = (x[i : i + block] @ self.weight_by_feature[:, used]).toarray()
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
