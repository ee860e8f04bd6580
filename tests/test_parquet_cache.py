"""Token caches: contents, byte-identical rebuilds, and rebuild on changed settings or inputs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.token_inputs import COUNTS, FEATURES, write_inputs

from aam.cli import main
from aam.data.nucleotides import NucleotideTokenizer
from aam.data.token_caches import build
from aam.errors import InputError
from aam.io import parquet_cache as pc


def run_build(tmp, out="out", max_bp=8, **kw):
    f, c = write_inputs(tmp / "in", **kw)
    return build(f, c, None, tmp / out / "features.parquet", tmp / out / "samples.parquet", max_bp=max_bp)


def test_contents(tmp_path):
    assert run_build(tmp_path)
    feats = pc.read_features(tmp_path / "out" / "features.parquet")
    assert list(feats.feature_ids) == list(FEATURES)
    np.testing.assert_array_equal(feats.tokens, NucleotideTokenizer(8).encode(list(FEATURES.values())))
    assert feats.lengths.tolist() == [8, 8, 6, 8]
    assert feats.meta["n_truncated"] == 2 and feats.meta["tokenizer"]["max_bp"] == 8

    samples = pc.read_samples(tmp_path / "out" / "samples.parquet")
    assert list(samples.sample_ids) == ["s1", "s2", "s0"]  # ingest (first appearance) order
    rows = [tuple(map(list, samples.row(i))) for i in range(3)]
    assert rows[0] == ([2, 0, 1], [9, 5, 1])
    assert rows[1] == ([0, 1, 3], [10, 4, 4])  # tie 4/4 broken by feature index
    assert rows[2] == ([2], [3])
    assert samples.totals.tolist() == [15, 18, 3]
    assert samples.rarefied.all()


def test_integer_feature_column_gives_the_same_cache(tmp_path):
    run_build(tmp_path / "a")
    run_build(tmp_path / "b", feature_as_index=True)
    a = pc.read_samples(tmp_path / "a" / "out" / "samples.parquet")
    b = pc.read_samples(tmp_path / "b" / "out" / "samples.parquet")
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.indptr, b.indptr)


def test_byte_identical_across_runs(tmp_path):
    f, c = write_inputs(tmp_path / "in")
    for out in ("x", "y"):
        build(f, c, None, tmp_path / out / "features.parquet", tmp_path / out / "samples.parquet", 8)
    for name in ("features.parquet", "samples.parquet"):
        assert (tmp_path / "x" / name).read_bytes() == (tmp_path / "y" / name).read_bytes()


def test_changed_setting_rebuilds_and_same_setting_keeps(tmp_path):
    f, c = write_inputs(tmp_path / "in")
    outs = (tmp_path / "o" / "features.parquet", tmp_path / "o" / "samples.parquet")
    assert build(f, c, None, *outs, max_bp=8)
    assert not build(f, c, None, *outs, max_bp=8)  # current: kept
    assert build(f, c, None, *outs, max_bp=12)  # other settings: rebuilt
    feats = pc.read_features(outs[0])
    assert feats.max_bp == 12 and feats.meta["tokenizer"]["max_bp"] == 12
    with pytest.raises(pc.CacheMismatchError, match="max_bp"):
        pc.read_features(outs[0], expected={"tokenizer": NucleotideTokenizer(8).settings()})


def test_changed_input_rebuilds(tmp_path):
    f, c = write_inputs(tmp_path / "in")
    outs = (tmp_path / "o" / "features.parquet", tmp_path / "o" / "samples.parquet")
    build(f, c, None, *outs, max_bp=8)
    write_inputs(tmp_path / "in", counts=COUNTS[:-1])
    assert build(f, c, None, *outs, max_bp=8)
    assert len(pc.read_samples(outs[1])) == 2


def test_invalid_sequence_is_an_input_error(tmp_path):
    f, c = write_inputs(tmp_path / "in")
    bad = {"feature_id": ["f0", "f1", "f2", "f3"], "sequence": ["ACGT", "AC-T", "A", "C"]}
    pq.write_table(pa.table(bad), f)
    with pytest.raises(InputError, match="sequence f1"):
        build(f, c, None, tmp_path / "o" / "a.parquet", tmp_path / "o" / "b.parquet", 8)


def test_unknown_feature_in_counts(tmp_path):
    f, c = write_inputs(tmp_path / "in", counts=[("s1", "nope", 3)])
    with pytest.raises(InputError, match="nope"):
        build(f, c, None, tmp_path / "o" / "a.parquet", tmp_path / "o" / "b.parquet", 8)


def test_cli(tmp_path, capsys):
    f, c = write_inputs(tmp_path / "in")
    t = tmp_path / "t"
    args = ["tokenize", "--features", str(f), "--counts", str(c),
            "--out-dir", str(t)]
    assert main(args + ["--settings", '{"max_bp": 5}']) == 0
    assert pc.read_metadata(tmp_path / "t" / "features.parquet")["tokenizer"]["max_bp"] == 5
    assert main(args + ["--settings", '{"max_bp": 5, "bogus": 1}']) == 2


def test_rarefied_table_marks_samples_and_depth_but_not_its_bytes(tmp_path, monkeypatch):
    import scipy.sparse as sp

    from aam.io.biom import csr_to_table, write_biom

    f, c = write_inputs(tmp_path / "in")
    # s1 and s2 reach depth 10 (s0 has 3 reads); two writes differ in the BIOM's creation date
    # (aam pins it to $SOURCE_DATE_EPOCH; another tool writes the clock's)
    table = csr_to_table(sp.csr_matrix(np.array([[5, 2, 3, 0], [10, 0, 0, 0]])), ["s1", "s2"], list(FEATURES))
    for epoch, name in enumerate(("r1.biom", "r2.biom")):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", str(epoch))
        write_biom(table, tmp_path / name)
    assert (tmp_path / "r1.biom").read_bytes() != (tmp_path / "r2.biom").read_bytes()
    outs = [(tmp_path / d / "features.parquet", tmp_path / d / "samples.parquet") for d in ("a", "b")]
    build(f, c, tmp_path / "r1.biom", *outs[0], max_bp=8)
    build(f, c, tmp_path / "r2.biom", *outs[1], max_bp=8)
    for x, y in zip(*outs, strict=True):
        assert x.read_bytes() == y.read_bytes()
    samples = pc.read_samples(outs[0][1])
    assert samples.rarefied.tolist() == [True, True, False]
    assert samples.meta["rarefaction_depth"] == 10
