"""Taxonomy classifiers of DNA sequences: a k-nearest-neighbour vote with a confidence per rank, and
the k-mer naive Bayes baseline it is judged against.

kNN vote (what `aam classify` runs). The reference is a set of labelled sequences. For each
query, the `candidates` nearest references by cosine similarity of search vectors are found with
one matrix product; their similarity is then, with `kmer_weight` > 0, blended with the exact cosine
similarity of 8-mer presence profiles (|A and B| / sqrt(|A| |B|)), computed for those candidates
only:

    s = (1 - kmer_weight) * cos(search vectors) + kmer_weight * cos(k-mer presence)

The search vectors are, with `search: kmer` (the default), a k-mer sketch: the 8-mer presence
profile times a fixed random +-1 matrix of `sketch_dim` columns, whose cosine approximates the
profiles' cosine (Johnson-Lindenstrauss), so the reference needs no training; with
`search: embedding`, a trained contrastive model's embeddings. The search is exact (every
reference) up to `ann_above` references (50,000); above, faiss's inverted lists compare a read with
the references of its `ann_probe` nearest of `ann_lists` k-means cells (`inverted_lists` says why).
The embedding bought nothing over the sketch on held-out reads (`scripts/eval_taxonomy.py`,
README): the k-mer profile decides, the search vectors only find the neighbourhood fast.

With `align` > 0 (the default) the `align` best candidates by s are aligned to the query
(:mod:`aam.evaluate.read_identity`: banded edit distance, identity = 1 - edits / length) and
re-ranked by identity, which becomes s (ties keep the k-mer order). 8-mer cosine ranks the
neighbourhood coarsely: with the identity, genus F-measure on reads of a genus absent from the
reference rose by 0.05-0.06 and on random folds by 0-0.02 (tuning sample / evaluation,
docs/results.md).

The `k` most similar neighbours vote with weights w = exp((s - s_max) / temperature), so a small
temperature trusts the nearest neighbour and a large one counts heads. With `temperature_length`
set (opt-in; null by default) and alignment identities, `temperature` holds for reads of that many
nt and a read of L nt votes at temperature * temperature_length / L: an identity difference of one
mismatch is 1 / L, so a 421-nt V3-V4 read weighs a neighbour one mismatch farther at
exp(-1 / (421 * 0.02)) = 0.89 of the nearest, a 150-nt read at 0.72. Scaled from 150 nt, one
mismatch weighs the same at any length. On the V3-V4 test reference that moved genus F from level
with q2's naive Bayes to level on random folds (+0.004 against -0.003) but cost left-out genera
(-0.001 against +0.015) and species (-0.019 against +0.042): the same trade as a lower
`genus_identity`, so it is not the default (docs/results.md). Each rank is voted on by the
neighbours that have a name there (a name stands for its whole lineage, so two genera of one name
in two families stay apart); the confidence of a rank is the winning weight divided by the weight
of all k neighbours, so it lies in [0, 1], unnamed neighbours lower it, and it never grows with
depth. (A vote restricted at each rank to the neighbours that agree with the winners above scored
1-2 points lower at genus on the Greengenes benchmark: a family won by unnamed neighbours hid the
genus its named members agreed on.) With identities, the genus and species votes count one more,
virtual neighbour at identity `genus_identity` that names no genus: weight
exp((genus_identity - s_max) / temperature) joins the total, so a read whose nearest reference is
well below that identity (a genus the reference lacks; Yarza et al. 2014 put genera at 94.5 %
identity of full-length genes, V4 reads vary more) keeps its family but not a genus, while one with
close neighbours barely notices. A hard cut-off at that identity cost more genus recall on random
folds than it saved over-classification.

One identity cannot fit every genus: 150-nt V4 reads of one genus lie within 1-15 % of each other
depending on the genus. So, with `genus_floor_margin` set (off by default since the naive Bayes
check below did better without them), each genus of the reference
gets a floor: the lowest identity at which one of its members finds its nearest other member (each
member classified against the reference without itself, among its `k` neighbours; genera of one
member get none). A read whose best identity to its winning genus lies more than a margin below that
genus's floor is farther from the genus than its members are from each other: its genus and species
confidences become 0, so it stops at the family. The margin is `genus_floor_margin` +
`genus_floor_scale` / n, n the members that found a mate: a floor is the lowest of n draws, and a new
member falls below the lowest of n with chance 1 / (n + 1), so a genus known from few members is
given more room. Chosen on the 15,000 Greengenes reads outside the evaluation sample
(`scripts/tune_classify.py`, docs/results.md): on references of about 13,000 reads it raised
genus F on reads of left-out genera from 0.52 to 0.62 (of left-out small genera from 0.50 to 0.60)
and cost 0.009 on held-out reads of known genera; on references of 3,333 reads it cost 0.026.

With `bayes_temperature` set (the default), no rank is surer than q2-feature-classifier's naive
Bayes: each rank's confidence becomes the smaller of the vote's and the naive Bayes posterior of the
voted taxon over the distinct lineages of the read's `k` neighbours
(:mod:`aam.evaluate.lineage_bayes`, which says why). The vote tells how close a read is to a
genus's members, naive Bayes how well the genus's pooled k-mers explain it; a read of a genus the
reference lacks passes the first and fails the second.

Truncation follows q2-feature-classifier's classify-sklearn: the assignment is cut after the
deepest rank whose confidence is at least the threshold (default 0.25: this confidence is a share of
neighbour weight, not naive Bayes's posterior, so q2's 0.7 does not carry over), and the confidence
reported is that rank's; a query whose kingdom is below the threshold is "Unassigned", with the
confidence of its best kingdom. Species is cut at a fraction of the threshold
(`species_threshold_scale`, default 0.6: 0.15 at 0.25). Most references name no species (5 % of
the 20,000 Greengenes 13_8 V4 reads of `../shared` name one), and an unnamed neighbour lowers the
vote's share as it does at every rank, so a species that every neighbour naming a species agrees
on still scores far below the genus above it. The scale was chosen on the tuning sides of both
amplicons (species F on held-out reads and on left-out species, against q2's naive Bayes;
docs/results.md). A read without one valid k-mer (all N, shorter than k) carries no
evidence: it is "Unassigned" with confidence 0, whatever its nearest references (an embedding of
nothing but padding still lands somewhere, and used to vote it into k__Bacteria with confidence 1).

Naive Bayes (the baseline of q2-feature-classifier and RDP): 8-mer presence, multinomial naive
Bayes, alpha 0.001, uniform class prior.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aam.evaluate.lineage_bayes import LineageBayes
from aam.evaluate.read_identity import encode, pair_identity

RANKS = ["kingdom", "phylum", "class", "order", "family", "genus", "species"]
PREFIXES = ["k__", "p__", "c__", "o__", "f__", "g__", "s__"]
log = logging.getLogger(__name__)
GENUS = RANKS.index("genus")
# the median best identity of a batch of reads below which the alignment is taken not to fit: V4
# reads against full-length references score about 0.5 at best, while on 150-nt V4 references even a
# read whose genus is absent has a nearest reference at 0.85-0.95 (docs/results.md)
ANCHORED_IDENTITY = 0.7
TABLE_COLUMNS = ["Feature ID", "Taxon", "Confidence"]


# ------------------------------------------------------------------------------------- k-mers
def kmer_matrix(seqs: list[str], k: int = 8, binary: bool = True) -> sp.csr_matrix:
    """(n, 4^k) sparse k-mer presence (or counts); k-mers with N or other codes are skipped."""
    from aam.data.dna_tokenizers import N_SPECIAL, KmerTokenizer

    tok = KmerTokenizer(k=k, stride=1, add_special_tokens=False)
    enc = tok.batch_encode(list(seqs))
    ids, mask = enc["input_ids"], enc["attention_mask"] & (enc["input_ids"] >= N_SPECIAL)
    rows = np.broadcast_to(np.arange(len(seqs))[:, None], ids.shape)[mask]
    cols = ids[mask] - N_SPECIAL
    m = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(len(seqs), 4**k))
    m.sum_duplicates()
    if binary:
        m.data[:] = 1.0
    return m


def naive_bayes_predict(train_seqs, train_y, test_seqs, k: int = 8, alpha: float = 0.001) -> np.ndarray:
    from sklearn.naive_bayes import MultinomialNB

    nb = MultinomialNB(alpha=alpha, fit_prior=False)
    nb.fit(kmer_matrix(list(train_seqs), k), np.asarray(train_y))
    return nb.predict(kmer_matrix(list(test_seqs), k))


def knn_predict(train_x: np.ndarray, train_y, test_x: np.ndarray, k: int = 5) -> np.ndarray:
    """Cosine kNN at one rank, votes weighted by 1 / cosine distance."""
    import torch

    a = torch.nn.functional.normalize(torch.as_tensor(train_x, dtype=torch.float32), dim=1)
    b = torch.nn.functional.normalize(torch.as_tensor(test_x, dtype=torch.float32), dim=1)
    train_y = np.asarray(train_y, dtype=object)
    classes, codes = np.unique(train_y.astype(str), return_inverse=True)
    k = min(k, len(a))
    preds = []
    for i in range(0, len(b), 2048):
        sim, idx = (b[i : i + 2048] @ a.T).topk(k, dim=1)
        votes = torch.zeros(len(idx), len(classes))
        # inverse cosine distance (sklearn's weights="distance"): the nearest neighbours dominate
        votes.scatter_add_(1, torch.as_tensor(codes[idx.numpy()]), 1.0 / (1.0 - sim).clamp_min(1e-6))
        preds.append(votes.argmax(1).numpy())
    return classes[np.concatenate(preds)] if preds else np.array([], dtype=object)


def kmer_sets(seqs: list[str], k: int = 8) -> np.ndarray:
    """(n, L) int64 rows: each sequence's distinct k-mer codes (0 .. 4^k - 1), padded with 4^k.

    k-mers with N or another ambiguity code are left out, as in `kmer_matrix`.
    """
    from aam.data.dna_tokenizers import N_SPECIAL, KmerTokenizer

    enc = KmerTokenizer(k=k, stride=1, add_special_tokens=False).batch_encode(list(seqs))
    pad = 4**k
    ids = enc["input_ids"].astype(np.int64) - N_SPECIAL
    ids = np.where(enc["attention_mask"].astype(bool) & (ids >= 0), ids, pad)
    ids.sort(axis=1)
    if ids.shape[1] > 1:
        ids[:, 1:][ids[:, 1:] == ids[:, :-1]] = pad  # a repeated k-mer counts once
    return ids


def has_valid_kmer(seqs: list[str], k: int = 8, sets: np.ndarray | None = None) -> np.ndarray:
    """(n,) bool: whether each sequence holds at least one k-mer of A, C, G, T (`kmer_sets`'s rule;
    `sets`: their `kmer_sets` rows, where already computed)."""
    if not len(seqs):
        return np.zeros(0, dtype=bool)
    if sets is None:
        sets = kmer_sets(list(seqs), k)
    return (sets < 4**k).any(axis=1)


def read_lengths(seqs: list[str]) -> np.ndarray:
    """(m,) the reads' lengths in nt, which scale the vote's temperature (`temperature_length`)."""
    return np.fromiter((len(seq) for seq in seqs), dtype=np.int64, count=len(seqs))


def candidate_kmer_cosine(query: np.ndarray, ref: np.ndarray, idx: np.ndarray, k: int = 8) -> np.ndarray:
    """Cosine similarity |A and B| / sqrt(|A| |B|) of k-mer sets (`kmer_sets` rows) for the (m, c)
    query/reference pairs of `idx`: only the m * c pairs cost anything, never all references."""
    import torch

    m, c = idx.shape
    out = np.zeros((m, c), np.float32)
    if m == 0 or c == 0:
        return out
    pad = 4**k
    shared = torch.from_numpy(shared_kmers(query, ref, idx, k))
    nq = torch.from_numpy((query < pad).sum(1)).float()
    nr = torch.from_numpy((ref < pad).sum(1)).float()
    # torch's float32 sqrt can round the last bit otherwise than NumPy's (sqrt(16940): 130.15375 vs
    # 130.15376; 2 of 100,000 pairs), and `aam classify`'s ranks hang on ties: the scores are
    # computed in torch, in blocks of the shape they always had, so they stay bit for bit as before
    block = max(1, (1 << 24) // (pad + 1))
    for i in range(0, m, block):
        cand = torch.from_numpy(idx[i : i + block])
        norm = (nq[i : i + len(cand), None] * nr[cand]).sqrt().clamp_min(1e-12)
        out[i : i + len(cand)] = (shared[i : i + len(cand)] / norm).numpy()
    return out


def shared_kmers(
    query: np.ndarray, ref: np.ndarray, idx: np.ndarray, k: int = 8, block: int = 8
) -> np.ndarray:
    """(m, c) float32 counts |A and B| of the k-mer sets (`kmer_sets` rows) of the query/reference
    pairs of `idx`. `block` queries at a time mark their k-mers in presence tables of 4^k bytes each
    (512 KB for 8-mers: they stay in cache, where one table per 256 queries did not) and their
    candidates' k-mers are looked up there."""
    m, c = idx.shape
    pad = 4**k
    out = np.zeros((m, c), np.float32)
    table = np.zeros(block * (pad + 1), np.uint8)
    starts = np.arange(block, dtype=np.int64) * (pad + 1)
    for i in range(0, m, block):
        b = min(block, m - i)
        marks = query[i : i + b] + starts[:b, None]
        table[marks] = 1
        table[starts[:b] + pad] = 0  # padding is no k-mer
        looked = ref[idx[i : i + b]] + starts[:b, None, None]
        out[i : i + b] = table.take(looked).sum(axis=2, dtype=np.int32)
        table[marks] = 0
    return out


# ------------------------------------------------------------------------------------- lineages
def lineage_codes(lineage: np.ndarray) -> tuple[np.ndarray, list[tuple]]:
    """(n, R) names (None = unknown) -> (n, R) int codes of the lineage prefixes, and the prefixes.

    A code stands for the whole path down to its rank, so two genera of one name in two families
    stay apart; an unknown name is -1 (and so is everything below an unknown rank's prefix only
    where the deeper name is unknown too).
    """
    lineage = np.asarray(lineage, dtype=object)
    n, n_ranks = lineage.shape
    codes = np.full((n, n_ranks), -1, dtype=np.int64)
    prefixes: list[tuple] = []
    index: dict[tuple, int] = {}
    for i in range(n):
        path: tuple = ()
        for r in range(n_ranks):
            name = lineage[i, r]
            known = name is not None and name == name and name != ""
            path = path + ((str(name) if known else None),)
            if known:
                code = index.get(path)
                if code is None:
                    code = index[path] = len(prefixes)
                    prefixes.append(path)
                codes[i, r] = code
    return codes, prefixes


def rank_vote(weights: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted vote of k neighbours at every rank.

    weights: (m, k) non-negative; labels: (m, k, R) lineage codes of the neighbours (-1 unknown).
    At each rank the neighbours with a name there vote; the winner's confidence is its weight over
    the weight of all k neighbours, so unnamed neighbours lower it. Returns (m, R) winning codes
    (-1: no neighbour has a name) and (m, R) confidences in [0, 1].

    A code is a whole lineage path, so a rank's winner carries its ancestors, and confidences never
    grow with depth (the winner's ancestors weigh at least as much). Winners of two ranks can
    disagree only where neither holds more than half the weight; `truncate` cuts there.
    """
    m, k, n_ranks = labels.shape
    total = weights.sum(axis=1)
    total = np.where(total > 0, total, 1.0)
    chosen = np.full((m, n_ranks), -1, dtype=np.int64)
    conf = np.zeros((m, n_ranks), dtype=np.float64)
    rows = np.arange(m)
    for r in range(n_ranks):
        lab = labels[:, :, r]
        valid = lab >= 0
        same = lab[:, :, None] == lab[:, None, :]  # (m, k, k)
        score = np.einsum("mjl,ml->mj", same, np.where(valid, weights, 0.0))
        score = np.where(valid, score, -1.0)
        best = score.argmax(axis=1)
        ok = score[rows, best] > 0
        chosen[:, r] = np.where(ok, lab[rows, best], -1)
        conf[:, r] = np.where(ok, score[rows, best] / total, 0.0)
    return chosen, np.clip(conf, 0.0, 1.0)


def truncate(
    names: np.ndarray,
    confidence: np.ndarray,
    threshold: float | np.ndarray = 0.7,
    consistent: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray]:
    """Taxon strings cut after the deepest rank with confidence >= threshold, and its confidence.

    names: (m, R) per-rank names (None: none); confidence: (m, R); threshold: one for every rank or
    (R,) one per rank (`KnnSettings.rank_thresholds`); consistent: (m, R), False where a
    rank's winner does not descend from the winner above it (default: all True). A rank counts only
    while every rank above it is kept, so "k__A; p__B" never skips a rank. Nothing kept:
    "Unassigned" with the first rank's confidence.
    """
    names = np.asarray(names, dtype=object)
    confidence = np.asarray(confidence, dtype=np.float64)
    keep = (confidence >= threshold) & np.vectorize(lambda v: v is not None, otypes=[bool])(names)
    if consistent is not None:
        keep &= np.asarray(consistent, dtype=bool)
    keep = np.cumprod(keep, axis=1).astype(bool)
    depth = keep.sum(axis=1)
    taxa, conf = [], np.empty(len(names), dtype=np.float64)
    for i, d in enumerate(depth):
        if d == 0:
            taxa.append("Unassigned")
            conf[i] = confidence[i, 0] if confidence.shape[1] else 0.0
        else:
            taxa.append("; ".join(f"{PREFIXES[r]}{names[i, r]}" for r in range(d)))
            conf[i] = confidence[i, d - 1]
    return taxa, conf


def taxonomy_table(ids, taxa: list[str], confidence: np.ndarray) -> pd.DataFrame:
    """q2-feature-classifier's table: Feature ID, Taxon, Confidence (FeatureData[Taxonomy])."""
    return pd.DataFrame(
        {
            TABLE_COLUMNS[0]: np.asarray(ids, dtype=object).astype(str),
            TABLE_COLUMNS[1]: taxa,
            TABLE_COLUMNS[2]: np.asarray(confidence, dtype=np.float64),
        }
    )


# ------------------------------------------------------------------------------------ classifier
SEARCHES = ("kmer", "embedding")


def kmer_sketch(sets: np.ndarray, k: int = 8, dim: int = 256, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 random projection of the L2-normalised k-mer presence profiles of `kmer_sets`
    rows (the sets that the k-mer cosine uses too: the reads are tokenised once).

    A fixed +-1 matrix (seeded, so the reference's and the queries' sketches agree) keeps cosine
    similarities within about 1 / sqrt(dim) of the profiles' (Johnson-Lindenstrauss); enough to find
    the candidates that the exact k-mer cosine then ranks. Hand-written because scikit-learn's
    SparseRandomProjection draws its matrix at fit time and keeps it, which every classifier
    instance would repeat; this one is a pure function of (k, dim, seed).
    """
    x = presence_matrix(sets, k)
    norms = np.sqrt(np.asarray(x.sum(axis=1)).ravel())
    x = sp.diags(1.0 / np.maximum(norms, 1.0)) @ x
    return np.asarray(x @ _projection(k, dim, seed), dtype=np.float32)


def presence_matrix(sets: np.ndarray, k: int = 8) -> sp.csr_matrix:
    """`kmer_matrix(seqs, k)` (binary) of the `kmer_sets(seqs, k)` rows: the same CSR matrix, sorted
    indices and all, without tokenising the sequences again."""
    rows, pos = np.nonzero(sets < 4**k)
    cols = sets[rows, pos]
    m = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(len(sets), 4**k))
    m.sum_duplicates()
    return m


@lru_cache(maxsize=2)
def _projection(k: int, dim: int, seed: int) -> np.ndarray:
    """The (4^k, dim) +-1 / sqrt(dim) matrix of `kmer_sketch` (64 MB for 8-mers and 256 columns)."""
    signs = np.random.default_rng(seed).integers(0, 2, size=(4**k, dim), dtype=np.int8)
    return (signs.astype(np.float32) * 2.0 - 1.0) / np.float32(np.sqrt(dim))


def inverted_lists(vectors: np.ndarray, lists: int, probe: int):
    """faiss's inverted lists (`IndexIVFFlat`, inner product) over normalised search vectors: k-means
    cuts them into `lists` cells and a query is compared with the members of its `probe` nearest
    cells only, not with every reference.

    Why: the exact search multiplies every read's sketch with every reference's, so its time grows
    with the reference. On the whole Greengenes 13_8 97 % set as 150-nt V4 reads (81,316) that was 75 %
    of classification time, and `aam classify` read 0.62x as many reads/s as q2's naive Bayes, which
    scores lineages. With 1,024 lists and 32 probed, the search took a sixth of the time and found
    0.987 of the exact 20 nearest among its 50 candidates (docs/results.md). faiss is the library
    made for this search; its clustering is seeded, so the same reference gives the same lists, and
    gave the same neighbours with one thread as with two.
    """
    import faiss
    import torch

    faiss.omp_set_num_threads(torch.get_num_threads())  # the threads `aam classify --threads` gave torch
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    quantizer = faiss.IndexFlatIP(data.shape[1])
    index = faiss.IndexIVFFlat(quantizer, data.shape[1], min(lists, len(data)), faiss.METRIC_INNER_PRODUCT)
    index.train(data)
    index.add(data)
    index.nprobe = min(probe, index.nlist)
    return index


@dataclass
class KnnSettings:
    """Defaults chosen on a tuning split that the evaluation never scores (README, Taxonomy): a
    sample of 5,000 Greengenes reads disjoint from the evaluated one (`eval_taxonomy.py --tune`):
    the settings and threshold whose smaller genus F-measure lead over q2's naive Bayes (at its 0.7),
    of random and novel-genus folds, was largest. `align` 20 and 50 `candidates` score within 0.005
    of 30 and 100 there at two thirds of the time. `bayes_temperature` (with the floors off and the
    threshold kept) was chosen later across two amplicons, on the 15,000 V4 reads outside the
    evaluated sample and on a V3-V4 tuning reference disjoint from the V3-V4 test reference
    (`scripts/amplicon_gg13_8.py`, `scripts/tune_classify.py`): the largest smallest genus F lead
    over q2's naive Bayes across held-out reads, left-out genera and left-out small genera of both
    (V4 alone chose 2; both choose 1). `species_threshold_scale` likewise, on the same tuning sides:
    the largest smallest species F lead over q2 across held-out reads and left-out species of both
    amplicons (docs/results.md). `ann_above`, `ann_lists` and `ann_probe` set speed against the
    search's recall, measured on the whole Greengenes 13_8 set as V4 reads, where accuracy held
    (docs/results.md); below `ann_above` references the search is exact, as before them."""

    k: int = 20
    candidates: int = 50
    kmer_weight: float = 1.0
    kmer: int = 8
    align: int = 20
    genus_identity: float = 0.9
    genus_floor_margin: float | None = None
    genus_floor_scale: float = 0.02
    bayes_temperature: float | None = 1.0
    temperature: float = 0.02
    temperature_length: int | None = None
    threshold: float = 0.25
    species_threshold_scale: float = 0.6
    search: str = "kmer"
    sketch_dim: int = 256
    ann_above: int | None = 50000
    ann_lists: int = 1024
    ann_probe: int = 32

    @classmethod
    def from_dict(cls, d: dict | None) -> KnnSettings:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown kNN classifier settings {sorted(unknown)}")
        s = cls(**d)
        if s.k < 1 or s.candidates < s.k:
            raise ValueError(f"need 1 <= k <= candidates, got k={s.k}, candidates={s.candidates}")
        if s.align and s.align < s.k:
            raise ValueError(f"align must be 0 or >= k, got align={s.align}, k={s.k}")
        if not 0.0 <= s.kmer_weight <= 1.0:
            raise ValueError(f"kmer_weight must be in [0, 1], got {s.kmer_weight}")
        if not 0.0 <= s.genus_identity <= 1.0:
            raise ValueError(f"genus_identity must be in [0, 1], got {s.genus_identity}")
        if s.genus_floor_margin is not None and not 0.0 <= s.genus_floor_margin <= 1.0:
            raise ValueError(f"genus_floor_margin must be null or in [0, 1], got {s.genus_floor_margin}")
        if not 0.0 <= s.genus_floor_scale <= 1.0:
            raise ValueError(f"genus_floor_scale must be in [0, 1], got {s.genus_floor_scale}")
        if s.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {s.temperature}")
        if s.temperature_length is not None and s.temperature_length < 1:
            raise ValueError(f"temperature_length must be null or >= 1, got {s.temperature_length}")
        if s.bayes_temperature is not None and s.bayes_temperature <= 0:
            raise ValueError(f"bayes_temperature must be null or > 0, got {s.bayes_temperature}")
        if not 0.0 <= s.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {s.threshold}")
        if not 0.0 <= s.species_threshold_scale <= 1.0:
            raise ValueError(f"species_threshold_scale must be in [0, 1], got {s.species_threshold_scale}")
        if s.search not in SEARCHES:
            raise ValueError(f"search must be one of {list(SEARCHES)}, got {s.search!r}")
        if s.sketch_dim < 1:
            raise ValueError(f"sketch_dim must be >= 1, got {s.sketch_dim}")
        if s.ann_above is not None and s.ann_above < 1:
            raise ValueError(f"ann_above must be null or >= 1, got {s.ann_above}")
        if s.ann_lists < 1 or not 1 <= s.ann_probe <= s.ann_lists:
            raise ValueError(f"need ann_lists >= 1 and 1 <= ann_probe <= ann_lists, got ann_lists="
                             f"{s.ann_lists}, ann_probe={s.ann_probe}")
        return s

    def rank_thresholds(self, n_ranks: int = len(RANKS)) -> np.ndarray:
        """(n_ranks,) the confidence each rank needs: `threshold`, and at species (the seventh rank)
        `threshold` x `species_threshold_scale` (see the module docstring)."""
        out = np.full(n_ranks, self.threshold, dtype=np.float64)
        species = RANKS.index("species")
        if n_ranks > species:
            out[species] = self.threshold * self.species_threshold_scale
        return out


class KnnTaxonomyClassifier:
    """kNN vote over a labelled reference (search vectors + k-mer profiles); see the module docstring.

    `vectors`: the references' embeddings with `search: embedding`; None with `search: kmer`, where
    the sketches are computed from `sequences`.
    """

    def __init__(
        self,
        vectors: np.ndarray | None,
        lineage: np.ndarray,
        sequences: list[str] | None = None,
        settings: KnnSettings | None = None,
    ) -> None:
        import torch

        self.settings = settings or KnnSettings()
        lineage = np.asarray(lineage, dtype=object)
        s = self.settings
        if (s.search == "kmer" or s.kmer_weight > 0 or s.align or s.bayes_temperature) and sequences is None:
            raise ValueError(
                "search: kmer, kmer_weight > 0, align > 0 or bayes_temperature needs the reference sequences"
            )
        sets = kmer_sets(list(sequences), s.kmer) if s.search == "kmer" or s.kmer_weight > 0 else None
        if self.settings.search == "kmer":
            vectors = kmer_sketch(sets, s.kmer, s.sketch_dim)
        if vectors is None or lineage.ndim != 2 or len(lineage) != len(vectors) or len(vectors) == 0:
            n = 0 if vectors is None else len(vectors)
            raise ValueError(f"{n} reference vectors for {len(lineage)} lineages")
        self.vectors = torch.nn.functional.normalize(torch.as_tensor(vectors, dtype=torch.float32), dim=1)
        self.index = None
        if s.ann_above is not None and len(self.vectors) > s.ann_above:
            self.index = inverted_lists(self.vectors.numpy(), s.ann_lists, s.ann_probe)
        self.codes, self.prefixes = lineage_codes(lineage)
        self.kmers = sets if s.kmer_weight > 0 else None
        self.bases = encode(list(sequences), ref=True) if s.align else None
        self._warned = False
        self.bayes = LineageBayes(list(sequences), self.codes) if s.bayes_temperature is not None else None
        # per genus code: its floor and the members that found a mate (see the module docstring)
        self.genus_floor: np.ndarray | None = None
        self.genus_mates: np.ndarray | None = None
        if s.align and s.genus_floor_margin is not None:
            self._genus_floors(list(sequences), sets)

    def _genus_floors(self, seqs: list[str], sets: np.ndarray | None) -> None:
        """Sets `genus_floor`, per genus code the lowest identity at which a member finds its nearest
        other member among its `k` neighbours (NaN: no member finds one, or not a genus), and
        `genus_mates`, the members that found one; both stay None where the alignment does not fit
        the reference (see the module docstring)."""
        genus = self.codes[:, GENUS]
        members = np.bincount(genus[genus >= 0], minlength=len(self.prefixes))
        rows = np.flatnonzero((genus >= 0) & (members[np.maximum(genus, 0)] >= 2))
        floor = np.full(len(self.prefixes), np.nan)
        mated = np.zeros(len(self.prefixes), dtype=np.int64)
        if sets is None and len(rows):
            sets = kmer_sets(seqs, self.settings.kmer)
        for i in range(0, len(rows), 2048):
            part = rows[i : i + 2048]
            vectors = None if self.settings.search == "kmer" else self.vectors[part].numpy()
            sim, idx, aligned = self._neighbours(vectors, [seqs[j] for j in part], sets[part])
            if not aligned:
                return
            mate = (self.codes[idx, GENUS] == genus[part, None]) & (idx != part[:, None])
            nearest_mate = np.where(mate, sim, -np.inf).max(axis=1)
            found = np.isfinite(nearest_mate)
            np.fmin.at(floor, genus[part][found], nearest_mate[found])
            np.add.at(mated, genus[part][found], 1)
        self.genus_floor, self.genus_mates = floor, mated

    def genus_lowest(self) -> np.ndarray | None:
        """(len(prefixes),) per genus code: the lowest identity to the genus at which a read may be
        named it, its floor less `genus_floor_margin` + `genus_floor_scale` / mates (NaN: no floor);
        None without floors."""
        s = self.settings
        if self.genus_floor is None or s.genus_floor_margin is None:
            return None
        margin = s.genus_floor_margin + s.genus_floor_scale / np.maximum(self.genus_mates, 1)
        return self.genus_floor - margin

    def neighbours(
        self, vectors: np.ndarray | None, seqs: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(m, k) similarities (descending) and reference indices of each query's k neighbours."""
        sets = kmer_sets(list(seqs), self.settings.kmer) if seqs is not None else None
        sim, idx, _ = self._neighbours(vectors, seqs, sets)
        return sim, idx

    def _neighbours(self, vectors, seqs, sets) -> tuple[np.ndarray, np.ndarray, bool]:
        """`neighbours`, and whether the similarities are alignment identities; `sets`: the
        queries' `kmer_sets` (None without sequences)."""
        import torch

        s = self.settings
        if s.search == "kmer":
            if seqs is None:
                raise ValueError("search: kmer needs the query sequences")
            vectors = kmer_sketch(sets, s.kmer, s.sketch_dim)
        q = torch.nn.functional.normalize(torch.as_tensor(vectors, dtype=torch.float32), dim=1)
        rescored = self.kmers is not None or self.bases is not None
        n_cand = min(s.candidates if rescored else s.k, len(self.vectors))
        if not len(q):
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int64), False
        sim, idx = self._search(q, n_cand)
        if self.kmers is not None:
            if seqs is None or len(seqs) != len(q):
                raise ValueError("kmer_weight > 0 needs the query sequences")
            kcos = candidate_kmer_cosine(sets, self.kmers, idx, s.kmer)
            sim = (1.0 - s.kmer_weight) * sim + s.kmer_weight * kcos
        order = np.argsort(-sim, axis=1, kind="stable")[:, : max(min(s.k, n_cand), min(s.align, n_cand))]
        sim, idx = np.take_along_axis(sim, order, 1), np.take_along_axis(idx, order, 1)
        if self.bases is not None:  # the best `align` candidates, re-ranked by alignment identity
            if seqs is None or len(seqs) != len(q):
                raise ValueError("align > 0 needs the query sequences")
            rows = np.repeat(np.arange(len(idx)), idx.shape[1])
            ident = pair_identity(encode(list(seqs)), self.bases, rows, idx.ravel()).reshape(idx.shape)
            if np.median(ident.max(axis=1)) >= ANCHORED_IDENTITY:
                order = np.argsort(-ident, axis=1, kind="stable")  # ties keep the k-mer order
                k = min(s.k, n_cand)
                ident, idx = np.take_along_axis(ident, order, 1), np.take_along_axis(idx, order, 1)
                return ident[:, :k].astype(np.float32), idx[:, :k], True
            if not self._warned:
                log.warning(
                    "most reads are below %.0f %% identity to all their nearest references: the "
                    "alignment, anchored at both starts, does not fit (full-length references for "
                    "amplicon reads?); the k-mer similarity decides instead. Cut the reference to the "
                    "reads' region for the alignment identity.",
                    100 * ANCHORED_IDENTITY,
                )
                self._warned = True
        k = min(s.k, n_cand)
        return sim[:, :k].astype(np.float32), idx[:, :k], False

    def _search(self, q, n_cand: int) -> tuple[np.ndarray, np.ndarray]:
        """(m, n_cand) cosine similarities (descending) and indices of each query's nearest references
        by the search vectors (`q`: normalised, a torch tensor): the exact product with every
        reference, or, for a reference of more than `ann_above` sequences, its inverted lists (see
        `inverted_lists`). A query whose probed lists hold fewer than `n_cand` references is
        searched exactly."""
        if self.index is not None:
            sim, idx = self.index.search(q.numpy(), n_cand)
            short = np.flatnonzero((idx < 0).any(axis=1))
            if len(short):
                sim[short], idx[short] = self._exact(q[short], n_cand)
            return sim.astype(np.float32, copy=False), idx.astype(np.int64, copy=False)
        return self._exact(q, n_cand)

    def _exact(self, q, n_cand: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        sims, idxs = [], []
        with torch.no_grad():
            # a few hundred queries at a time: the similarity block stays in cache for top-k
            for i in range(0, len(q), 256):
                sim, idx = (q[i : i + 256] @ self.vectors.T).topk(n_cand, dim=1)
                sims.append(sim)
                idxs.append(idx)
        return torch.cat(sims).numpy().astype(np.float32), torch.cat(idxs).numpy()

    def predict(
        self, vectors: np.ndarray | None, seqs: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(m, R) names per rank (None: no name) and (m, R) confidences in [0, 1]."""
        names, conf, _ = self.vote(vectors, seqs)
        return names, conf

    def vote(self, vectors, seqs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(m, R) names, (m, R) confidences and (m, R) consistency (the rank's winner descends from
        the winner above): what `truncate` cuts at any threshold (the evaluation sweeps them)."""
        sets = kmer_sets(list(seqs), self.settings.kmer) if seqs is not None else None
        sim, idx, aligned = self._neighbours(vectors, seqs, sets)
        blank = None if seqs is None else ~has_valid_kmer(list(seqs), self.settings.kmer, sets)
        lengths = None if seqs is None else read_lengths(seqs)
        return self.vote_neighbours(sim, idx, aligned, blank, self.lineage_log_likelihood(seqs, idx), lengths)

    def lineage_log_likelihood(self, seqs: list[str] | None, idx: np.ndarray) -> np.ndarray | None:
        """(m, k) naive Bayes log-likelihoods of the queries under their neighbours' lineages
        (:class:`aam.evaluate.lineage_bayes.LineageBayes`); None without the naive Bayes check."""
        if self.bayes is None:
            return None
        if seqs is None or len(seqs) != len(idx):
            raise ValueError("bayes_temperature needs the query sequences")
        return self.bayes.log_likelihood(list(seqs), idx)

    def vote_neighbours(
        self,
        sim: np.ndarray,
        idx: np.ndarray,
        aligned: bool = True,
        blank: np.ndarray | None = None,
        lineage_ll: np.ndarray | None = None,
        lengths: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`vote` of given neighbours (`neighbours`' similarities and indices; `aligned`: they are
        alignment identities; `blank`: (m,) reads without a valid k-mer; `lineage_ll`: their
        `lineage_log_likelihood`, needed while `bayes_temperature` is set; `lengths`: (m,) the reads'
        lengths (`read_lengths`), needed with identities while `temperature_length` is set), under
        the current settings: a tuning script finds the neighbours once and votes under many
        settings."""
        s = self.settings
        temperature = self._temperatures(aligned, lengths, len(sim))
        # float32 like the similarities, so that 150-nt reads vote exactly as with one temperature
        weights = np.exp((sim - sim[:, :1]) / temperature.astype(np.float32)[:, None]).astype(
            np.float64) if sim.size else sim
        chosen, conf = rank_vote(weights, self.codes[idx])
        if aligned and s.genus_identity > 0:
            # a virtual neighbour at `genus_identity` that names no genus (see the module docstring)
            unknown = np.exp((s.genus_identity - sim[:, 0].astype(np.float64)) / temperature)
            total = weights.sum(axis=1)
            conf[:, GENUS:] *= (total / (total + unknown))[:, None]
        lowest = self.genus_lowest()
        if aligned and lowest is not None:
            # farther from the winning genus than its members are from each other: no genus
            won = chosen[:, GENUS]
            to_winner = np.where(self.codes[idx, GENUS] == won[:, None], sim, -np.inf).max(axis=1)
            lowest_here = np.where(won >= 0, lowest[np.maximum(won, 0)], np.nan)
            conf[to_winner < lowest_here, GENUS:] = 0.0
        if s.bayes_temperature is not None:
            if lineage_ll is None or self.bayes is None:
                raise ValueError("bayes_temperature needs the neighbours' lineage log-likelihoods")
            # no rank is surer than naive Bayes's posterior of the voted taxon (see the module docstring)
            posterior = self.bayes.posterior(lineage_ll, idx, s.bayes_temperature)
            voted = (self.codes[idx] == chosen[:, None, :]) & (chosen[:, None, :] >= 0)
            conf = np.minimum(conf, np.einsum("mk,mkr->mr", posterior, voted))
        if blank is not None:  # no valid k-mer: no vote (see the module docstring)
            chosen[blank], conf[blank] = -1, 0.0
        n_ranks = self.codes.shape[1]
        names = np.full(chosen.shape, None, dtype=object)
        consistent = np.ones(chosen.shape, dtype=bool)
        for r in range(n_ranks):
            hit = chosen[:, r] >= 0
            names[hit, r] = [self.prefixes[c][r] for c in chosen[hit, r]]
            if r:  # the winner's path must pass through the winner of the rank above
                consistent[hit, r] = [
                    self.prefixes[c][r - 1] == above
                    for c, above in zip(chosen[hit, r], names[hit, r - 1], strict=True)
                ]
        return names, conf, consistent

    def _temperatures(self, aligned: bool, lengths: np.ndarray | None, m: int) -> np.ndarray:
        """(m,) float64 vote temperature of each read: `temperature`, scaled by
        `temperature_length` / its length where the similarities are alignment identities (see the
        module docstring)."""
        s = self.settings
        if not aligned or s.temperature_length is None:
            return np.full(m, s.temperature)
        if lengths is None or len(lengths) != m:
            raise ValueError("temperature_length needs the reads' lengths")
        return s.temperature * (s.temperature_length / np.maximum(np.asarray(lengths, np.float64), 1.0))

    def classify(self, ids, vectors: np.ndarray | None, seqs: list[str] | None = None) -> pd.DataFrame:
        """The taxonomy table of the queries, truncated at the settings' confidence thresholds."""
        names, conf, consistent = self.vote(vectors, seqs)
        taxa, confidence = truncate(names, conf, self.settings.rank_thresholds(names.shape[1]), consistent)
        return taxonomy_table(ids, taxa, confidence)
