"""Bad input to ingest, split and rarefy: one clear line naming the file and the problem, exit 2,
and no output. Each case runs the `aam` CLI entry point (`aam.cli.main`) on a small dataset
(tests/data/prepare) with one thing broken."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.prepare import FIXTURES, TARGETS, run_ingest

from aam.cli import main

OUTPUTS = ("features.parquet", "counts.parquet", "samples.parquet", "tree.nwk")


@pytest.fixture()
def data(tmp_path) -> Path:
    """A writable copy of the small valid dataset."""
    for name in ("table.tsv", "tree.nwk", "metadata.tsv"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    return tmp_path


def assert_failed(code, capsys, data: Path, file_name: str, *words: str, outputs=OUTPUTS, out="out"):
    """Exit 2, the last stderr line is one error naming the file and the problem, nothing written."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    last = lines[-1]
    assert last.startswith("aam "), last
    assert ": error: " in last
    assert file_name in last, last
    for word in words:
        assert word in last, (word, last)
    for name in outputs:
        assert not (data / out / name).exists(), name
    leftovers = list((data / out).glob("*")) if (data / out).exists() else []
    assert leftovers == [], leftovers


def test_valid_dataset_passes(data, capsys):
    assert run_ingest(data) == 0, capsys.readouterr().err
    for name in OUTPUTS:
        assert (data / "out" / name).exists()


def test_not_a_table(data, capsys):
    (data / "notatable.tsv").write_text(">seq1\nACGT\n>seq2\nACGA\n")
    assert_failed(
        run_ingest(data, table="notatable.tsv"), capsys, data, "notatable.tsv", "not a feature table"
    )


def test_binary_garbage_is_not_a_table(data, capsys):
    (data / "garbage.biom").write_bytes(bytes(range(256)) * 4)
    assert_failed(run_ingest(data, table="garbage.biom"), capsys, data, "garbage.biom", "not a feature table")


def test_duplicate_sample_ids(data, capsys):
    text = (data / "table.tsv").read_text().replace("10317.002", "10317.001")
    (data / "dup.tsv").write_text(text)
    assert_failed(
        run_ingest(data, table="dup.tsv"), capsys, data, "dup.tsv", "duplicate sample IDs", "10317.001"
    )


def test_duplicate_feature_ids(data, capsys):
    text = (data / "table.tsv").read_text().replace("GGGACCAGTA", "TTGACCAGTA")
    (data / "dup.tsv").write_text(text)
    assert_failed(
        run_ingest(data, table="dup.tsv"), capsys, data, "dup.tsv", "duplicate feature IDs", "TTGACCAGTA"
    )


def test_duplicate_ids_in_biom_json(data, capsys):
    import biom

    table = biom.Table(np.array([[1, 2], [3, 4]]), ["ACGT", "ACGA"], ["10317.001", "10317.002"])
    obj = json.loads(table.to_json("test"))
    obj["rows"][1]["id"] = "ACGT"
    (data / "dup.json").write_text(json.dumps(obj))
    assert_failed(run_ingest(data, table="dup.json"), capsys, data, "dup.json", "duplicate feature IDs")


def test_negative_counts(data, capsys):
    text = (data / "table.tsv").read_text().replace("\t40\t", "\t-40\t")
    (data / "neg.tsv").write_text(text)
    assert_failed(run_ingest(data, table="neg.tsv"), capsys, data, "neg.tsv", "negative counts")


def test_non_integer_counts(data, capsys):
    text = (data / "table.tsv").read_text().replace("\t40\t", "\t0.4\t")
    (data / "frac.tsv").write_text(text)
    assert_failed(run_ingest(data, table="frac.tsv"), capsys, data, "frac.tsv", "non-integer counts")


def test_empty_table(data, capsys):
    lines = (data / "table.tsv").read_text().splitlines()
    (data / "empty.tsv").write_text("\n".join(lines[:2]) + "\n")
    assert_failed(run_ingest(data, table="empty.tsv"), capsys, data, "empty.tsv", "empty table")


def test_all_zero_table(data, capsys):
    lines = (data / "table.tsv").read_text().splitlines()
    zero = [lines[0], lines[1]] + ["\t".join([ln.split("\t")[0]] + ["0"] * 6) for ln in lines[2:]]
    (data / "zero.tsv").write_text("\n".join(zero) + "\n")
    assert_failed(run_ingest(data, table="zero.tsv"), capsys, data, "zero.tsv", "empty table")


def test_feature_ids_not_dna_without_sequences(data, capsys):
    text = (data / "table.tsv").read_text().replace("ACGTACGTAA", "OTU_1")
    (data / "otus.tsv").write_text(text)
    (data / "otus.nwk").write_text((data / "tree.nwk").read_text().replace("ACGTACGTAA", "OTU_1"))
    code = run_ingest(data, table="otus.tsv", tree="otus.nwk")
    assert_failed(code, capsys, data, "otus.tsv", "not DNA", "OTU_1")


def test_sequences_missing_for_some_features(data, capsys):
    (data / "seqs.fasta").write_text(">ACGTACGTAA\nACGTACGTAA\n>ACGTACGTCC\nACGTACGTCC\n")
    code = run_ingest(data, "--sequences", str(data / "seqs.fasta"))
    # 3 of 5 features, 84 of 117 reads: past the default max_missing_sequence_fraction (0.1)
    assert_failed(
        code, capsys, data, "seqs.fasta", "3 of 5 table features (71.79% of reads) have no sequence",
        "TTGACCAGTA", "max_missing_sequence_fraction",
    )


def test_sequences_match_no_feature(data, capsys):
    (data / "seqs.fasta").write_text(">other\nACGTACGTAA\n")
    code = run_ingest(data, "--sequences", str(data / "seqs.fasta"))
    assert_failed(code, capsys, data, "seqs.fasta", "no sequence for any of the 5 table features")


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ({"classes": ["CD", "UC"]}, ("target 'dx'", "['UC'] are not in column 'diagnosis'", "control")),
        ({"positive_class": "cd"}, ("positive_class 'cd' is not one of its classes", "['CD', 'control']")),
        ({"classes": ["CD", "control"], "positive_class": "UC"}, ("positive_class 'UC'",)),
    ],
)
def test_target_classes_not_in_the_column(data, capsys, target, words):
    code = run_ingest(data, targets=[{**TARGETS[0], **target}])
    assert_failed(code, capsys, data, "metadata.tsv", *words)


def test_tree_shares_no_tip(data, capsys):
    (data / "other.nwk").write_text("((a:1,b:1):1,(c:1,d:1):1);")
    assert_failed(run_ingest(data, tree="other.nwk"), capsys, data, "other.nwk", "shares no tip")


def test_tree_unrooted(data, capsys):
    text = "(ACGTACGTAA:0.1,ACGTACGTCC:0.2,(TTGACCAGTA:0.3,(GGGACCAGTA:0.1,CCCTTTAAAG:0.4):0.1):0.2);"
    (data / "unrooted.nwk").write_text(text)
    assert_failed(run_ingest(data, tree="unrooted.nwk"), capsys, data, "unrooted.nwk", "unrooted")


def test_tree_qza_unrooted(data, capsys):
    with zipfile.ZipFile(data / "tree.qza", "w") as zf:
        zf.writestr("u/metadata.yaml", "uuid: u\ntype: Phylogeny[Unrooted]\nformat: NewickDirectoryFormat\n")
        zf.writestr("u/data/tree.nwk", (data / "tree.nwk").read_text())
    assert_failed(run_ingest(data, tree="tree.qza"), capsys, data, "tree.qza", "unrooted")


def test_tree_not_newick(data, capsys):
    (data / "broken.nwk").write_text("((ACGTACGTAA:0.1,ACGTACGTCC:0.2)")
    assert_failed(run_ingest(data, tree="broken.nwk"), capsys, data, "broken.nwk", "not a Newick tree")


def test_too_many_reads_missing_from_tree(data, capsys):
    (data / "small.nwk").write_text("((ACGTACGTAA:0.1,ACGTACGTCC:0.2):0.1,GGGACCAGTA:0.3);")
    code = run_ingest(data, "--settings", '{"max_missing_tree_fraction": 0.2}', tree="small.nwk")
    assert_failed(code, capsys, data, "small.nwk", "2 of 5 table features", "max_missing_tree_fraction")


def test_metadata_without_sample_id_column(data, capsys):
    text = (data / "metadata.tsv").read_text().replace("sample_name", "subject")
    (data / "noid.tsv").write_text(text)
    assert_failed(run_ingest(data, meta="noid.tsv"), capsys, data, "noid.tsv", "no sample ID column")


def test_metadata_without_target_column(data, capsys):
    targets = [{"name": "dx", "column": "disease", "type": "classification"}]
    assert_failed(run_ingest(data, targets=targets), capsys, data, "metadata.tsv", "no column 'disease'")


def test_metadata_without_group_column(data, capsys):
    text = (data / "metadata.tsv").read_text().replace("host_subject_id", "subject")
    (data / "nogroup.tsv").write_text(text)
    assert_failed(run_ingest(data, meta="nogroup.tsv"), capsys, data, "nogroup.tsv", "'host_subject_id'")


def test_target_missing_for_every_sample(data, capsys):
    lines = (data / "metadata.tsv").read_text().splitlines()
    rows = [lines[0]] + [
        "\t".join(f[:2] + ["Missing: Not provided"] + f[3:]) for f in (ln.split("\t") for ln in lines[1:])
    ]
    (data / "nodx.tsv").write_text("\n".join(rows) + "\n")
    code = run_ingest(data, meta="nodx.tsv")
    assert_failed(code, capsys, data, "nodx.tsv", "'diagnosis' is missing for every")


def test_regression_target_not_numeric(data, capsys):
    targets = [{"name": "dx", "column": "diagnosis", "type": "regression"}]
    assert_failed(run_ingest(data, targets=targets), capsys, data, "metadata.tsv", "non-numeric")


def test_no_table_sample_in_metadata(data, capsys):
    text = (data / "metadata.tsv").read_text().replace("10317.", "99999.")
    (data / "other_meta.tsv").write_text(text)
    assert_failed(
        run_ingest(data, meta="other_meta.tsv"), capsys, data, "other_meta.tsv", "no sample of the table"
    )


def test_missing_file(data, capsys):
    assert_failed(run_ingest(data, table="nope.biom"), capsys, data, "nope.biom", "file not found")


def _ingested(data: Path) -> Path:
    assert run_ingest(data) == 0
    return data / "out"


def test_depth_above_every_sample_total(data, capsys):
    out = _ingested(data)
    argv = [
        "rarefy",
        "--table",
        str(out / "counts.parquet"),
        "--samples",
        str(out / "samples.parquet"),
        "--depth",
        "100000",
        "--out",
        str(data / "rare" / "table.biom"),
        "--dropped",
        str(data / "rare" / "dropped.tsv"),
    ]
    code = main(argv)
    assert_failed(
        code,
        capsys,
        data,
        "counts.parquet",
        "depth 100000 is above every sample's total",
        outputs=("table.biom", "dropped.tsv"),
        out="rare",
    )


def test_rarefy_bad_depth_value(data, capsys):
    out = _ingested(data)
    argv = [
        "rarefy",
        "--table",
        str(out / "counts.parquet"),
        "--depth",
        "deep",
        "--out",
        str(data / "rare" / "t.biom"),
        "--dropped",
        str(data / "rare" / "d.tsv"),
    ]
    assert_failed(main(argv), capsys, data, "--depth", "'deep'", outputs=("t.biom", "d.tsv"), out="rare")


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ('{"bogus": 1}', ("bogus",)),
        ('{"fractions": {"train": "most"}}', ("fractions/train", "'most'")),
        ('{"fractions": {"train": 0.5, "test": 0.2}}', ("sum to 1",)),
    ],
)
def test_split_settings_unknown_key_or_wrong_type(data, capsys, settings, words):
    out = _ingested(data)
    argv = [
        "split",
        "--samples",
        str(out / "samples.parquet"),
        "--settings",
        settings,
        "--out",
        str(data / "sp" / "splits.tsv"),
        "--summary",
        str(data / "sp" / "summary.tsv"),
    ]
    assert_failed(main(argv), capsys, data, "", *words, outputs=("splits.tsv", "summary.tsv"), out="sp")


def test_ingest_settings_wrong_type(data, capsys):
    code = run_ingest(data, "--settings", '{"max_missing_tree_fraction": "lots"}')
    assert_failed(code, capsys, data, "--settings", "max_missing_tree_fraction", "'lots'")


@pytest.mark.parametrize(
    ("section", "bad", "words"),
    [
        ("rarefy", {"depth": "deep"}, ("rarefy/depth",)),
        ("rarefy", {"dept": 100}, ("dept",)),
        ("split", {"fractions": [0.7, 0.3]}, ("split/fractions",)),
        ("ingest", {"max_missing_tree_fraction": 2}, ("ingest/max_missing_tree_fraction",)),
    ],
)
def test_config_unknown_key_or_wrong_type(tmp_path, repo_root, section, bad, words):
    """The config loader (the schema the Snakefile validates with) rejects bad keys of these sections."""
    from aam.config import load_config
    from aam.errors import InputError

    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    config[section] = bad
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(InputError) as info:
        load_config(path)
    message = str(info.value)
    assert "config.yaml" in message and "\n" not in message
    for word in words:
        assert word in message


# --- BIOM JSON that biom's own reader accepts but would read wrong


def _biom_json(data: Path) -> dict:
    """The small dataset's table as a sparse BIOM JSON object (biom's own writer)."""
    import biom

    frame = np.loadtxt(data / "table.tsv", delimiter="\t", skiprows=2, usecols=range(1, 7))
    lines = (data / "table.tsv").read_text().splitlines()
    samples = lines[1].split("\t")[1:]
    features = [ln.split("\t")[0] for ln in lines[2:]]
    return json.loads(biom.Table(frame, features, samples).to_json("test"))


def test_biom_json_valid_counts_read_exactly(data, capsys):
    """The checks below reject nothing valid: the JSON copy ingests to the same counts as the TSV."""
    assert run_ingest(data) == 0
    from_tsv = (data / "out" / "counts.parquet").read_bytes()
    (data / "t.json").write_text(json.dumps(_biom_json(data)))
    assert run_ingest(data, table="t.json") == 0, capsys.readouterr().err
    assert (data / "out" / "counts.parquet").read_bytes() == from_tsv


def test_biom_json_duplicate_entry(data, capsys):
    obj = _biom_json(data)
    obj["data"].append(list(obj["data"][0]))  # the same (row, column) twice: biom would sum them
    (data / "dup_entry.json").write_text(json.dumps(obj))
    code = run_ingest(data, table="dup_entry.json")
    assert_failed(code, capsys, data, "dup_entry.json", "more than once", "ACGTACGTAA", "10317.001")


@pytest.mark.parametrize("shape", [[5, 7], [4, 6], [6, 6]])
def test_biom_json_shape_disagrees_with_rows_and_columns(data, capsys, shape):
    obj = _biom_json(data)
    assert obj["shape"] == [5, 6]
    obj["shape"] = shape
    (data / "shape.json").write_text(json.dumps(obj))
    code = run_ingest(data, table="shape.json")
    assert_failed(code, capsys, data, "shape.json", f"'shape' {shape}", "5 rows and 6 columns")


def test_biom_hdf5_with_a_count_stored_twice(data, capsys):
    import biom
    import h5py

    obj = _biom_json(data)
    table = biom.Table.from_json(obj)
    with h5py.File(data / "t.biom", "w") as fh:
        table.to_hdf5(fh, "test")
    with h5py.File(data / "t.biom", "r+") as fh:  # first sample's second entry -> its first feature again
        indices = fh["sample/matrix/indices"][:]
        indptr = fh["sample/matrix/indptr"][:]
        assert indptr[1] - indptr[0] >= 2
        indices[indptr[0] + 1] = indices[indptr[0]]
        fh["sample/matrix/indices"][:] = indices
        obs = fh["observation/matrix/indices"][:]
        optr = fh["observation/matrix/indptr"][:]
        # mirror it in the observation-major copy: the same sample listed twice for one feature
        row = int(np.flatnonzero(np.diff(optr) >= 2)[0])
        obs[optr[row] + 1] = obs[optr[row]]
        fh["observation/matrix/indices"][:] = obs
    assert_failed(run_ingest(data, table="t.biom"), capsys, data, "t.biom", "more than once")


# --- tree branch lengths: checked on the user's file, never a silent zero matrix


def test_tree_without_branch_lengths(data, capsys):
    import re

    (data / "nolengths.nwk").write_text(re.sub(r":[0-9.]+", "", (data / "tree.nwk").read_text()))
    code = run_ingest(data, tree="nolengths.nwk")
    assert_failed(code, capsys, data, "nolengths.nwk", "no branch lengths")


def test_tree_with_some_missing_lengths_is_an_error_by_default(data, capsys):
    text = (data / "tree.nwk").read_text().replace("TTGACCAGTA:0.3", "TTGACCAGTA")
    (data / "some.nwk").write_text(text)
    code = run_ingest(data, tree="some.nwk")
    words = ("1 of 10 branches", "'TTGACCAGTA'", "missing_branch_lengths")
    assert_failed(code, capsys, data, "some.nwk", *words)


def test_tree_with_some_missing_lengths_counts_them_as_zero_when_asked(data, capsys, caplog):
    from aam.io.newick import read_tree

    text = (data / "tree.nwk").read_text().replace("TTGACCAGTA:0.3", "TTGACCAGTA")
    (data / "some.nwk").write_text(text)
    assert run_ingest(data, "--settings", '{"missing_branch_lengths": "zero"}', tree="some.nwk") == 0
    assert "1 of 10 branches have no length and count as 0" in caplog.text
    pruned = read_tree(data / "out" / "tree.nwk")
    tip = pruned.names.index("TTGACCAGTA")
    assert pruned.length[tip] == 0.0  # written as 0, not left missing
    assert not np.isnan(pruned.length[1:]).any()


def test_tree_with_every_length_zero(data, capsys):
    import re

    (data / "zeros.nwk").write_text(re.sub(r":[0-9.]+", ":0", (data / "tree.nwk").read_text()))
    assert_failed(run_ingest(data, tree="zeros.nwk"), capsys, data, "zeros.nwk", "every branch length is 0")


def test_negative_branch_length_names_the_users_tree(data, capsys):
    text = (data / "tree.nwk").read_text().replace("GGGACCAGTA:0.1", "GGGACCAGTA:-0.1")
    (data / "neg.nwk").write_text(text)
    code = run_ingest(data, tree="neg.nwk")
    assert_failed(code, capsys, data, "neg.nwk", "negative branch length", "-0.1", "'GGGACCAGTA'")


def test_negative_length_on_an_unnamed_inner_branch(data, capsys):
    text = (
        "((ACGTACGTAA:0.1,ACGTACGTCC:0.2):-0.05,((TTGACCAGTA:0.3,GGGACCAGTA:0.1):0.2,CCCTTTAAAG:0.4):0.15);"
    )
    (data / "neg_inner.nwk").write_text(text)
    code = run_ingest(data, tree="neg_inner.nwk")
    assert_failed(code, capsys, data, "neg_inner.nwk", "negative", "clade of tip 'ACGTACGTAA'")


# --- metadata without samples


@pytest.mark.parametrize(
    "text",
    [
        "sample_name\thost_subject_id\tdiagnosis\n",
        "sample-id\thost_subject_id\tdiagnosis\n#q2:types\tcategorical\tcategorical\n",
        "#SampleID\thost_subject_id\tdiagnosis\n\n# a comment\n",
    ],
)
def test_metadata_with_a_header_only(data, capsys, text):
    (data / "header_only.tsv").write_text(text)
    code = run_ingest(data, meta="header_only.tsv")
    assert_failed(code, capsys, data, "header_only.tsv", "no samples")


# --- split: every split asked for gets samples


def _split(data: Path, out: Path, *extra: str) -> int:
    argv = ["split", "--samples", str(out / "samples.parquet"), "--group-column", "host_subject_id"]
    argv += ["--out", str(data / "sp" / "splits.tsv"), "--summary", str(data / "sp" / "summary.tsv"), *extra]
    return main(argv)


def test_single_group_leaves_val_and_test_empty(data, capsys):
    lines = (data / "metadata.tsv").read_text().splitlines()
    rows = [lines[0]] + ["\t".join([f[0], "subjA", *f[2:]]) for f in (ln.split("\t") for ln in lines[1:])]
    (data / "one_subject.tsv").write_text("\n".join(rows) + "\n")
    assert run_ingest(data, meta="one_subject.tsv") == 0
    capsys.readouterr()
    code = _split(data, data / "out")
    words = ("split val and test would get no sample", "1 group(s) of 'host_subject_id'")
    outputs = ("splits.tsv", "summary.tsv")
    assert_failed(code, capsys, data, "samples.parquet", *words, outputs=outputs, out="sp")


def test_single_group_is_fine_when_only_train_is_asked_for(data, capsys):
    lines = (data / "metadata.tsv").read_text().splitlines()
    rows = [lines[0]] + ["\t".join([f[0], "subjA", *f[2:]]) for f in (ln.split("\t") for ln in lines[1:])]
    (data / "one_subject.tsv").write_text("\n".join(rows) + "\n")
    assert run_ingest(data, meta="one_subject.tsv") == 0
    assert _split(data, data / "out", "--settings", '{"fractions": {"train": 1.0}}') == 0
    assert set(pd.read_csv(data / "sp" / "splits.tsv", sep="\t")["split"]) == {"train"}


# --- counts that no read count can be, and how a .qza that is not one is named


def _with_huge_count(data: Path, fmt: str) -> str:
    """The small table with one count of 2^63 (int64 overflows there), as BIOM JSON or HDF5."""
    import biom
    import h5py

    obj = _biom_json(data)
    obj["data"][0][2] = 2**63  # JSON holds it as written; biom reads it as a float
    if fmt == "json":
        (data / "huge.json").write_text(json.dumps(obj))
        return "huge.json"
    table = biom.Table.from_json(obj)
    with h5py.File(data / "huge.biom", "w") as fh:
        table.to_hdf5(fh, "test")
    return "huge.biom"


@pytest.mark.parametrize("fmt", ["json", "hdf5"])
def test_count_of_2_to_the_63_is_an_error_not_a_negative_count(data, capsys, fmt):
    """It was stored as -9223372036854775808 with exit 0, and rarefy then dropped the sample."""
    name = _with_huge_count(data, fmt)
    assert_failed(run_ingest(data, table=name), capsys, data, name, "9.22337e+18", "ACGTACGTAA",
                  "10317.001", "not a read count")
    argv = ["rarefy", "--table", str(data / name), "--depth", "5", "--out", str(data / "rare" / "t.biom"),
            "--dropped", str(data / "rare" / "d.tsv")]
    assert_failed(main(argv), capsys, data, name, "not a read count", outputs=("t.biom", "d.tsv"), out="rare")


def test_largest_exact_count_is_read_exactly(data, capsys):
    """2^53 - 1, the largest count float64 holds exactly, still reads as itself."""
    obj = _biom_json(data)
    obj["data"][0][2] = 2**53 - 1
    (data / "big.json").write_text(json.dumps(obj))
    assert run_ingest(data, table="big.json") == 0, capsys.readouterr().err
    counts = pd.read_parquet(data / "out" / "counts.parquet")
    assert counts["count"].max() == 2**53 - 1


def test_a_sample_too_deep_to_rarefy_is_named(data, capsys):
    """numpy's hypergeometric draw takes fewer than 1e9 reads per sample: one line, not a traceback."""
    text = (data / "table.tsv").read_text().replace("\t40\t", "\t2000000000\t")
    (data / "deep.tsv").write_text(text)
    argv = ["rarefy", "--table", str(data / "deep.tsv"), "--depth", "5",
            "--out", str(data / "rare" / "t.biom"), "--dropped", str(data / "rare" / "d.tsv")]
    sample = [ln for ln in text.splitlines() if "2000000000" in ln][0].split("\t").index("2000000000")
    sample_id = text.splitlines()[1].split("\t")[sample]
    assert_failed(main(argv), capsys, data, "deep.tsv", f"sample '{sample_id}' has 2e+09 reads",
                  "999,999,999", outputs=("t.biom", "d.tsv"), out="rare")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"#OTU ID\ts1\nACGT\t5\n", "not a zip file, although named .qza"),
        (b"", "an empty file, although named .qza"),
        (b"PK\x05\x06" + bytes(18), "an empty zip archive"),  # what zipfile writes for no members
    ],
    ids=["not_a_zip", "empty_file", "empty_zip"],
)
@pytest.mark.parametrize("role", ["table", "tree"])
def test_a_qza_that_is_not_an_archive_is_named_so(data, capsys, content, words, role):
    """Both were called "not a feature table (no tab-separated header line)"."""
    (data / "bad.qza").write_bytes(content)
    code = run_ingest(data, **{role: "bad.qza"})
    assert_failed(code, capsys, data, "bad.qza", "not a QIIME 2 archive", words)


def test_an_empty_zip_is_named_whatever_its_name(data, capsys):
    with zipfile.ZipFile(data / "empty.zip", "w"):
        pass
    assert_failed(run_ingest(data, table="empty.zip"), capsys, data, "empty.zip", "an empty zip archive")


def test_rna_sequences_read_as_dna_in_ingest(data, capsys):
    """U is read as T everywhere (as seq-prepare and classify read it): in --sequences, and in feature
    IDs that are sequences."""
    assert run_ingest(data) == 0
    expected = pd.read_parquet(data / "out" / "features.parquet")
    lines = (data / "table.tsv").read_text().splitlines()
    ids = [ln.split("\t")[0] for ln in lines[2:]]
    (data / "rna.fasta").write_text("".join(f">{i}\n{i.replace('T', 'U').lower()}\n" for i in ids))
    assert run_ingest(data, "--sequences", str(data / "rna.fasta")) == 0, capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_parquet(data / "out" / "features.parquet"), expected)
    rna_ids = {i: i.replace("T", "U") for i in ids}
    text = (data / "table.tsv").read_text()
    tree = (data / "tree.nwk").read_text()
    for dna, rna in rna_ids.items():
        text, tree = text.replace(dna, rna), tree.replace(dna, rna)
    (data / "rna.tsv").write_text(text)
    (data / "rna.nwk").write_text(tree)
    assert run_ingest(data, table="rna.tsv", tree="rna.nwk") == 0, capsys.readouterr().err
    got = pd.read_parquet(data / "out" / "features.parquet")
    assert list(got["sequence"]) == list(expected["sequence"])
    assert list(got["feature_id"]) == [rna_ids[i] for i in expected["feature_id"]]
