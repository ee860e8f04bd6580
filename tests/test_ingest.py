"""`aam ingest` and `aam rarefy` end to end: outputs, counts equal to biom-format's, tree pruning."""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import biom
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from aam.cli import main
from aam.io.newick import read_tree

FIXTURES = Path(__file__).parent / "data" / "prepare"
TARGETS = [
    {"name": "dx", "column": "diagnosis", "type": "classification"},
    {"name": "age", "column": "age", "type": "regression"},
]


def ingest_argv(table, tree, metadata, out, *extra, targets=TARGETS):
    return [
        "ingest",
        "--table",
        str(table),
        "--tree",
        str(tree),
        "--metadata",
        str(metadata),
        "--group-column",
        "host_subject_id",
        "--targets",
        json.dumps(targets),
        "--out-dir",
        str(out),
        *extra,
    ]


def long_to_frame(path) -> pd.DataFrame:
    frame = pq.read_table(path).to_pandas()
    return frame.pivot(index="sample", columns="feature", values="count").fillna(0).astype(np.int64)


@pytest.fixture(scope="module")
def demo_out(demo_ibd, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "ingest"
    argv = ingest_argv(
        demo_ibd / "table.biom",
        demo_ibd / "tree.nwk",
        demo_ibd / "metadata.tsv",
        out,
        targets=[{"name": "ibd", "column": "ibd", "type": "classification"}],
    )
    assert main(argv) == 0
    return out


def test_demo_counts_equal_biom_loader(demo_ibd, demo_out):
    reference = biom.load_table(str(demo_ibd / "table.biom"))
    counts = pq.read_table(demo_out / "counts.parquet")
    assert counts.schema.field("count").type == "int64"
    frame = counts.to_pandas()
    assert frame["sample"].tolist()[0] == reference.ids("sample")[0]  # table order
    matrix = reference.matrix_data.tocoo()
    expected = pd.DataFrame(
        {
            "sample": reference.ids("sample")[matrix.col],
            "feature": reference.ids("observation")[matrix.row],
            "count": matrix.data.astype(np.int64),
        }
    )
    key = ["sample", "feature"]
    merged = frame.merge(expected, on=key, how="outer", suffixes=("", "_ref"), indicator=True)
    assert (merged["_merge"] == "both").all()
    assert (merged["count"] == merged["count_ref"]).all()


def test_demo_features_samples_and_tree(demo_ibd, demo_out):
    features = pq.read_table(demo_out / "features.parquet").to_pandas()
    assert list(features.columns) == ["feature_id", "sequence"]
    assert (features["feature_id"] == features["sequence"]).all()  # deblur IDs are the sequences
    assert features["sequence"].str.fullmatch("[ACGT]+").all()
    tree = read_tree(demo_out / "tree.nwk")
    assert sorted(tree.tip_names()) == sorted(features["feature_id"])
    samples = pq.read_table(demo_out / "samples.parquet")
    assert samples.column_names[0] == "sample"
    assert all(field.type == "string" for field in samples.schema)
    frame = samples.to_pandas()
    assert len(frame) == 470
    assert frame["sample"].str.fullmatch(r"2538\.\d+").all()  # IDs stay strings, never floats
    assert set(frame["ibd"].dropna()) == {"Control", "Crohns"}
    assert frame["alcohol_frequency"].isna().any()  # "Missing: Not provided" became null


def test_fixture_dataset(tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        assert (
            main(ingest_argv(FIXTURES / "table.tsv", FIXTURES / "tree.nwk", FIXTURES / "metadata.tsv", out))
            == 0
        )
    frame = long_to_frame(out / "counts.parquet")
    reference = biom.load_table(str(FIXTURES / "table.tsv"))
    assert np.array_equal(
        frame.loc[list(reference.ids("sample")), list(reference.ids("observation"))].to_numpy(),
        reference.matrix_data.T.toarray().astype(np.int64),
    )
    tree = read_tree(out / "tree.nwk")
    assert "NOTINTABLE" not in tree.tip_names()
    assert len(tree.tip_names()) == 5
    samples = pd.read_parquet(out / "samples.parquet")
    assert list(samples["sample"]) == [f"10317.00{i}" for i in range(1, 7)]  # 10317.999 has no reads
    assert samples["bmi"].isna().sum() == 3


def test_features_missing_from_tree_dropped_with_warning(tmp_path, caplog):
    (tmp_path / "t.nwk").write_text(
        "((ACGTACGTAA:0.1,ACGTACGTCC:0.2):0.1,((TTGACCAGTA:0.3,CCCTTTAAAG:0.1):0.1,X:1):0.2);"
    )
    with caplog.at_level(logging.WARNING):
        code = main(
            ingest_argv(FIXTURES / "table.tsv", tmp_path / "t.nwk", FIXTURES / "metadata.tsv", tmp_path / "o")
        )
    assert code == 0
    # GGGACCAGTA holds 6 of 117 reads
    assert "1 of 5 table features (5.13% of reads) are not in the tree" in caplog.text
    features = pd.read_parquet(tmp_path / "o" / "features.parquet")
    assert "GGGACCAGTA" not in set(features["feature_id"])
    assert sorted(read_tree(tmp_path / "o" / "tree.nwk").tip_names()) == sorted(features["feature_id"])


def test_hashed_ids_with_fasta_and_qza_sequences(tmp_path):
    ids = {"ACGTACGTAA": "f1", "ACGTACGTCC": "f2", "TTGACCAGTA": "f3", "GGGACCAGTA": "f4", "CCCTTTAAAG": "f5"}
    table, tree = (FIXTURES / "table.tsv").read_text(), (FIXTURES / "tree.nwk").read_text()
    for seq, fid in ids.items():
        table, tree = table.replace(seq, fid), tree.replace(seq, fid)
    (tmp_path / "t.tsv").write_text(table)
    (tmp_path / "t.nwk").write_text(tree)
    fasta = "".join(f">{fid} some description\n{seq[:5].lower()}\n{seq[5:]}\n" for seq, fid in ids.items())
    (tmp_path / "seqs.fasta").write_text(fasta)
    with zipfile.ZipFile(tmp_path / "seqs.qza", "w") as zf:
        zf.writestr(
            "u/metadata.yaml", "uuid: u\ntype: FeatureData[Sequence]\nformat: DNASequencesDirectoryFormat\n"
        )
        zf.writestr("u/data/dna-sequences.fasta", fasta)
    for source in ("seqs.fasta", "seqs.qza"):
        out = tmp_path / source
        argv = ingest_argv(
            tmp_path / "t.tsv", tmp_path / "t.nwk", FIXTURES / "metadata.tsv", out.with_suffix(".out")
        )
        assert main([*argv, "--sequences", str(tmp_path / source)]) == 0
        features = pd.read_parquet(out.with_suffix(".out") / "features.parquet")
        assert dict(zip(features["feature_id"], features["sequence"], strict=True)) == {
            fid: seq for seq, fid in ids.items()
        }


def test_qza_table_and_sepp_tree(shared_data, tmp_path, caplog):
    base = shared_data / "ibd2538"
    with caplog.at_level(logging.WARNING):
        code = main(
            ingest_argv(
                base / "table.qza",
                base / "sepp-insertion-tree.qza",
                base / "metadata.tsv",
                tmp_path / "o",
                targets=[{"name": "ibd", "column": "ibd", "type": "classification"}],
            )
        )
    assert code == 0
    assert "129 of 10099 table features" in caplog.text
    features = pd.read_parquet(tmp_path / "o" / "features.parquet")
    assert len(features) == 9970
    demo = read_tree(base / "tree.nwk")
    assert sorted(read_tree(tmp_path / "o" / "tree.nwk").tip_names()) == sorted(demo.tip_names())


def test_rarefy_stage(tmp_path):
    out = tmp_path / "ingest"
    assert (
        main(ingest_argv(FIXTURES / "table.tsv", FIXTURES / "tree.nwk", FIXTURES / "metadata.tsv", out)) == 0
    )
    rare = tmp_path / "rarefied"
    argv = [
        "rarefy",
        "--table",
        str(out / "counts.parquet"),
        "--samples",
        str(out / "samples.parquet"),
        "--depth",
        "16",
        "--seed",
        "1",
        "--out",
        str(rare / "table.biom"),
        "--dropped",
        str(rare / "dropped.tsv"),
    ]
    assert main(argv) == 0
    table = biom.load_table(str(rare / "table.biom"))
    assert np.all(table.sum(axis="sample") == 16)
    # sample totals: 20, 20, 20, 10, 43, 4 -> 10317.004 (10) and 10317.006 (4) are below 16
    dropped = pd.read_csv(rare / "dropped.tsv", sep="\t", dtype={"sample": str})
    assert dropped.to_dict("list") == {"sample": ["10317.004", "10317.006"], "reads": [10, 4]}
    assert list(table.ids("sample")) == ["10317.001", "10317.002", "10317.003", "10317.005"]
    original = biom.load_table(str(FIXTURES / "table.tsv"))
    for sample in table.ids("sample"):
        got = dict(zip(table.ids("observation"), table.data(sample), strict=True))
        before = dict(zip(original.ids("observation"), original.data(sample), strict=True))
        assert all(0 < v <= before[f] for f, v in got.items() if v)
    # depth "auto" keeping every sample: the smallest total, and that sample unchanged
    argv[argv.index("--depth") + 1] = "auto"
    argv += ["--min-sample-fraction", "1.0"]
    assert main(argv) == 0
    table = biom.load_table(str(rare / "table.biom"))
    assert np.all(table.sum(axis="sample") == 4)
    got = {f: v for f, v in zip(table.ids("observation"), table.data("10317.006"), strict=True) if v}
    assert got == {
        "ACGTACGTAA": 1,
        "TTGACCAGTA": 2,
        "GGGACCAGTA": 1,
    }


def test_rarefy_stage_reads_biom(demo_ibd, tmp_path):
    argv = [
        "rarefy",
        "--table",
        str(demo_ibd / "table.biom"),
        "--depth",
        "1000",
        "--seed",
        "0",
        "--out",
        str(tmp_path / "r.biom"),
        "--dropped",
        str(tmp_path / "d.tsv"),
    ]
    assert main(argv) == 0
    table = biom.load_table(str(tmp_path / "r.biom"))
    assert np.all(table.sum(axis="sample") == 1000)
    dropped = pd.read_csv(tmp_path / "d.tsv", sep="\t")
    assert len(dropped) + table.shape[1] == 470
    assert (dropped["reads"] < 1000).all()


def test_table_samples_without_metadata_stay_for_pretraining(tmp_path, caplog):
    """A table sample the metadata lacks: in counts.parquet (and the rarefied table, hence the token
    cache that pretraining reads) but not in samples.parquet (no split, no target)."""
    meta = tmp_path / "metadata.tsv"
    lines = (FIXTURES / "metadata.tsv").read_text().splitlines()
    meta.write_text("\n".join(line for line in lines if not line.startswith("10317.005")) + "\n")
    out = tmp_path / "ingest"
    with caplog.at_level(logging.WARNING):
        assert main(ingest_argv(FIXTURES / "table.tsv", FIXTURES / "tree.nwk", meta, out)) == 0
    assert "1 of 6 table samples are not in" in caplog.text
    counts = long_to_frame(out / "counts.parquet")
    reference = biom.load_table(str(FIXTURES / "table.tsv"))
    assert counts.loc["10317.005"].sum() == reference.data("10317.005").sum() == 43
    samples = pd.read_parquet(out / "samples.parquet")
    assert "10317.005" not in set(samples["sample"])
    assert list(samples["sample"]) == ["10317.001", "10317.002", "10317.003", "10317.004", "10317.006"]
    rare = tmp_path / "rarefied"
    argv = ["rarefy", "--table", str(out / "counts.parquet"), "--samples", str(out / "samples.parquet"),
            "--depth", "16", "--out", str(rare / "table.biom"), "--dropped", str(rare / "dropped.tsv")]
    assert main(argv) == 0
    table = biom.load_table(str(rare / "table.biom"))
    assert list(table.ids("sample")) == ["10317.001", "10317.002", "10317.003", "10317.005"]


def test_features_without_sequence_dropped_with_warning(tmp_path, caplog):
    # every feature but GGGACCAGTA (6 of 117 reads) has a sequence
    kept = ["ACGTACGTAA", "ACGTACGTCC", "TTGACCAGTA", "CCCTTTAAAG"]
    (tmp_path / "seqs.fasta").write_text("".join(f">{f}\n{f}\n" for f in kept))
    argv = ingest_argv(FIXTURES / "table.tsv", FIXTURES / "tree.nwk", FIXTURES / "metadata.tsv",
                       tmp_path / "o")
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--sequences", str(tmp_path / "seqs.fasta")]) == 0
    assert "1 of 5 table features (5.13% of reads) have no sequence (e.g. 'GGGACCAGTA')" in caplog.text
    features = pd.read_parquet(tmp_path / "o" / "features.parquet")
    assert list(features["feature_id"]) == kept
    assert sorted(read_tree(tmp_path / "o" / "tree.nwk").tip_names()) == sorted(kept)
    assert "GGGACCAGTA" not in set(pq.read_table(tmp_path / "o" / "counts.parquet")["feature"].to_pylist())
    # the same share is an error under a stricter limit
    strict = [*argv, "--sequences", str(tmp_path / "seqs.fasta"), "--settings",
              '{"max_missing_sequence_fraction": 0.05}']
    assert main(strict) == 2


def test_missing_value_terms_from_settings(tmp_path):
    text = (FIXTURES / "metadata.tsv").read_text().replace("\t34\t", "\tNone\t").replace("\t51\t", "\t-\t")
    (tmp_path / "m.tsv").write_text(text)
    targets = [{"name": "age", "column": "age", "type": "regression"}]
    argv = ingest_argv(FIXTURES / "table.tsv", FIXTURES / "tree.nwk", tmp_path / "m.tsv", tmp_path / "o",
                       targets=targets)
    assert main(argv) == 2  # '-' is no number and not a default missing-value term; 'None' is one
    assert main([*argv, "--settings", '{"missing_values": ["None", "-", "", "not applicable"]}']) == 0
    ages = pd.read_parquet(tmp_path / "o" / "samples.parquet").set_index("sample")["age"]
    assert ages.isna().to_dict() == {"10317.001": True, "10317.002": False, "10317.003": True,
                                     "10317.004": True, "10317.005": False, "10317.006": False}
