"""Bad input to the DNA sequence stages (seq-prepare, seq-train): one clear line naming the file and the
record or key, exit 2, and no output. FASTA and plain text follow one alphabet rule (IUPAC nucleotide
codes, U read as T; aam.io.dna_text)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers.sequences import write_labelled_set

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
    fasta, tax = write_labelled_set(tmp_path)
    lines = tax.read_text().splitlines()
    tax.write_text("\n".join(ln for ln in lines if not ln.startswith("s7\t")) + "\n")
    _prepare_fails(tmp_path, capsys, fasta, tax, match="no label for sequence 's7'")


def test_label_file_without_id_column(tmp_path, capsys):
    fasta, tax = write_labelled_set(tmp_path)
    tax.write_text(tax.read_text().replace("feature_id\t", "name\t", 1))
    _prepare_fails(tmp_path, capsys, fasta, tax, match="tax.tsv: no ID column")
    _prepare_fails(tmp_path, capsys, fasta, tax, settings={"id_column": "otu"}, match="no ID column 'otu'")


def test_unknown_rank(tmp_path, capsys):
    fasta, tax = write_labelled_set(tmp_path)
    _prepare_fails(
        tmp_path, capsys, fasta, tax, settings={"ranks": ["genera"]}, match="unknown rank 'genera'"
    )


def test_unknown_rank_in_training_labels(tmp_path, capsys):
    fasta, tax = write_labelled_set(tmp_path)
    prepared = tmp_path / "p.parquet"
    assert main(["seq-prepare", "--fasta", str(fasta), "--labels", str(tax), "--out", str(prepared)]) == 0
    out = tmp_path / "m"
    settings = json.dumps({"kind": "contrastive", "label_ranks": ["strain"]})
    assert (
        main(["seq-train", "--prepared", str(prepared), "--settings", settings, "--out-dir", str(out)]) == 2
    )
    # the schema's check, as the workflow makes it before any job: the value and the allowed ranks
    assert "label_ranks/0: 'strain' is not one of ['kingdom', 'phylum'" in capsys.readouterr().err
    assert not (out / "model.json").exists()


def test_unknown_run_key_is_rejected(tmp_path, capsys):
    fasta, tax = write_labelled_set(tmp_path)
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
    fasta, tax = write_labelled_set(tmp_path, n=10)
    settings = {"test": {"fasta": str(fasta), "labels": str(tax)}}
    _prepare_fails(tmp_path, capsys, fasta, settings=settings, match="labels for both")


# --- files that are not (gzip-compressed) text: one line, not an EOFError or UnicodeDecodeError


@pytest.mark.parametrize("flag", ["--fasta", "--text"])
@pytest.mark.parametrize(
    ("kind", "words"),
    [("truncated_gzip", "truncated gzip file"), ("binary", "not a text file"),
     ("gzipped_binary", "not a text file")],
)
def test_input_that_is_not_text(tmp_path, capsys, flag, kind, words):
    import gzip

    fasta, _ = write_labelled_set(tmp_path, n=10)
    noise = bytes(range(128, 256)) * 20
    content = {"truncated_gzip": gzip.compress(fasta.read_bytes())[:40], "binary": noise,
               "gzipped_binary": gzip.compress(noise)}[kind]
    path = tmp_path / "input.fa.gz"
    path.write_bytes(content)
    out = tmp_path / "p.parquet"
    assert main(["seq-prepare", flag, str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"aam seq-prepare: error: {path}: {words}"), err
    assert not out.exists()


# --- U (RNA) read as T in every stage that reads DNA: seq-prepare (above), ingest (bad-input prepare
# tests), and classify's reads


def _untrained_classifier(folder):
    """A contrastive model folder with a labelled reference, as seq-train leaves it (weights untrained:
    the test compares two inputs, not accuracy)."""
    import torch

    from aam.data.dna_tokenizers import KmerTokenizer
    from aam.data.seq_collection import prepare
    from aam.evaluate.seq_embeddings import write_reference
    from aam.io.model_files import export_model
    from aam.models.contrastive import ContrastiveConfig, ContrastiveEmbedder

    fasta, tax = write_labelled_set(folder, n=20)
    torch.manual_seed(0)
    tok = KmerTokenizer(4, 2)
    model = ContrastiveEmbedder(ContrastiveConfig(vocab_size=tok.vocab_size, dim=16, layers=1, heads=2,
                                                  ff_dim=32, max_len=64, proj_hidden=16, proj_dim=8))
    model_dir = folder / "model"
    export_model(model, model_dir, extra={"kind": "contrastive"})
    tok.save(model_dir / "tokenizer.json")
    frame = prepare(fasta=str(fasta), text=None, labels=str(tax), ranks=["genus"])
    write_reference(model.eval(), tok, frame, str(model_dir / "reference.parquet"))
    return model_dir, fasta


def test_classify_reads_rna_as_dna(tmp_path, capsys):
    model_dir, fasta = _untrained_classifier(tmp_path)
    rna = tmp_path / "rna.fasta"
    rna.write_text("".join(ln.replace("T", "U") if not ln.startswith(">") else ln
                           for ln in fasta.read_text().splitlines(keepends=True)))
    for reads, out in ((fasta, "dna.tsv"), (rna, "rna.tsv")):
        assert main(["classify", "--model-dir", str(model_dir), "--reads", str(reads), "--threshold", "0",
                     "--out", str(tmp_path / out)]) == 0, capsys.readouterr().err
    assert (tmp_path / "dna.tsv").read_text() == (tmp_path / "rna.tsv").read_text()


@pytest.mark.parametrize("damage", ["truncated", "pickle"])
def test_classify_with_a_damaged_model_file_is_one_line(tmp_path, capsys, damage):
    """A truncated model.safetensors, or a pickle renamed to it, was a SafetensorError traceback."""
    import pickle

    model_dir, fasta = _untrained_classifier(tmp_path)
    weights = model_dir / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        weights.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    out = tmp_path / "taxonomy.tsv"
    # search: embedding reads the model (the default, search: kmer, needs only reference.parquet)
    argv = ["classify", "--model-dir", str(model_dir), "--settings", '{"search": "embedding"}']
    assert main([*argv, "--reads", str(fasta), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"aam classify: error: {weights}: not a readable safetensors file"), err
    assert not out.exists()
