"""Bad input to the DNA sequence stages (seq-prepare, seq-train): one clear line naming the file and the
record or key, exit 2, and no output. FASTA and plain text follow one alphabet rule (IUPAC nucleotide
codes, U read as T; aam.io.dna_text)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_seq_stages import _write_set

from aam.cli import main
from aam.data.dna_tokenizers import UNK_ID, CharTokenizer, KmerTokenizer


def _prepare_fails(tmp_path, capsys, fasta, labels=None, settings=None, match="") -> str:
    """Run seq-prepare on bad input: exit 2, one error line containing `match`, nothing written."""
    out = tmp_path / "prepared.parquet"
    argv = ["seq-prepare", "--fasta", str(fasta), "--out", str(out)]
    if labels:
        argv += ["--labels", str(labels)]
    if settings:
        argv += ["--settings", json.dumps(settings)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("aam seq-prepare: error:")
    assert match in err
    assert not out.exists()
    assert not list(tmp_path.glob(".prepared.parquet*"))
    return err


def test_empty_fasta(tmp_path, capsys):
    (tmp_path / "e.fasta").write_text("")
    _prepare_fails(tmp_path, capsys, tmp_path / "e.fasta", match="e.fasta: no FASTA records")


def test_record_without_sequence(tmp_path, capsys):
    (tmp_path / "x.fasta").write_text(">a\nACGT\n>b\n>c\nACGT\n")
    _prepare_fails(tmp_path, capsys, tmp_path / "x.fasta", match="record 'b' has no sequence")


def test_duplicate_ids(tmp_path, capsys):
    (tmp_path / "x.fasta").write_text(">a\nACGT\n>b\nACGA\n>a\nACGT\n")
    _prepare_fails(tmp_path, capsys, tmp_path / "x.fasta", match="duplicate sequence ID 'a'")


def test_labels_missing_for_some_sequences(tmp_path, capsys):
    fasta, tax = _write_set(tmp_path)
    lines = tax.read_text().splitlines()
    tax.write_text("\n".join(ln for ln in lines if not ln.startswith("s7\t")) + "\n")
    _prepare_fails(tmp_path, capsys, fasta, tax, match="no label for sequence 's7'")


def test_label_file_without_id_column(tmp_path, capsys):
    fasta, tax = _write_set(tmp_path)
    tax.write_text(tax.read_text().replace("feature_id\t", "name\t", 1))
    _prepare_fails(tmp_path, capsys, fasta, tax, match="tax.tsv: no ID column")
    _prepare_fails(tmp_path, capsys, fasta, tax, settings={"id_column": "otu"}, match="no ID column 'otu'")


def test_unknown_rank(tmp_path, capsys):
    fasta, tax = _write_set(tmp_path)
    _prepare_fails(
        tmp_path, capsys, fasta, tax, settings={"ranks": ["genera"]}, match="unknown rank 'genera'"
    )


def test_unknown_rank_in_training_labels(tmp_path, capsys):
    fasta, tax = _write_set(tmp_path)
    prepared = tmp_path / "p.parquet"
    assert main(["seq-prepare", "--fasta", str(fasta), "--labels", str(tax), "--out", str(prepared)]) == 0
    out = tmp_path / "m"
    settings = json.dumps({"kind": "contrastive", "label_ranks": ["strain"]})
    assert (
        main(["seq-train", "--prepared", str(prepared), "--settings", settings, "--out-dir", str(out)]) == 2
    )
    assert "unknown rank 'strain'" in capsys.readouterr().err
    assert not (out / "model.json").exists()


def test_unknown_run_key_is_rejected(tmp_path, capsys):
    fasta, tax = _write_set(tmp_path)
    prepared = tmp_path / "p.parquet"
    assert main(["seq-prepare", "--fasta", str(fasta), "--out", str(prepared)]) == 0
    bad = json.dumps({"kind": "vq", "model": {"backbone_size": 3}})
    assert (
        main(["seq-train", "--prepared", str(prepared), "--settings", bad, "--out-dir", str(tmp_path / "m")])
        == 2
    )
    assert "backbone_size" in capsys.readouterr().err




@pytest.mark.parametrize(
    ("records", "words"),
    [
        (">a\nACGT\n>b\nACGXZJ\n", ("record 'b'", "'X' at position 4")),
        (">a\nACGT-ACGT\n", ("record 'a'", "'-' at position 5")),
        (">a\nACGT\n>b\nACG.T\n", ("record 'b'", "'.' at position 4")),
        (">a\nACGT1\n", ("record 'a'", "'1' at position 5")),
        # a protein FASTA: its first letter outside the IUPAC nucleotide codes is L
        (">sp|P69905|HBA_HUMAN\nMVLSPADKTNVKAAWGKVGAHAGEYGAEALERMF\n", ("'sp|P69905|HBA_HUMAN'", "'L' at")),
    ],
)
def test_fasta_with_non_nucleotide_letters(tmp_path, capsys, records, words):
    (tmp_path / "x.fasta").write_text(records)
    err = _prepare_fails(tmp_path, capsys, tmp_path / "x.fasta", match="x.fasta: record")
    for word in words:
        assert word in err, err


def test_text_with_a_non_nucleotide_letter(tmp_path, capsys):
    path = tmp_path / "genome.txt"
    path.write_text("ACGT\nAC GT\nAXGT\n")
    out = tmp_path / "p.parquet"
    assert main(["seq-prepare", "--text", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aam seq-prepare: error:") and len(err.splitlines()) == 1
    assert "genome.txt" in err and "'X' at DNA position 9" in err and not out.exists()


def test_fasta_and_text_accept_the_same_iupac_codes_and_read_u_as_t(tmp_path):
    (tmp_path / "x.fasta").write_text(">a\nacguRYSWKMBDHVN\n")
    (tmp_path / "x.txt").write_text("acguRYSWKMBDHVN\n")
    out_fasta, out_text = tmp_path / "f.parquet", tmp_path / "t.parquet"
    assert main(["seq-prepare", "--fasta", str(tmp_path / "x.fasta"), "--out", str(out_fasta)]) == 0
    assert main(["seq-prepare", "--text", str(tmp_path / "x.txt"), "--out", str(out_text)]) == 0
    expected = "ACGTRYSWKMBDHVN"
    assert pd.read_parquet(out_fasta)["sequence"].tolist() == [expected]
    assert pd.read_parquet(out_text)["sequence"].tolist() == [expected]
    # How they are tokenized: every ambiguity code is N for the character tokenizer ...
    chars = CharTokenizer(add_special_tokens=False)
    assert [chars.vocab[i] for i in chars.encode(expected)] == list("ACGT") + ["N"] * 11
    # ... and any k-mer holding one is [UNK] for the k-mer tokenizer (ACG, CGT known; the rest not).
    kmers = KmerTokenizer(3, 1, add_special_tokens=False)
    ids = kmers.encode(expected).tolist()
    assert [kmers.vocab[i] for i in ids[:2]] == ["ACG", "CGT"] and ids[2:] == [UNK_ID] * (len(expected) - 4)


def test_external_test_labels_need_training_labels(tmp_path, capsys):
    fasta, tax = _write_set(tmp_path, n=10)
    settings = {"test": {"fasta": str(fasta), "labels": str(tax)}}
    _prepare_fails(tmp_path, capsys, fasta, settings=settings, match="labels for both")
