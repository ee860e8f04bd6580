"""`aam export-qza`: every exported type read back with the package's own .qza reader and checked
against QIIME 2's rules, as its sources state them (QIIME 2 is not on PyPI):

- the archive: qiime2/core/archive/archiver.py (one root folder named by a version-4 UUID, a VERSION
  file), format/v0.py, v1.py, v5.py (metadata.yaml, provenance/, checksums.md5) and
  provenance_lib/util.py and _checksum_validator.py (VERSION's pattern, the root taken from the
  first zip entry, md5 of every entry);
- the payloads: q2-types' BIOMV210Format, LSMatFormat and OrdinationFormat (scikit-bio's sniffers),
  AlphaDiversityFormat, TSVTaxonomyFormat, ImmutableMetadataFormat (QIIME 2 metadata); and
  q2-sample-classifier's PredictionsFormat and ProbabilitiesFormat.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import biom
import h5py
import numpy as np
import pandas as pd
import pytest
import skbio
from helpers.qza import check_archive

from aam.cli import main
from aam.io.biom import read_table, write_biom
from aam.io.embeddings import write_embeddings
from aam.io.qza import read_archive

# qiime2/metadata/base.py
ID_HEADERS = {"id", "sampleid", "sample id", "sample-id", "featureid", "feature id", "feature-id"}
# Qiita-style IDs that a float parse would change (2538.10 -> 2538.1)
SAMPLES = ["2538.10", "2538.1000102", "2538.2", "S4", "S5", "S6"]


def export(tmp_path: Path, kind: str, source: Path, *extra: str, name: str = "out.qza") -> Path:
    out = tmp_path / name
    assert main(["export-qza", "--type", kind, "--input", str(source), *extra, "--out", str(out)]) == 0
    return out


def tsv_rows(text: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.decode()), delimiter="\t"))


def test_feature_table_round_trip(tmp_path):
    counts = np.array([[0, 5, 1], [3, 0, 2], [7, 1, 0], [0, 0, 4]], dtype=float)
    table = biom.Table(counts.T, ["f1", "f2", "f3"], SAMPLES[:4])
    write_biom(table, tmp_path / "table.biom")
    qza = export(tmp_path, "FeatureTable[Frequency]", tmp_path / "table.biom")
    archive = check_archive(qza, "FeatureTable[Frequency]", "BIOMV210DirFmt", ["feature-table.biom"])
    with h5py.File(io.BytesIO(archive.data()["feature-table.biom"]), "r") as fh:  # BIOMV210Format.sniff
        for group in ("sample", "sample/matrix", "sample/metadata", "sample/group-metadata", "observation",
                      "observation/matrix", "observation/metadata", "observation/group-metadata"):
            assert group in fh
        for dataset in ("sample/ids", "sample/matrix/data", "sample/matrix/indptr", "sample/matrix/indices",
                        "observation/ids", "observation/matrix/data", "observation/matrix/indptr",
                        "observation/matrix/indices"):
            assert dataset in fh
        for attr in ("id", "type", "format-url", "format-version", "generated-by", "creation-date",
                     "shape", "nnz"):
            assert attr in fh.attrs
    back = read_table(qza)  # the ingest stage's reader takes the .qza as it takes any table
    assert list(back.ids()) == SAMPLES[:4] and list(back.ids("observation")) == ["f1", "f2", "f3"]
    np.testing.assert_array_equal(back.matrix_data.toarray(), counts.T)


def test_distance_matrix_and_pcoa(tmp_path):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(6, 3))
    dm = skbio.DistanceMatrix(np.linalg.norm(points[:, None] - points[None], axis=-1), ids=SAMPLES)
    dm.write(str(tmp_path / "dm.tsv"), format="lsmat")
    qza = export(tmp_path, "DistanceMatrix", tmp_path / "dm.tsv", name="dm.qza")
    payload = check_archive(qza, "DistanceMatrix", "DistanceMatrixDirectoryFormat",
                            ["distance-matrix.tsv"]).data()["distance-matrix.tsv"]
    (tmp_path / "payload.tsv").write_bytes(payload)
    assert skbio.io.io_registry.get_sniffer("lsmat")(str(tmp_path / "payload.tsv"))[0]  # LSMatFormat.sniff
    back = skbio.DistanceMatrix.read(str(tmp_path / "payload.tsv"))
    assert list(back.ids) == SAMPLES
    np.testing.assert_allclose(back.data, dm.data)

    asymmetric = dm.data.copy()
    asymmetric[0, 1] += 0.5
    pd.DataFrame(asymmetric, index=SAMPLES, columns=SAMPLES).to_csv(tmp_path / "bad.tsv", sep="\t")
    assert main(["export-qza", "--type", "DistanceMatrix", "--input", str(tmp_path / "bad.tsv"),
                 "--out", str(tmp_path / "bad.qza")]) == 2
    assert not (tmp_path / "bad.qza").exists()

    ordination = skbio.stats.ordination.pcoa(dm)
    ordination.write(str(tmp_path / "pcoa.txt"), format="ordination")
    qza = export(tmp_path, "PCoAResults", tmp_path / "pcoa.txt", name="pcoa.qza")
    payload = check_archive(qza, "PCoAResults", "OrdinationDirectoryFormat",
                            ["ordination.txt"]).data()["ordination.txt"]
    (tmp_path / "ordination.txt").write_bytes(payload)
    assert skbio.io.io_registry.get_sniffer("ordination")(str(tmp_path / "ordination.txt"))[0]
    back = skbio.OrdinationResults.read(str(tmp_path / "ordination.txt"))
    assert list(back.samples.index) == SAMPLES
    np.testing.assert_allclose(back.samples.to_numpy(), ordination.samples.to_numpy())


def test_alpha_diversity_keeps_qiita_ids_as_text(tmp_path):
    values = [20.9, 11.6, 3.25, 7.0, 1.5, 2.0]
    frame = pd.DataFrame({"sample": SAMPLES, "faith_pd": values})
    frame.to_csv(tmp_path / "faith_pd.tsv", sep="\t", index=False)
    qza = export(tmp_path, "SampleData[AlphaDiversity]", tmp_path / "faith_pd.tsv")
    rows = tsv_rows(check_archive(qza, "SampleData[AlphaDiversity]", "AlphaDiversityDirectoryFormat",
                                  ["alpha-diversity.tsv"]).data()["alpha-diversity.tsv"])
    # AlphaDiversityFormat: a header of >= 2 columns, every record as long, at least one record;
    # q2-types writes a pd.Series: empty index header, then the measure
    assert rows[0] == ["", "faith_pd"]
    assert all(len(r) == len(rows[0]) for r in rows) and len(rows) > 1
    assert [r[0] for r in rows[1:]] == SAMPLES
    assert [float(r[1]) for r in rows[1:]] == values


def test_taxonomy(tmp_path):
    frame = pd.DataFrame({"Feature ID": ["ASV1", "ASV2"],
                          "Taxon": ["k__Bacteria; p__Firmicutes", "k__Bacteria"], "Confidence": [0.9, 0.7]})
    frame.to_csv(tmp_path / "taxonomy.tsv", sep="\t", index=False)
    qza = export(tmp_path, "FeatureData[Taxonomy]", tmp_path / "taxonomy.tsv")
    text = check_archive(qza, "FeatureData[Taxonomy]", "TSVTaxonomyDirectoryFormat",
                         ["taxonomy.tsv"]).data()["taxonomy.tsv"]
    rows = tsv_rows(text)
    # TSVTaxonomyFormat: header starts Feature ID, Taxon; records as long as the header; depth > 1
    # somewhere; no line ends in ';'
    assert rows[0][:2] == ["Feature ID", "Taxon"]
    assert all(len(r) == len(rows[0]) for r in rows) and len(rows) == 3
    assert max(line.count(";") for line in text.decode().splitlines()) > 0
    assert not any(line.rstrip().endswith(";") for line in text.decode().splitlines())


def test_taxonomy_of_one_rank_is_refused_without_output(tmp_path, capsys):
    frame = pd.DataFrame({"Feature ID": ["A"], "Taxon": ["k__Bacteria"]})
    frame.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    code = main(["export-qza", "--type", "FeatureData[Taxonomy]", "--input", str(tmp_path / "t.tsv"),
                 "--out", str(tmp_path / "t.qza")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "t.tsv" in err[0] and "depth of one" in err[0]
    assert list(tmp_path.iterdir()) == [tmp_path / "t.tsv"]


def predictions_file(tmp_path: Path) -> Path:
    frame = pd.DataFrame({
        "sample": SAMPLES, "split": "test", "y_true": ["a", "b", "a", "b", "a", "b"],
        "aam_pred": ["a", "b", "b", "b", "a", "a"], "rf_pred": ["a", "a", "a", "b", "b", "b"],
        "aam_prob_a": [0.9, 0.2, 0.4, 0.3, 0.8, 0.6], "aam_prob_b": [0.1, 0.8, 0.6, 0.7, 0.2, 0.4],
        "rf_prob_a": [0.7, 0.6, 0.5, 0.1, 0.3, 0.2], "rf_prob_b": [0.3, 0.4, 0.5, 0.9, 0.7, 0.8],
    })
    frame.to_csv(tmp_path / "predictions.tsv", sep="\t", index=False)
    return tmp_path / "predictions.tsv"


def test_classifier_predictions_and_probabilities(tmp_path):
    source = predictions_file(tmp_path)
    cases = ((None, ["a", "b", "b", "b", "a", "a"]), ("rf_pred", ["a", "a", "a", "b", "b", "b"]))
    for column, expected in cases:
        extra = ["--column", column] if column else []
        qza = export(tmp_path, "SampleData[ClassifierPredictions]", source, *extra, name=f"p{column}.qza")
        rows = tsv_rows(check_archive(qza, "SampleData[ClassifierPredictions]", "PredictionsDirectoryFormat",
                                      ["predictions.tsv"]).data()["predictions.tsv"])
        # PredictionsFormat: a header, then records of exactly 2 fields, at least one
        assert rows[0] == ["SampleID", "prediction"] and all(len(r) == 2 for r in rows) and len(rows) > 1
        assert [r[0] for r in rows[1:]] == SAMPLES and [r[1] for r in rows[1:]] == expected
    qza = export(tmp_path, "SampleData[Probabilities]", source, name="prob.qza")
    rows = tsv_rows(check_archive(qza, "SampleData[Probabilities]", "ProbabilitiesDirectoryFormat",
                                  ["class_probabilities.tsv"]).data()["class_probabilities.tsv"])
    # ProbabilitiesFormat: records of >= 2 fields, every value after the ID a number
    assert rows[0] == ["", "a", "b"]
    assert [r[0] for r in rows[1:]] == SAMPLES
    assert [float(r[1]) for r in rows[1:]] == [0.9, 0.2, 0.4, 0.3, 0.8, 0.6]


def test_regressor_predictions_must_be_numbers(tmp_path, capsys):
    frame = pd.DataFrame({"sample": SAMPLES[:2], "y_pred": ["1.5", "2.5"]})
    frame.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    qza = export(tmp_path, "SampleData[RegressorPredictions]", tmp_path / "p.tsv")
    rows = tsv_rows(check_archive(qza, "SampleData[RegressorPredictions]", "PredictionsDirectoryFormat",
                                  ["predictions.tsv"]).data()["predictions.tsv"])
    assert rows[1:] == [[SAMPLES[0], "1.5"], [SAMPLES[1], "2.5"]]
    frame.assign(y_pred=["1.5", "high"]).to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    assert main(["export-qza", "--type", "SampleData[RegressorPredictions]", "--input",
                 str(tmp_path / "bad.tsv"), "--out", str(tmp_path / "bad.qza")]) == 2
    assert "line 3: 'high' is not a number" in capsys.readouterr().err
    assert not (tmp_path / "bad.qza").exists()


def test_embeddings_as_qiime2_metadata(tmp_path):
    vectors = np.arange(12, dtype=np.float32).reshape(6, 2) / 4
    write_embeddings(tmp_path / "e.parquet", SAMPLES, vectors, split=["train"] * 4 + ["test"] * 2)
    qza = export(tmp_path, "ImmutableMetadata", tmp_path / "e.parquet")
    rows = tsv_rows(check_archive(qza, "ImmutableMetadata", "ImmutableMetadataDirectoryFormat",
                                  ["metadata.tsv"]).data()["metadata.tsv"])
    # QIIME 2 metadata: a recognised ID header, unique IDs, a #q2:types directive naming each column
    # categorical or numeric, numeric columns all numbers
    assert rows[0][0].lower() in ID_HEADERS and rows[0][1:] == ["split", "embedding_1", "embedding_2"]
    assert rows[1] == ["#q2:types", "categorical", "numeric", "numeric"]
    ids = [r[0] for r in rows[2:]]
    assert ids == SAMPLES and len(set(ids)) == len(ids)
    np.testing.assert_allclose([[float(v) for v in r[2:]] for r in rows[2:]], vectors)


def test_two_exports_share_their_data_not_their_identity(tmp_path):
    pd.DataFrame({"sample": SAMPLES, "faith_pd": range(6)}).to_csv(tmp_path / "f.tsv", sep="\t", index=False)
    first = read_archive(export(tmp_path, "SampleData[AlphaDiversity]", tmp_path / "f.tsv", name="a.qza"))
    second = read_archive(export(tmp_path, "SampleData[AlphaDiversity]", tmp_path / "f.tsv", name="b.qza"))
    assert first.data() == second.data() and first.uuid != second.uuid


def test_tampered_archive_fails_its_checksums(tmp_path):
    pd.DataFrame({"sample": SAMPLES, "faith_pd": range(6)}).to_csv(tmp_path / "f.tsv", sep="\t", index=False)
    qza = export(tmp_path, "SampleData[AlphaDiversity]", tmp_path / "f.tsv")
    archive = read_archive(qza)
    archive.files["data/alpha-diversity.tsv"] += b"S7\t1\n"
    assert archive.checksum_mismatches() == ["data/alpha-diversity.tsv"]


@pytest.mark.parametrize("out", ["x.zip", "x"])
def test_output_must_be_named_qza(tmp_path, capsys, out):
    pd.DataFrame({"sample": SAMPLES, "faith_pd": range(6)}).to_csv(tmp_path / "f.tsv", sep="\t", index=False)
    assert main(["export-qza", "--type", "SampleData[AlphaDiversity]", "--input", str(tmp_path / "f.tsv"),
                 "--out", str(tmp_path / out)]) == 2
    assert ".qza" in capsys.readouterr().err
