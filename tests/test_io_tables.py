"""aam.io.biom: every table format gives the same counts and IDs as biom-format's own loader."""

from __future__ import annotations

import io
import zipfile

import biom
import h5py
import numpy as np
import pytest

from aam.errors import InputError
from aam.io.biom import csr_to_table, read_table, table_to_csr, write_biom
from aam.io.qza import qza_type, read_payload


@pytest.fixture(scope="module")
def reference(demo_ibd) -> biom.Table:
    """The first 60 samples of the demo table (features without reads removed), via biom-format."""
    table = biom.load_table(str(demo_ibd / "table.biom"))
    table = table.filter(table.ids("sample")[:60], axis="sample", inplace=False)
    return table.remove_empty(axis="observation", inplace=False)


def assert_same(ours: biom.Table, theirs: biom.Table) -> None:
    assert list(ours.ids("sample")) == list(theirs.ids("sample"))
    assert list(ours.ids("observation")) == list(theirs.ids("observation"))
    assert (ours.matrix_data != theirs.matrix_data).nnz == 0


def write_hdf5(table: biom.Table, path) -> None:
    with h5py.File(path, "w") as fh:
        table.to_hdf5(fh, "test")


def make_qza(path, payload: bytes, sem_type="FeatureTable[Frequency]", member="feature-table.biom") -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("0a1b/metadata.yaml", f"uuid: 0a1b\ntype: {sem_type}\nformat: BIOMV210DirFmt\n")
        zf.writestr("0a1b/VERSION", "QIIME 2\narchive: 5\n")
        zf.writestr(f"0a1b/data/{member}", payload)


def test_hdf5(tmp_path, reference):
    write_hdf5(reference, tmp_path / "t.biom")
    assert_same(read_table(tmp_path / "t.biom"), biom.load_table(str(tmp_path / "t.biom")))


def test_demo_hdf5(demo_ibd):
    assert_same(read_table(demo_ibd / "table.biom"), biom.load_table(str(demo_ibd / "table.biom")))


def test_json(tmp_path, reference):
    (tmp_path / "t.json").write_text(reference.to_json("test"))
    assert_same(read_table(tmp_path / "t.json"), biom.load_table(str(tmp_path / "t.json")))


@pytest.mark.parametrize("constructed_line", [True, False])
def test_classic_tsv(tmp_path, reference, constructed_line):
    text = reference.to_tsv()
    if not constructed_line:
        text = text.split("\n", 1)[1]
    (tmp_path / "t.tsv").write_text(text)
    assert_same(read_table(tmp_path / "t.tsv"), biom.load_table(str(tmp_path / "t.tsv")))


def test_tsv_with_taxonomy_column_and_numeric_ids(tmp_path):
    text = "#OTU ID\t1001\t1002\ttaxonomy\n4479944\t3\t0\tk__Bacteria\n100\t1\t2\tk__Archaea\n"
    (tmp_path / "t.tsv").write_text(text)
    table = read_table(tmp_path / "t.tsv")
    theirs = biom.load_table(str(tmp_path / "t.tsv"))
    assert list(table.ids("observation")) == ["4479944", "100"] == list(theirs.ids("observation"))
    assert list(table.ids("sample")) == ["1001", "1002"]
    assert np.array_equal(table.matrix_data.toarray(), theirs.matrix_data.toarray())


def test_qza_with_hdf5_payload(tmp_path, reference):
    buffer = io.BytesIO()
    write_hdf5(reference, tmp_path / "payload.biom")
    buffer.write((tmp_path / "payload.biom").read_bytes())
    make_qza(tmp_path / "t.qza", buffer.getvalue())
    assert qza_type(tmp_path / "t.qza") == "FeatureTable[Frequency]"
    assert_same(read_table(tmp_path / "t.qza"), biom.load_table(str(tmp_path / "payload.biom")))


def test_qza_of_wrong_type(tmp_path):
    make_qza(tmp_path / "t.qza", b"x", sem_type="FeatureTable[RelativeFrequency]")
    with pytest.raises(InputError, match=r"t.qza: QIIME 2 archive of type FeatureTable\[RelativeFrequency\]"):
        read_table(tmp_path / "t.qza")


def test_zip_that_is_not_a_qza(tmp_path):
    with zipfile.ZipFile(tmp_path / "t.zip", "w") as zf:
        zf.writestr("a.txt", "x")
        zf.writestr("b/c.txt", "y")
        zf.writestr("d/e.txt", "z")
    with pytest.raises(InputError, match="t.zip: not a QIIME 2 archive"):
        read_table(tmp_path / "t.zip")


def test_shared_qza_matches_biom_loader(shared_data):
    path = shared_data / "ibd2538" / "table.qza"
    _, payload = read_payload(path, ("FeatureTable[Frequency]",), (".biom",))
    with h5py.File(io.BytesIO(payload), "r") as fh:
        theirs = biom.Table.from_hdf5(fh)
    ours = read_table(path)
    assert ours.shape == (10_099, 470)
    assert_same(ours, theirs)


def test_csr_round_trip_and_write(tmp_path, reference):
    counts, samples, features = table_to_csr(reference)
    assert counts.shape == (len(samples), len(features))
    assert counts.dtype == np.int64
    assert np.array_equal(counts.toarray(), reference.matrix_data.T.toarray())
    write_biom(csr_to_table(counts, samples, features), tmp_path / "out.biom")
    assert_same(biom.load_table(str(tmp_path / "out.biom")), reference)
