"""AAM nucleotide tokenizer: vocabulary, edge cases, and agreement with a plain Python loop."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from aam.data.nucleotides import MASK, PAD, VOCAB_SIZE, NucleotideTokenizer, encode
from aam.errors import InputError

CODE = {"A": 1, "C": 2, "G": 3, "T": 4, "U": 4}


def reference(seqs, max_bp):
    """Independent per-character implementation."""
    out = np.zeros((len(seqs), max_bp), dtype=np.uint8)
    for i, s in enumerate(seqs):
        for j, ch in enumerate(s.upper()[:max_bp]):
            if ch in CODE:
                out[i, j] = CODE[ch]
            elif ch in "NRYSWKMBDHV":
                out[i, j] = 5
            else:
                raise AssertionError(ch)
    return out


def test_vocabulary():
    assert (PAD, MASK, VOCAB_SIZE) == (0, 6, 7)
    assert encode(["ACGTN"], max_bp=5).tolist() == [[1, 2, 3, 4, 5]]


def test_matches_python_loop_on_random_mixed_input():
    rng = np.random.default_rng(0)
    alphabet = np.array(list("ACGTacgtNnRYKMSWBDHVU"))
    seqs = ["".join(rng.choice(alphabet, size=rng.integers(0, 40))) for _ in range(500)]
    tok = NucleotideTokenizer(max_bp=25)
    got, lengths, stats = tok.encode_with_lengths(seqs)
    np.testing.assert_array_equal(got, reference(seqs, 25))
    np.testing.assert_array_equal(lengths, [min(len(s), 25) for s in seqs])
    assert stats.n_truncated == sum(len(s) > 25 for s in seqs)
    assert stats.n_empty == sum(len(s) == 0 for s in seqs)


def test_round_trip_upper_cases():
    tok = NucleotideTokenizer(max_bp=10)
    seqs = ["acgt", "ACGTACGTAC", "GgCc", "A"]
    assert tok.decode(tok.encode(seqs)) == [s.upper() for s in seqs]


def test_empty_sequence_and_empty_input():
    tok = NucleotideTokenizer(max_bp=4)
    assert tok.encode([""]).tolist() == [[0, 0, 0, 0]]
    assert tok.last_stats.n_empty == 1
    assert tok.encode([]).shape == (0, 4)
    assert tok.decode(tok.encode([""])) == [""]


def test_all_n_and_other_iupac_codes_share_one_token():
    tok = NucleotideTokenizer(max_bp=12)
    assert tok.encode(["NNNN"]).tolist() == [[5] * 4 + [0] * 8]
    assert set(tok.encode(["RYSWKMBDHVnr"])[0].tolist()) == {5}


def test_length_exactly_max_bp_is_not_cut(caplog):
    tok = NucleotideTokenizer(max_bp=8)
    with caplog.at_level(logging.WARNING):
        tokens = tok.encode(["ACGTACGT"])
    assert tokens.tolist() == [[1, 2, 3, 4, 1, 2, 3, 4]]
    assert tok.last_stats.n_truncated == 0
    assert "cut" not in caplog.text


def test_longer_sequences_are_cut_counted_and_reported(caplog):
    tok = NucleotideTokenizer(max_bp=3)
    with caplog.at_level(logging.WARNING):
        tokens = tok.encode(["ACGTA", "CG", "TTTTTTTT"])
    assert tokens.tolist() == [[1, 2, 3], [2, 3, 0], [4, 4, 4]]
    assert tok.last_stats.n_truncated == 2
    assert tok.last_stats.max_length_seen == 8
    assert "2 of 3 sequences" in caplog.text


@pytest.mark.parametrize("bad", ["ACGT-A", "ACXT", "AC T", "ACGTé", "AC.G"])
def test_invalid_character_names_the_sequence(bad):
    with pytest.raises(InputError, match=r"sequence asv2: character .* position"):
        encode(["ACGT", bad], max_bp=10, ids=["asv1", "asv2"])


def test_invalid_character_beyond_max_bp_is_still_an_error():
    with pytest.raises(InputError, match="#0"):
        encode(["ACGTACGTAC*"], max_bp=4)


def test_bytes_input_equals_str_input():
    seqs = ["ACGTN", "ggg", ""]
    np.testing.assert_array_equal(
        encode([s.encode() for s in seqs], max_bp=6), encode(seqs, max_bp=6)
    )


def test_settings_describe_the_tokens():
    assert NucleotideTokenizer(100).settings()["max_bp"] == 100
    assert NucleotideTokenizer(100).settings() != NucleotideTokenizer(150).settings()
    with pytest.raises(ValueError):
        NucleotideTokenizer(0)
