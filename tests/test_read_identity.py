"""Alignment identity of read pairs (`aam.evaluate.read_identity`) against a brute-force full
dynamic programme written here, and hand-worked pairs."""

from __future__ import annotations

import numpy as np
import pytest

from aam.evaluate.read_identity import encode, pair_identity


def _brute_identity(a: str, b: str) -> float:
    """Full (unbanded) edit distance, starts anchored, free trailing gaps; N matches nothing."""
    n, m = len(a), len(b)
    d = np.zeros((n + 1, m + 1), dtype=int)
    d[:, 0], d[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            same = a[i - 1] == b[j - 1] and a[i - 1] in "ACGT"
            d[i, j] = min(d[i - 1, j - 1] + (not same), d[i - 1, j] + 1, d[i, j - 1] + 1)
    edits = min(d[n, :].min(), d[:, m].min())
    return max(0.0, 1.0 - edits / max(min(n, m), 1))


def _identity(a: list[str], b: list[str], band: int = 8) -> np.ndarray:
    return pair_identity(encode(a), encode(b, ref=True), np.arange(len(a)), np.arange(len(b)), band)


def _mutate(rng, s: str, n: int) -> str:
    out = list(s)
    for _ in range(n):
        op, pos = rng.integers(3), rng.integers(len(out) + 1)
        if op == 0 and pos < len(out):
            out[pos] = "ACGTN"[rng.integers(5)]
        elif op == 1 and pos < len(out):
            del out[pos]
        else:
            out.insert(pos, "ACGT"[rng.integers(4)])
    return "".join(out) or "A"


def test_identity_matches_a_full_dynamic_programme():
    rng = np.random.default_rng(0)
    a, b = [], []
    for _ in range(200):
        base = "".join(rng.choice(list("ACGT"), rng.integers(1, 40)))
        a.append(_mutate(rng, base, rng.integers(0, 6)))
        b.append(_mutate(rng, base, rng.integers(0, 6)))
    # a band wider than any length difference and edit count: the banded result is the exact one
    want = np.array([_brute_identity(x, y) for x, y in zip(a, b, strict=True)])
    np.testing.assert_allclose(_identity(a, b, band=50), want)
    # reads of equal length a few indels apart: the default band finds the same alignments
    c = ["".join(rng.choice(list("ACGT"), 150)) for _ in range(30)]
    d = [_mutate(rng, s, 6)[:150] for s in c]
    want = np.array([_brute_identity(x, y) for x, y in zip(c, d, strict=True)])
    np.testing.assert_allclose(_identity(c, d), want)


def test_identity_by_hand():
    read = "ACGTACGTAC"
    got = _identity(
        [read, read, read, read, "NNNN", read],
        [read, "ACGTTCGTAC", "ACGTCGTAC", read + "GGGG", "NNNN", "ACGTACGTACGTACGTAC"[:4]],
    )
    # identical; one mismatch in 10; one deletion (1 edit over the shorter 9); the reference runs
    # on past the read (free); N matches nothing; a 4-nt reference that is the read's start
    assert got == pytest.approx([1.0, 0.9, 1 - 1 / 9, 1.0, 0.0, 1.0])


def test_no_pairs_and_pairs_by_index():
    reads, refs = encode(["ACGT", "TTTT"]), encode(["TTTT", "ACGA"], ref=True)
    assert pair_identity(reads, refs, np.array([], int), np.array([], int)).shape == (0,)
    got = pair_identity(reads, refs, np.array([0, 0, 1]), np.array([1, 0, 0]))
    assert got == pytest.approx([0.75, 0.25, 1.0])  # ACGT|ACGA, ACGT|TTTT (the last T), TTTT|TTTT


def test_blocks_of_pairs_give_each_pair_its_own_identity():
    # pairs go `block` at a time (the DP runs to the longest read of each block): any block size
    # gives what each pair gets alone, and the full programme's answer
    rng = np.random.default_rng(1)
    base = ["".join(rng.choice(list("ACGT"), rng.integers(5, 60))) for _ in range(12)]
    reads = [_mutate(rng, s, rng.integers(0, 4)) for s in base]
    refs = [_mutate(rng, s, rng.integers(0, 4)) for s in base] + ["NNNNACGT", "A"]
    qi = rng.integers(0, len(reads), 300)
    ri = np.where(rng.random(300) < 0.5, qi, rng.integers(0, len(refs), 300))
    q, r = encode(reads), encode(refs, ref=True)
    alone = np.array([pair_identity(q, r, qi[p : p + 1], ri[p : p + 1])[0] for p in range(300)])
    for block in (1, 7, 64, 8192):
        np.testing.assert_array_equal(pair_identity(q, r, qi, ri, block=block), alone)
    wide = pair_identity(q, r, qi, ri, band=80, block=13)
    want = np.array([_brute_identity(reads[a], refs[b]) for a, b in zip(qi, ri, strict=True)])
    np.testing.assert_allclose(wide, want)


def test_a_band_widened_by_the_length_difference_follows_internal_indels():
    """Amplicons cut at both primers differ in length by their internal indels: a 12-nt insertion
    in the middle of a 120-nt read is 12 edits (identity 1 - 12/120) by the full programme, found
    once the band widens by the difference (more than the band of 8); a band of 8 alone cannot
    follow it. A reference longer than the read by more than `max_shift` (a truncated read) keeps
    the band: the free trailing gaps align it anyway."""
    rng = np.random.default_rng(3)
    ref = "".join(rng.choice(list("ACGT"), 120))
    read = ref[:60] + "".join(rng.choice(list("ACGT"), 12)) + ref[60:]
    reads, refs = encode([read, ref[:100]]), encode([ref, ref + ref[:40]], ref=True)
    qi, ri = np.array([0, 1]), np.array([0, 1])
    assert _brute_identity(read, ref) == pytest.approx(1 - 12 / 120)
    got = pair_identity(reads, refs, qi, ri)
    assert got[0] == pytest.approx(1 - 12 / 120)
    fixed = pair_identity(reads, refs, qi, ri, max_shift=0)  # the band of 8 for every pair
    assert fixed[0] < got[0] - 0.05
    assert got[1] == fixed[1] == pytest.approx(1.0)  # truncated: 100 nt of a 160-nt reference
