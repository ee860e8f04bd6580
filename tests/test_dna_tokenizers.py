"""DNA tokenizers (k-mer and character): round trips, IUPAC handling, stride, save/load, plain-text reader."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from aam.data.dna_tokenizers import (
    CLS_ID,
    N_SPECIAL,
    PAD_ID,
    SEP_ID,
    UNK_ID,
    CharTokenizer,
    KmerTokenizer,
    load_tokenizer,
)
from aam.errors import InputError
from aam.io.dna_text import iter_dna_text, iter_text_blocks, read_blocks


def _random_seqs(n, lo, hi, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("ACGT"), int(rng.integers(lo, hi + 1)))) for _ in range(n)]


def _loop_kmers(seq, k, stride):
    """Reference: one Python loop per k-mer."""
    vocab = {"".join(p): i + N_SPECIAL for i, p in enumerate(itertools.product("ACGT", repeat=k))}
    seq = seq.upper()
    return [vocab.get(seq[i : i + k], UNK_ID) for i in range(0, len(seq) - k + 1, stride)]


@pytest.mark.parametrize("k,stride", [(1, 1), (3, 1), (4, 2), (6, 3), (5, 7)])
def test_kmer_ids_match_a_python_loop(k, stride):
    seqs = _random_seqs(30, 0, 40) + ["ACGTNACGTA", "acgtRYacgt", "", "A"]
    tok = KmerTokenizer(k, stride)
    enc = tok.batch_encode(seqs)
    for row, mask, seq in zip(enc["input_ids"], enc["attention_mask"], seqs, strict=True):
        ids = row[mask].tolist()
        assert ids[0] == CLS_ID and ids[-1] == SEP_ID
        assert ids[1:-1] == _loop_kmers(seq, k, stride)
        assert (row[~mask] == PAD_ID).all()
        assert mask.sum() == len(_loop_kmers(seq, k, stride)) + 2


def test_vocabulary_size_and_order():
    tok = KmerTokenizer(3)
    assert tok.vocab_size == 4**3 + 5 == len(tok.vocab)
    assert tok.vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert tok.vocab[N_SPECIAL] == "AAA" and tok.vocab[-1] == "TTT"
    assert tok.encode("AAC").tolist() == [CLS_ID, N_SPECIAL + 1, SEP_ID]


@pytest.mark.parametrize("k", [1, 4, 6])
def test_kmer_round_trip_stride_one(k):
    seqs = _random_seqs(50, k, 160, seed=k)
    tok = KmerTokenizer(k, 1)
    enc = tok.batch_encode(seqs)
    assert tok.batch_decode(enc["input_ids"]) == seqs


def test_kmer_round_trip_with_stride_when_aligned():
    tok = KmerTokenizer(6, 3)
    seqs = _random_seqs(20, 6, 6, seed=1)
    seqs = [s * 1 + "ACG" * j for j, s in enumerate(seqs)]  # (len - k) % 3 == 0
    assert [tok.decode(tok.encode(s)) for s in seqs] == seqs
    # a tail that no k-mer reaches is lost, as in DNABERT
    assert tok.decode(tok.encode("ACGTACGT")) == "ACGTAC"


def test_n_and_iupac_map_to_unk_and_decode_as_n():
    tok = KmerTokenizer(3, 1)
    ids = tok.encode("ACGNTAC")[1:-1].tolist()
    # windows ACG CGN GNT NTA TAC
    assert ids[1:4] == [UNK_ID] * 3 and ids[0] >= N_SPECIAL and ids[4] >= N_SPECIAL
    assert tok.decode(tok.encode("ACGNTAC")) == "ACGNTAC"
    assert set(tok.encode("NNNNN")[1:-1].tolist()) == {UNK_ID}
    assert tok.encode("acgRtac")[2] == UNK_ID  # lower case and another IUPAC code


def test_lower_case_is_upper_cased():
    tok = KmerTokenizer(4, 1)
    assert tok.encode("acgtac").tolist() == tok.encode("ACGTAC").tolist()


def test_max_length_and_pad_to():
    tok = KmerTokenizer(3, 1)
    enc = tok.batch_encode(["ACGTACGTAC", "ACG"], max_length=5, pad_to=8)
    assert enc["input_ids"].shape == (2, 8)
    assert enc["input_ids"][0, :5].tolist()[-1] == SEP_ID
    assert enc["attention_mask"].sum(1).tolist() == [5, 3]


def test_char_tokenizer_round_trip_and_iupac():
    tok = CharTokenizer()
    seqs = _random_seqs(20, 0, 50) + ["ACGTN"]
    assert tok.batch_decode(tok.batch_encode(seqs)["input_ids"]) == seqs
    ids = tok.encode("aRn-")[1:-1].tolist()
    assert ids == [N_SPECIAL, N_SPECIAL + 4, N_SPECIAL + 4, UNK_ID]
    assert tok.vocab_size == 10


@pytest.mark.parametrize("tok", [KmerTokenizer(5, 2), CharTokenizer(add_special_tokens=False)])
def test_save_load(tmp_path, tok):
    tok.save(tmp_path / "tok.json")
    back = load_tokenizer(tmp_path / "tok.json")
    assert back == tok and type(back) is type(tok)
    seqs = _random_seqs(10, 5, 30)
    np.testing.assert_array_equal(back.batch_encode(seqs)["input_ids"], tok.batch_encode(seqs)["input_ids"])


def test_load_rejects_a_foreign_vocabulary(tmp_path):
    path = tmp_path / "tok.json"
    KmerTokenizer(3).save(path)
    path.write_text(path.read_text().replace('"AAA"', '"XXX"'))
    with pytest.raises(InputError, match="vocabulary"):
        load_tokenizer(path)


def test_empty_batch():
    enc = KmerTokenizer(3).batch_encode([])
    assert enc["input_ids"].shape == (0, 2)


def test_text_reader_ignores_whitespace_and_streams(tmp_path):
    path = tmp_path / "dna.txt"
    path.write_text("acgt ACGT\nAC\n\nGTACGTAC  \n")
    assert list(iter_text_blocks(path, 4)) == ["ACGT"] * 4  # 18 bases: the last 2 are dropped
    assert "".join(iter_dna_text(path, chunk_chars=3)) == "ACGT" * 4 + "AC"
    blocks = read_blocks(path, 5)
    assert blocks.shape == (3, 5) and blocks[0].tobytes() == b"ACGTA"


def test_text_reader_rejects_non_dna(tmp_path):
    path = tmp_path / "dna.txt"
    path.write_text("ACGTACGT\nACGXT\n")
    with pytest.raises(InputError, match="position 11"):
        read_blocks(path, 4)


def test_fasta_blocks_do_not_span_records(tmp_path):
    path = tmp_path / "x.fasta"
    path.write_text(">a\nACGTAC\n>b\nGGGGTTTT\n")
    assert read_blocks(path, 4).tobytes() == b"ACGTGGGGTTTT"
