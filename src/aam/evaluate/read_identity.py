"""Alignment identity of many (read, reference) pairs at once: how `aam classify` ranks and weighs its
nearest neighbours (:mod:`aam.evaluate.taxonomy`).

8-mer cosine similarity finds a read's neighbourhood fast but ranks it coarsely (median nearest
cosine 0.73 with the read's genus in the reference, 0.55 without: docs/results.md); an alignment
identity ranks the few nearest candidates by what the field's rank cut-offs are stated in (Yarza et
al. 2014: genus 94.5 %, family 86.5 % over full-length genes).

The identity is that of a banded edit-distance alignment (unit costs for mismatches and gaps; N
and other codes match nothing), anchored at the reads' starts (amplicons of one primer) with free
trailing gaps (reads cut at different lengths): identity = 1 - edits / the shorter length. An
alignment that needs more than `band` net gaps is not found: it scores as the band allows, lower.
A pair whose lengths differ by more than `band` and at most `max_shift` gets its band widened by
that difference (rounded up to a multiple of 8): reads cut at both primers (V3-V4, 421 nt) differ
in length by their internal indels, which a band of 8 cannot follow beyond 8 net gaps (4.7 % of
same-genus V3-V4 pairs differ by more). That raised `aam classify`'s genus F on V3-V4 and cost 7 %
of its time there, where widening every pair by its difference cost 12 % for the same F
(docs/results.md). Pairs of equal length (every 150-nt V4 read against a 150-nt reference) keep
the band as it is, and so do pairs that differ by more than `max_shift`: a read cut shorter than
its reference, which the free trailing gaps align already, would otherwise pay a band as wide as
the cut.
Hand-written because scikit-bio's `pair_align` costs ~0.35 ms per pair in a Python loop (several
times `aam classify`'s whole time per read for a handful of neighbours), and fast aligners (edlib,
parasail) are no dependency: this one runs the dynamic programme once for all pairs, each row one
NumPy step over every pair's band.
"""

from __future__ import annotations

import numpy as np

_QUERY_CODES = np.full(256, 4, dtype=np.uint8)  # anything but A C G T: 4 in reads, 7 in references,
_REF_CODES = np.full(256, 7, dtype=np.uint8)  # so that an N never equals anything
for _i, _b in enumerate(b"ACGTacgt"):
    _QUERY_CODES[_b] = _REF_CODES[_b] = _i % 4
_QUERY_PAD, _REF_PAD = 5, 6
_INF = 16000  # beyond any edit count: int16 cells while reads are shorter than 16,000 nt


def encode(seqs: list[str], ref: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(n, L) uint8 codes of reads (`ref` False) or references, padded, and (n,) lengths."""
    table, pad = (_REF_CODES, _REF_PAD) if ref else (_QUERY_CODES, _QUERY_PAD)
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    out = np.full((len(seqs), int(lengths.max()) if len(seqs) else 0), pad, dtype=np.uint8)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = table[np.frombuffer(s.encode("ascii", "replace"), dtype=np.uint8)]
    return out, lengths


def pair_identity(
    query: tuple[np.ndarray, np.ndarray],
    ref: tuple[np.ndarray, np.ndarray],
    qi: np.ndarray,
    ri: np.ndarray,
    band: int = 8,
    block: int = 8192,
    max_shift: int = 16,
) -> np.ndarray:
    """(P,) identity in [0, 1] of the pairs (query[qi[p]], ref[ri[p]]), as `encode(reads)` and
    `encode(references, ref=True)` return them (see the module docstring: `band`, widened by a
    length difference above `band` and at most `max_shift`, rounded up to a multiple of 8, so
    that the pairs fall in a few groups of one band each).

    Pairs are aligned `block` at a time: each pair's programme is independent of the others, and a
    block's band rows (17 x 8,192 int16 cells) stay in cache, where 40,000 pairs at once took a
    third longer."""
    qi, ri = np.asarray(qi, dtype=np.int64), np.asarray(ri, dtype=np.int64)
    shift = np.abs(query[1][qi] - ref[1][ri])
    widen = np.where((shift > band) & (shift <= max_shift), -(-shift // 8) * 8, 0)
    out = np.zeros(len(qi), dtype=np.float64)
    for extra in np.unique(widen):
        pairs = np.flatnonzero(widen == extra)
        out[pairs] = np.concatenate([
            _band_identity(query, ref, qi[pairs[i : i + block]], ri[pairs[i : i + block]], band + int(extra))
            for i in range(0, len(pairs), block)
        ])
    return out


def _band_identity(
    query: tuple[np.ndarray, np.ndarray],
    ref: tuple[np.ndarray, np.ndarray],
    qi: np.ndarray,
    ri: np.ndarray,
    band: int,
) -> np.ndarray:
    """`pair_identity` of one block of pairs: the banded programme, one NumPy step per read base."""
    qcodes, qlen = query
    rcodes, rlen = ref
    n_pairs = len(qi)
    if n_pairs == 0:
        return np.zeros(0, dtype=np.float64)
    nq, nr = qlen[qi], rlen[ri]
    rows, w = int(nq.max()), band
    if rows == 0:
        return np.zeros(n_pairs, dtype=np.float64)
    # (position, pair) layouts: row i's band of reference bases j - 1 is the slice [i - 1, i + 2w)
    r = np.full((rows + 2 * w + 1, n_pairs), _REF_PAD, dtype=np.uint8)
    take = min(rcodes.shape[1], rows + w + 1)
    r[w : w + take] = rcodes[ri, :take].T
    q = np.full((rows, n_pairs), _QUERY_PAD, dtype=np.uint8)
    q[: min(rows, qcodes.shape[1])] = qcodes[qi, :rows].T

    cells = np.int16 if rows + _INF < np.iinfo(np.int16).max else np.int32  # +1 per row at most
    offsets = np.arange(-w, w + 1, dtype=cells)[:, None]  # band cell d: column j = i + d
    prev = np.where(offsets >= 0, offsets, _INF).astype(cells).repeat(n_pairs, axis=1)
    cur = np.empty_like(prev)
    best = np.full(n_pairs, _INF, dtype=cells)
    pairs = np.arange(n_pairs)
    for i in range(1, rows + 1):
        np.add(prev, r[i - 1 : i + 2 * w] != q[i - 1], out=cur)  # diagonal: match or mismatch
        np.minimum(cur[:-1], prev[1:] + 1, out=cur[:-1])  # D[i-1][j] + 1: a read base against a gap
        if i <= w:  # the band reaches column 0 (the read against nothing) and beyond
            cur[w - i] = i
            cur[: w - i] = _INF
        for d in range(1, 2 * w + 1):  # D[i][j-1] + 1: a gap in the read, left to right along the band
            np.minimum(cur[d], cur[d - 1] + 1, out=cur[d])
        # free trailing gaps: the read ends (row nq) anywhere in the band, or the reference ends
        ends = np.flatnonzero(nq == i)
        if len(ends):
            inside = (i + offsets <= nr[ends]) & (i + offsets >= 0)
            best[ends] = np.minimum(best[ends], np.where(inside, cur[:, ends], _INF).min(axis=0))
        cross = np.flatnonzero((np.abs(nr - i) <= w) & (i <= nq))
        if len(cross):
            cell = cur[nr[cross] - i + w, pairs[cross]]
            best[cross] = np.minimum(best[cross], cell)
        prev, cur = cur, prev
    shorter = np.maximum(np.minimum(nq, nr), 1)
    return np.clip(1.0 - best / shorter, 0.0, 1.0)
