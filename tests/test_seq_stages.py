"""DNA sequence stages: taxonomy parsing, save/load round trip, and a tiny end-to-end run of
seq-prepare -> seq-train -> embed -> seq-evaluate for both model kinds. Bad input to these stages:
tests/test_bad_input_sequences.py."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import torch
import yaml
from helpers.qza import check_archive
from helpers.sequences import TAX, write_labelled_set

from aam.cli import main
from aam.data.dna_tokenizers import KmerTokenizer
from aam.data.seq_collection import parse_taxonomy, prepare
from aam.evaluate.seq_embeddings import embed_sequences, load_contrastive
from aam.io.embeddings import read_embeddings
from aam.io.model_files import export_model
from aam.models.contrastive import ContrastiveConfig, ContrastiveEmbedder


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
    fasta, tax = write_labelled_set(tmp_path, n=50)
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
    fasta, tax = write_labelled_set(tmp_path)
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
    for name in ("model.safetensors", "model.json", "tokenizer.json", "history.csv", "reference.parquet"):
        assert (model_dir / name).exists()
    frame = pd.read_parquet(prepared)
    ref = pd.read_parquet(model_dir / "reference.parquet")
    assert sorted(ref["id"]) == sorted(frame["id"][frame["split"] == "train"])
    # classify the test split and a .qza of reads: q2-feature-classifier's table
    taxonomy = tmp_path / "taxonomy.tsv"
    assert (
        main(["classify", "--model-dir", str(model_dir), "--prepared", str(prepared), "--out", str(taxonomy)])
        == 0
    )
    table = pd.read_csv(taxonomy, sep="\t", dtype=str)
    assert taxonomy.read_text().splitlines()[0] == "Feature ID\tTaxon\tConfidence"
    assert list(table["Feature ID"]) == list(frame["id"][frame["split"] == "test"])
    assert table["Confidence"].astype(float).between(0, 1).all()
    assert table["Taxon"].str.match(r"^(Unassigned|k__Bacteria(; [pcofgs]__[^;]+)*)$").all()
    import zipfile

    with zipfile.ZipFile(tmp_path / "reads.qza", "w") as zf:
        zf.writestr(
            "u/metadata.yaml", "uuid: u\ntype: FeatureData[Sequence]\nformat: DNASequencesDirectoryFormat\n"
        )
        zf.writestr("u/data/dna-sequences.fasta", fasta.read_text())
    assert (
        main(
            [
                "classify",
                "--model-dir",
                str(model_dir),
                "--reads",
                str(tmp_path / "reads.qza"),
                "--threshold",
                "0",
                "--out",
                str(taxonomy),
            ]
        )
        == 0
    )
    table = pd.read_csv(taxonomy, sep="\t", dtype=str)
    assert len(table) == 40 and not (table["Taxon"] == "Unassigned").any()
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
    assert 0 <= genus["classifier_accuracy"] <= 1
    assert (out / "projection.png").exists() and (out / "history.png").exists()
    # aam classify beside q2's naive Bayes: P/R/F at the defaults and a curve over 21 thresholds
    taxonomy = metrics["taxonomy"]
    assert (out / "taxonomy_pr.png").exists() and taxonomy["rank"] == "genus"
    for name in ("aam classify", "naive Bayes, 7-mers (q2 default)"):
        assert len(taxonomy[name]["curve"]) == 21
        g = taxonomy[name]["ranks"]["genus"]
        assert g["reads"] == 8 and g["right"] <= g["assigned"] <= g["reads"]
    assert taxonomy["naive Bayes, 7-mers (q2 default)"]["threshold"] == 0.7


def test_vq_end_to_end(tmp_path):
    fasta, _ = write_labelled_set(tmp_path)
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


def test_same_seed_gives_identical_weights(tmp_path):
    fasta, _ = write_labelled_set(tmp_path, n=20)
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
    # the whole model folder but the clock (timing.json) and the engine's train/ folder, whose
    # checkpoints name it (tests/test_reproducible.py reruns in one folder)
    for name in ("model.safetensors", "model.json", "tokenizer.json", "history.csv", "reference.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert json.loads((tmp_path / "a" / "timing.json").read_text())["wall_time_s"] > 0


def test_external_test_set_never_leaks_into_training(tmp_path):
    fasta, tax = write_labelled_set(tmp_path, n=40)
    test_dir = tmp_path / "ext"
    test_dir.mkdir()
    test_fasta, test_tax = write_labelled_set(test_dir, n=12, seed=5)
    test_fasta.write_text(test_fasta.read_text().replace(">s", ">t"))
    test_tax.write_text(test_tax.read_text().replace("\ns", "\nt"))
    test_seqs = dict(rec.split("\n")[:2] for rec in test_fasta.read_text().split(">")[1:])
    # the training collection also holds a test ID (another sequence) and a test sequence (another ID)
    fasta.write_text(fasta.read_text() + f">t0\n{'ACGT' * 20}\n>dup\n{test_seqs['t3']}\n")
    tax.write_text(tax.read_text() + "".join(f"{i}\t{TAX.format(g='Dorea')}\n" for i in ("t0", "dup")))
    prepared = tmp_path / "prepared.parquet"
    settings = {"test": {"fasta": str(test_fasta), "labels": str(test_tax)}}
    argv = ["seq-prepare", "--fasta", str(fasta), "--labels", str(tax), "--out", str(prepared)]
    assert main([*argv, "--settings", json.dumps(settings)]) == 0
    frame = pd.read_parquet(prepared)
    test = frame[frame["split"] == "test"]
    train = frame[frame["split"] == "train"]
    assert dict(zip(test["id"], test["sequence"], strict=True)) == test_seqs  # the external set as given
    assert sorted(train["id"]) == sorted(f"s{i}" for i in range(40))  # t0 and dup dropped
    assert not train["sequence"].isin(test["sequence"]).any()
    run = {
        "kind": "contrastive",
        "tokenizer": {"type": "kmer", "k": 4, "stride": 2},
        "model": {"dim": 8, "layers": 0, "pooling": "mean", "proj_hidden": 8, "proj_dim": 8},
        "label_ranks": ["genus"],
        "trainer": FAST,
    }
    model_dir = tmp_path / "model"
    argv = [
        "seq-train",
        "--prepared",
        str(prepared),
        "--settings",
        json.dumps(run),
        "--out-dir",
        str(model_dir),
    ]
    assert main(argv) == 0
    ref = pd.read_parquet(model_dir / "reference.parquet")
    assert sorted(ref["id"]) == sorted(train["id"])
    assert not ref["id"].isin(test["id"]).any() and not ref["sequence"].isin(test["sequence"]).any()


def test_classify_against_a_reference_needs_no_model(tmp_path, capsys):
    import zipfile

    fasta, tax = write_labelled_set(tmp_path)
    records = dict(zip(*[iter(fasta.read_text().split())] * 2, strict=True))
    # the reads: five reference reads of each genus under new IDs, and an all-N read
    reads = tmp_path / "reads.fasta"
    picks = [f">s{i}" for i in (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)]
    text = "".join(f">q{n}\n{records[p]}\n" for n, p in enumerate(picks))
    reads.write_text(text + ">blank\n" + "N" * 80 + "\n")
    taxonomy_qza = tmp_path / "tax.qza"
    with zipfile.ZipFile(taxonomy_qza, "w") as zf:
        meta = "uuid: u\ntype: FeatureData[Taxonomy]\nformat: TSVTaxonomyDirectoryFormat\n"
        zf.writestr("u/metadata.yaml", meta)
        q2_tsv = tax.read_text().replace("feature_id\ttaxonomy", "Feature ID\tTaxon")
        zf.writestr("u/data/taxonomy.tsv", q2_tsv)
    out = tmp_path / "taxonomy.tsv"
    for taxonomy in (tax, taxonomy_qza):
        argv = ["classify", "--reference", str(fasta), "--reference-taxonomy", str(taxonomy)]
        argv += ["--reads", str(reads)]
        assert main([*argv, "--out", str(out)]) == 0
        table = pd.read_csv(out, sep="\t", dtype=str)
        assert list(table["Feature ID"]) == [f"q{n}" for n in range(10)] + ["blank"]
        # a read identical to a reference read of genus G is named G (reads alternate genera: even s* Blautia)
        assert table["Taxon"][:5].str.endswith("g__Blautia").all()
        assert table["Taxon"][5:10].str.endswith("g__Dorea").all()
        assert table["Taxon"].iloc[-1] == "Unassigned" and float(table["Confidence"].iloc[-1]) == 0.0
    # .qza out: the same table as a FeatureData[Taxonomy] artifact that QIIME 2's rules accept
    artifact = tmp_path / "taxonomy.qza"
    assert main([*argv, "--out", str(artifact)]) == 0
    archive = check_archive(artifact, "FeatureData[Taxonomy]", "TSVTaxonomyDirectoryFormat", ["taxonomy.tsv"])
    inside = pd.read_csv(io.BytesIO(archive.data()["taxonomy.tsv"]), sep="\t", dtype=str)
    pd.testing.assert_frame_equal(inside, table)
    recorded = yaml.safe_load(archive.files["provenance/action/action.yaml"])["action"]["aam"]["settings"]
    assert recorded["stage"] == "classify" and recorded["reads"] == "reads.fasta"
    assert recorded["classifier"]["threshold"] == 0.25
    # every read Unassigned: QIIME 2 refuses a taxonomy of one rank, so no .qza, and one line
    artifact.unlink()
    blank = tmp_path / "blank.fasta"
    blank.write_text(">blank\n" + "N" * 80 + "\n")
    assert main([*argv[:-2], "--reads", str(blank), "--out", str(artifact)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(artifact) in err[0] and "one rank only" in err[0] and not artifact.exists()
    # a reference read without taxonomy: one line naming it, no output
    tax.write_text("\n".join(tax.read_text().splitlines()[:-1]) + "\n")
    out.unlink()
    assert main([*argv[:4], str(tax), "--reads", str(reads), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sequence 's39' has no taxonomy" in err[0] and not out.exists()
