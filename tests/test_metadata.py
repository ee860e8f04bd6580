"""aam.io.metadata: QIIME 2 / Qiita conventions, IDs as strings, missing-value terms."""

from __future__ import annotations

import pandas as pd
import pytest

from aam.errors import InputError
from aam.io.metadata import read_metadata


def test_demo_metadata(demo_ibd):
    meta = read_metadata(demo_ibd / "metadata.tsv")
    assert meta.index.name == "sample"
    assert "2538.1000102" in meta.index  # a numeric-looking ID stays a string
    assert all(isinstance(i, str) for i in meta.index)
    assert set(meta["ibd"].dropna()) == {"Control", "Crohns"}
    assert meta.loc["2538.1000102", "age"] == "56"  # values are strings too
    assert pd.isna(meta.loc["2538.1000101", "alcohol_frequency"])  # "Missing: Not provided"


@pytest.mark.parametrize(
    "id_name",
    ["sample_name", "#SampleID", "sample-id", "id", "sampleid", "feature-id", "SampleID", "#Sample ID"],
)
def test_id_column_names(tmp_path, id_name):
    (tmp_path / "m.tsv").write_text(f"{id_name}\tx\n001\ta\n1.10\tb\n")
    meta = read_metadata(tmp_path / "m.tsv")
    assert list(meta.index) == ["001", "1.10"]
    assert list(meta["x"]) == ["a", "b"]


def test_q2_types_row_and_comments(tmp_path):
    text = (
        "# a comment before the header\n"
        "sample-id\tph\tsite\n"
        "#q2:types\tnumeric\tcategorical\n"
        "# a comment between rows\n"
        "s1\t7.0\tgut\n"
        "\n"
        "s2\t6.5\tskin\n"
    )
    (tmp_path / "m.tsv").write_text(text)
    meta = read_metadata(tmp_path / "m.tsv")
    assert list(meta.index) == ["s1", "s2"]
    assert list(meta["ph"]) == ["7.0", "6.5"]


@pytest.mark.parametrize(
    "term",
    [
        "Missing: Not provided",
        "not applicable",
        "not collected",
        "Not provided",
        "Missing: Not collected",
        "Missing: Not applicable",
        "Missing: Restricted access",
        "missing",
        "",
        "NOT APPLICABLE",
        " not collected ",
        "None",
        "NA",
        "nan",
        "NaN",
        "null",
    ],
)
def test_missing_terms(tmp_path, term):
    (tmp_path / "m.tsv").write_text(f"sample_name\tx\ty\ns1\t{term}\tkeep\ns2\tvalue\tn.a.\n")
    meta = read_metadata(tmp_path / "m.tsv")
    assert pd.isna(meta.loc["s1", "x"])
    assert meta.loc["s2", "x"] == "value"
    assert meta.loc["s2", "y"] == "n.a."  # only the listed terms are missing


def test_missing_terms_are_configurable(tmp_path):
    (tmp_path / "m.tsv").write_text("sample_name\tx\ns1\tn.a.\ns2\tNone\ns3\t\ns4\t7\n")
    meta = read_metadata(tmp_path / "m.tsv", missing_values=["N.A.", ""])
    assert pd.isna(meta.loc["s1", "x"]) and pd.isna(meta.loc["s3", "x"])
    assert meta.loc["s2", "x"] == "None"  # a list replaces the default: None is a value here
    assert meta.loc["s4", "x"] == "7"


def test_default_terms_are_the_config_default():
    from aam.config import load_schema
    from aam.io.metadata import MISSING_TERMS

    schema = load_schema()["properties"]["ingest"]["properties"]["missing_values"]
    assert schema["default"] == list(MISSING_TERMS)


def test_no_id_column(tmp_path):
    (tmp_path / "m.tsv").write_text("subject\tx\ns1\ta\n")
    with pytest.raises(InputError, match="m.tsv: no sample ID column"):
        read_metadata(tmp_path / "m.tsv")


def test_duplicate_sample_ids(tmp_path):
    (tmp_path / "m.tsv").write_text("sample_name\tx\ns1\ta\ns1\tb\n")
    with pytest.raises(InputError, match="m.tsv: duplicate sample IDs: 's1'"):
        read_metadata(tmp_path / "m.tsv")


def test_empty_file(tmp_path):
    (tmp_path / "m.tsv").write_text("\n")
    with pytest.raises(InputError, match="m.tsv: empty metadata file"):
        read_metadata(tmp_path / "m.tsv")
