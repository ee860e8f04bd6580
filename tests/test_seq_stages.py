"""DNA sequence stages: bad input (one line, exit 2, no output), taxonomy parsing, save/load round trip,
and a tiny end-to-end run of seq-prepare -> seq-train -> embed -> seq-evaluate for both model kinds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from aam.cli import main
from aam.data.dna_tokenizers import KmerTokenizer
from aam.io.embeddings import read_embeddings
from aam.models.contrastive import ContrastiveConfig, ContrastiveEmbedder
from aam.stages.embed import embed_sequences, load_contrastive
from aam.stages.seq_prepare import parse_taxonomy, prepare
from aam.training.engine import export_model

TAX = "k__Bacteria; p__Firmicutes; c__Clostridia; o__Clostridiales; f__Lachnospiraceae; g__{g}; s__"


def _write_set(tmp_path, n=40, seed=0, genera=("Blautia", "Dorea")):
    rng = np.random.default_rng(seed)
    roots = ["".join(rng.choice(list("ACGT"), 80)) for _ in genera]
    fasta, rows = [], ["feature_id\ttaxonomy"]
    for i in range(n):
        c = i % len(genera)
        seq = np.array(list(roots[c]))
        hit = rng.random(80) < 0.1
        seq[hit] = rng.choice(list("ACGT"), hit.sum())
        fasta.append(f">s{i}\n{''.join(seq)}")
        rows.append(f"s{i}\t{TAX.format(g=genera[c])}")
    (tmp_path / "seqs.fasta").write_text("\n".join(fasta) + "\n")
    (tmp_path / "tax.tsv").write_text("\n".join(rows) + "\n")
    return tmp_path / "seqs.fasta", tmp_path / "tax.tsv"


def _prepare_fails(tmp_path, capsys, fasta, labels=None, settings=None, match=""):
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


def test_parse_taxonomy_empty_ranks_are_missing():
    ranks = parse_taxonomy(
        pd.Series([TAX.format(g=""), "k__Archaea; p__Euryarchaeota", TAX.format(g="Dorea")])
    )
    assert ranks["family"].isna().tolist() == [False, True, False]
    assert ranks["family"][0] == "Lachnospiraceae"
    assert ranks["genus"].isna().tolist() == [True, True, False] and ranks["genus"][2] == "Dorea"
    assert ranks["species"].isna().all()
    assert ranks["phylum"].tolist()[1] == "Euryarchaeota"


def test_prepare_split_is_seeded(tmp_path):
    fasta, tax = _write_set(tmp_path, n=50)
    a = prepare(fasta=str(fasta), labels=str(tax), seed=1)
    b = prepare(fasta=str(fasta), labels=str(tax), seed=1)
    c = prepare(fasta=str(fasta), labels=str(tax), seed=2)
    assert a.equals(b) and not a["split"].equals(c["split"])
    assert (a["split"] == "test").sum() == 10
    assert list(a.columns[:3]) == ["id", "sequence", "split"] and "genus" in a.columns


def test_save_load_round_trip_with_tokenizer(tmp_path):
    torch.manual_seed(0)
    tok = KmerTokenizer(4, 2)
    cfg = ContrastiveConfig(
        vocab_size=tok.vocab_size,
        dim=16,
        layers=1,
        heads=2,
        ff_dim=32,
        max_len=64,
        proj_hidden=16,
        proj_dim=8,
    )
    model = ContrastiveEmbedder(cfg)
    export_model(model, tmp_path, extra={"kind": "contrastive"})
    tok.save(tmp_path / "tokenizer.json")
    loaded, loaded_tok = load_contrastive(tmp_path)
    assert loaded_tok == tok and loaded.config == cfg
    seqs = ["ACGTACGTTTGACCA", "GGGACTTACNNACGT", "ACG"]
    np.testing.assert_array_equal(
        embed_sequences(model.eval(), tok, seqs), embed_sequences(loaded, loaded_tok, seqs)
    )


FAST = {
    "max_epochs": 1,
    "batch_size": 16,
    "warmup_steps": 0,
    "progress_bar": False,
    "patience": None,
    "num_threads": 1,
}


def test_contrastive_end_to_end(tmp_path):
    fasta, tax = _write_set(tmp_path)
    prepared = tmp_path / "prepared.parquet"
    assert main(["seq-prepare", "--fasta", str(fasta), "--labels", str(tax), "--out", str(prepared)]) == 0
    run = {
        "kind": "contrastive",
        "tokenizer": {"type": "kmer", "k": 4, "stride": 2},
        "model": {"dim": 16, "layers": 1, "heads": 2, "ff_dim": 32, "proj_hidden": 16, "proj_dim": 8},
        "label_ranks": ["family", "genus"],
        "trainer": FAST,
    }
    model_dir = tmp_path / "models" / "c"
    assert (
        main(
            [
                "seq-train",
                "--prepared",
                str(prepared),
                "--settings",
                json.dumps(run),
                "--out-dir",
                str(model_dir),
            ]
        )
        == 0
    )
    for name in ("model.safetensors", "model.json", "tokenizer.json", "history.csv"):
        assert (model_dir / name).exists()
    from aam import __version__

    prov = json.loads((model_dir / "model.json").read_text())["provenance"]
    assert prov["aam_version"] == __version__ and prov["seed"] == 42
    assert prov["settings"]["trainer"]["max_epochs"] == run["trainer"]["max_epochs"]
    emb = tmp_path / "emb.parquet"
    assert main(["embed", "--model-dir", str(model_dir), "--fasta", str(fasta), "--out", str(emb)]) == 0
    ids, split, vectors = read_embeddings(emb)
    assert split is None  # embed has no split: the one layout's optional column
    assert list(ids) == [f"s{i}" for i in range(40)] and vectors.shape == (40, 16)
    out = tmp_path / "eval"
    settings = json.dumps({"ranks": ["genus"], "color_rank": "genus", "knn_k": 3})
    assert (
        main(
            [
                "seq-evaluate",
                "--prepared",
                str(prepared),
                "--model-dir",
                str(model_dir),
                "--embeddings",
                str(emb),
                "--settings",
                settings,
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["provenance"]["settings"]["knn_k"] == 3
    assert metrics["provenance"]["model"] == prov
    genus = metrics["ranks"]["genus"]
    assert genus["n_test"] == 8 and 0 <= genus["knn_accuracy"] <= 1 and genus["naive_bayes_accuracy"] == 1.0
    assert (out / "projection.png").exists() and (out / "history.png").exists()


def test_vq_end_to_end(tmp_path):
    fasta, _ = _write_set(tmp_path)
    prepared = tmp_path / "prepared.parquet"
    assert main(["seq-prepare", "--fasta", str(fasta), "--out", str(prepared)]) == 0
    run = {
        "kind": "vq",
        "block_len": 16,
        "model": {
            "patch": 4,
            "dim": 16,
            "enc_layers": 1,
            "dec_layers": 1,
            "heads": 2,
            "ff_dim": 32,
            "code_dim": 8,
            "codebook_size": 16,
        },
        "trainer": FAST,
    }
    model_dir = tmp_path / "models" / "v"
    assert (
        main(
            [
                "seq-train",
                "--prepared",
                str(prepared),
                "--settings",
                json.dumps(run),
                "--out-dir",
                str(model_dir),
            ]
        )
        == 0
    )
    out = tmp_path / "eval"
    assert (
        main(["seq-evaluate", "--prepared", str(prepared), "--model-dir", str(model_dir),
              "--out-dir", str(out)])
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_test_blocks"] == 8 * 5 and 0 < metrics["codebook_usage"] <= 1
    assert 1 <= metrics["perplexity"] <= 16 and 0 <= metrics["reconstruction_accuracy"] <= 1
    assert (out / "codebook.png").exists() and (out / "history.png").exists()
    # embed refuses a VQ model with one line
    assert (
        main(
            ["embed", "--model-dir", str(model_dir), "--fasta", str(fasta),
             "--out", str(tmp_path / "e.parquet")]
        )
        == 2
    )


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


def test_sequence_dataset_is_seeded_by_epoch_and_index_and_stacks_views():
    from aam.data.augment import Augmenter
    from aam.data.sequence_datasets import SequenceCollator, SequenceDataset

    seqs = ["ACGTACGTACGTACGTACGTACGTACGTACGTACGTACGT", "TTTTGGGGCCCCAAAATTTTGGGGCCCCAAAATTTTGGGG"]
    aug = Augmenter({"substitution_rate": 0.2, "min_len": 10})
    ds = SequenceDataset(seqs, np.array([[0, 1], [1, -1]]), n_views=2, augmenter=aug, seed=3)
    a = ds[1]["views"]
    assert ds[1]["views"] == a  # same (seed, epoch, index): same views, whatever the worker
    ds.set_epoch(1)
    assert ds[1]["views"] != a
    batch = SequenceCollator(KmerTokenizer(4, 2))([ds[0], ds[1]])
    assert batch["input_ids"].shape[0] == 4
    assert batch["group"].tolist() == [0, 1, 0, 1] and batch["labels"].tolist() == [[0, 1], [1, -1]] * 2


def test_prepare_plain_text_into_chunks(tmp_path, capsys):
    path = tmp_path / "genome.txt"
    path.write_text("ACGT" * 30 + "\n" + "ggcc" * 20 + "\n")
    frame = prepare(text=str(path), chunk_len=50, ranks=[])
    assert frame["sequence"].str.len().tolist() == [50, 50, 50, 50]
    assert "".join(frame["sequence"]) == "ACGT" * 30 + "GGCC" * 20
    path.write_text("ACGT\nAC GT\nAXGT\n")
    out = tmp_path / "p.parquet"
    assert main(["seq-prepare", "--text", str(path), "--out", str(out)]) == 2
    assert "'X' at DNA position 9" in capsys.readouterr().err and not out.exists()


def test_same_seed_gives_identical_weights(tmp_path):
    fasta, _ = _write_set(tmp_path, n=20)
    prepared = tmp_path / "prepared.parquet"
    assert main(["seq-prepare", "--fasta", str(fasta), "--out", str(prepared)]) == 0
    run = json.dumps(
        {
            "kind": "contrastive",
            "loss": "ntxent",
            "tokenizer": {"type": "kmer", "k": 4, "stride": 2},
            "model": {"dim": 16, "layers": 1, "heads": 2, "ff_dim": 32, "proj_hidden": 16, "proj_dim": 8},
            "trainer": {**FAST, "batch_size": 8},
        }
    )
    for name in ("a", "b"):
        argv = [
            "seq-train",
            "--prepared",
            str(prepared),
            "--settings",
            run,
            "--out-dir",
            str(tmp_path / name),
        ]
        assert main(argv) == 0
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "model.safetensors"
    ).read_bytes()
