"""The package's artifacts as the payloads of QIIME 2 semantic types (what goes under ``data/``).

Each supported type maps to the directory format q2-types (or q2-sample-classifier) registers for
it, the single file that format holds, and a converter from this package's own file:

=================================  =================================  ==========================
semantic type                      directory format: file             from
=================================  =================================  ==========================
FeatureTable[Frequency]            BIOMV210DirFmt: feature-table.biom  any table ``aam ingest``
                                                                       reads (rarefied/table.biom)
DistanceMatrix                     DistanceMatrixDirectoryFormat:      unifrac/{metric}.tsv (lsmat)
                                   distance-matrix.tsv
PCoAResults                        OrdinationDirectoryFormat:          unifrac/pcoa_{metric}.txt
                                   ordination.txt
SampleData[AlphaDiversity]         AlphaDiversityDirectoryFormat:      unifrac/faith_pd.tsv
                                   alpha-diversity.tsv
FeatureData[Taxonomy]              TSVTaxonomyDirectoryFormat:         classify/{run}/taxonomy.tsv
                                   taxonomy.tsv
SampleData[ClassifierPredictions]  PredictionsDirectoryFormat:         predictions.tsv of evaluate,
SampleData[RegressorPredictions]   predictions.tsv                     finetune or predict
SampleData[Probabilities]          ProbabilitiesDirectoryFormat:       the same, its prob columns
                                   class_probabilities.tsv
ImmutableMetadata                  ImmutableMetadataDirectoryFormat:   an embeddings .parquet
                                   metadata.tsv                        (one column per dimension)
=================================  =================================  ==========================

Every converter checks its source and writes the file as the format's validator in q2-types
expects it; a source that does not fit is one InputError naming it. IDs stay strings throughout
(Qiita sample IDs such as ``2538.1000102`` are not numbers).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aam.errors import InputError

Payload = dict[str, bytes]


@dataclass(frozen=True)
class QzaType:
    """A semantic type's directory format, the file format it is imported from, and its converter."""

    directory_format: str
    import_format: str
    convert: Callable[[Path, str | None], Payload]


def _read_tsv(path: Path, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, **kwargs)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read as TSV ({err})") from None


def _tsv(frame: pd.DataFrame, index_label: str | None) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, sep="\t", index=index_label is not None, index_label=index_label or None,
                 lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def _numbers(path: Path, frame: pd.DataFrame, columns) -> pd.DataFrame:
    out = frame[list(columns)].apply(pd.to_numeric, errors="coerce")
    bad = out.isna() & frame[list(columns)].ne("")
    if bad.any().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise InputError(f"{path}: column '{columns[col]}' line {row + 2}: "
                         f"'{frame[columns[col]].iloc[row]}' is not a number")
    return out


def _unique_ids(path: Path, ids: pd.Series) -> None:
    if (ids == "").any():
        raise InputError(f"{path}: line {int(np.argmax((ids == '').to_numpy())) + 2}: empty ID")
    dups = ids[ids.duplicated()].unique()
    if len(dups):
        raise InputError(f"{path}: duplicate IDs: {', '.join(map(repr, dups[:3]))}")


def feature_table(path: Path, column: str | None = None) -> Payload:
    """BIOM 2.1 HDF5 (feature-table.biom) from any table the ingest stage reads."""
    from aam.io.biom import biom_bytes, read_table

    return {"feature-table.biom": biom_bytes(read_table(path), "aam export-qza")}


def distance_matrix(path: Path, column: str | None = None) -> Payload:
    """scikit-bio's lsmat (a header row of IDs after an empty cell, then one row per ID), copied
    as it is once checked the way scikit-bio's DistanceMatrix checks it: square, the same IDs in
    rows and columns, unique, numeric, symmetric and hollow. Read with pandas' C parser: scikit-bio's
    own reader takes seconds for a few hundred samples and minutes for thousands."""
    try:
        header = path.open(encoding="utf-8").readline().rstrip("\r\n").split("\t")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read ({err})") from None
    ids = header[1:]
    if header[0] != "" or not ids:
        raise InputError(f"{path}: not an lsmat distance matrix "
                         "(the header must be an empty cell, then the IDs)")
    rows = _read_tsv(path, usecols=[0]).iloc[:, 0]
    try:
        values = pd.read_csv(path, sep="\t", usecols=range(1, len(ids) + 1), dtype=np.float64).to_numpy()
    except (ValueError, pd.errors.ParserError) as err:
        raise InputError(f"{path}: not a numeric distance matrix ({err})") from None
    if list(rows) != ids:
        raise InputError(f"{path}: the row IDs differ from the header's IDs")
    _unique_ids(path, rows)
    if not np.allclose(values, values.T, rtol=0, atol=1e-9) or np.any(np.diag(values) != 0):
        raise InputError(f"{path}: the matrix is not symmetric with a zero diagonal")
    return {"distance-matrix.tsv": path.read_bytes()}


def ordination(path: Path, column: str | None = None) -> Payload:
    """scikit-bio's ordination format (the unifrac stage's pcoa_{metric}.txt), checked by reading it."""
    import skbio

    try:
        result = skbio.OrdinationResults.read(str(path), format="ordination")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except Exception as err:  # noqa: BLE001 - scikit-bio raises several kinds for a bad file
        raise InputError(f"{path}: not an ordination in scikit-bio's format ({err})") from None
    buffer = io.StringIO()
    result.write(buffer, format="ordination")
    return {"ordination.txt": buffer.getvalue().encode("utf-8")}


def alpha_diversity(path: Path, column: str | None = None) -> Payload:
    """A sample ID column and one numeric column (default: the second), as q2-types writes a
    pd.Series: an empty index header, then the measure's name."""
    frame = _read_tsv(path)
    if frame.shape[1] < 2:
        raise InputError(f"{path}: expected a sample ID column and a value column, "
                         f"found {list(frame.columns)}")
    column = column or frame.columns[1]
    if column not in frame.columns:
        raise InputError(f"{path}: no column '{column}' (columns: {', '.join(frame.columns)})")
    ids = frame.iloc[:, 0]
    _unique_ids(path, ids)
    if not len(frame):
        raise InputError(f"{path}: no samples")
    values = _numbers(path, frame, [column])
    values.index = ids.to_numpy()
    return {"alpha-diversity.tsv": _tsv(values, "")}


def taxonomy(path: Path, column: str | None = None) -> Payload:
    """q2-feature-classifier's taxonomy table: header ``Feature ID<TAB>Taxon`` (then optional
    columns such as Confidence), one record per feature, at least one rank separator overall."""
    frame = _read_tsv(path)
    if list(frame.columns[:2]) != ["Feature ID", "Taxon"]:
        raise InputError(f"{path}: the first two header values must be 'Feature ID' and 'Taxon', "
                         f"found {list(frame.columns[:2])}")
    if not len(frame):
        raise InputError(f"{path}: no taxonomy records")
    _unique_ids(path, frame["Feature ID"])
    if not frame["Taxon"].str.contains(";").any():
        raise InputError(f"{path}: every taxonomy has one rank only "
                         "(QIIME 2 refuses a taxonomic depth of one)")
    trailing = frame["Taxon"].str.rstrip().str.endswith(";")
    if trailing.any():
        raise InputError(f"{path}: line {int(np.argmax(trailing.to_numpy())) + 2}: taxonomy ends with ';'")
    return {"taxonomy.tsv": _tsv(frame, None)}


PREDICTION_COLUMNS = ("y_pred", "aam_pred")


def _prediction_column(path: Path, frame: pd.DataFrame, column: str | None) -> str:
    if column:
        if column not in frame.columns:
            raise InputError(f"{path}: no column '{column}' (columns: {', '.join(frame.columns)})")
        return column
    for name in PREDICTION_COLUMNS:
        if name in frame.columns:
            return name
    raise InputError(f"{path}: no prediction column ({' or '.join(PREDICTION_COLUMNS)}); "
                     f"columns: {', '.join(frame.columns)}")


def _sample_ids(path: Path, frame: pd.DataFrame) -> pd.Series:
    if "sample" not in frame.columns:
        raise InputError(f"{path}: no 'sample' column")
    _unique_ids(path, frame["sample"])
    if not len(frame):
        raise InputError(f"{path}: no samples")
    return frame["sample"]


def predictions(path: Path, column: str | None = None) -> Payload:
    """One prediction per sample (q2-sample-classifier: header ``SampleID<TAB>prediction``), from a
    predictions.tsv: ``y_pred`` (finetune, predict) or ``aam_pred`` (evaluate) unless `column`
    names another (``rf_pred``: the random forest's)."""
    frame = _read_tsv(path)
    ids = _sample_ids(path, frame)
    chosen = _prediction_column(path, frame, column)
    out = pd.DataFrame({"prediction": frame[chosen].to_numpy()}, index=ids.to_numpy())
    return {"predictions.tsv": _tsv(out, "SampleID")}


def regression_predictions(path: Path, column: str | None = None) -> Payload:
    """As `predictions`, the values checked to be numbers."""
    frame = _read_tsv(path)
    chosen = _prediction_column(path, frame, column)
    _numbers(path, frame, [chosen])
    return predictions(path, chosen)


def probabilities(path: Path, column: str | None = None) -> Payload:
    """Class probabilities per sample (q2-sample-classifier: an empty index header, one numeric
    column per class): the ``prob_<class>`` columns that belong to the prediction column
    (``y_pred``: ``prob_``, ``aam_pred``: ``aam_prob_``, ``rf_pred``: ``rf_prob_``)."""
    frame = _read_tsv(path)
    ids = _sample_ids(path, frame)
    chosen = _prediction_column(path, frame, column)
    prefix = re.sub(r"pred$", "prob_", chosen) if chosen != "y_pred" else "prob_"
    columns = [c for c in frame.columns if c.startswith(prefix)]
    if not columns:
        raise InputError(f"{path}: no class probability columns ({prefix}<class>): a classification's "
                         "predictions are needed")
    values = _numbers(path, frame, columns)
    values.columns = [c[len(prefix):] for c in columns]
    values.index = ids.to_numpy()
    return {"class_probabilities.tsv": _tsv(values, "")}


def embeddings(path: Path, column: str | None = None) -> Payload:
    """QIIME 2 metadata (``id``, ``split`` where present, then ``embedding_1`` ...), with a
    ``#q2:types`` line so the split is categorical and every dimension numeric."""
    from aam.io.embeddings import read_embeddings

    ids, split, vectors = read_embeddings(path)
    frame = pd.DataFrame({"id": ids.astype(str)})
    _unique_ids(path, frame["id"])
    if not len(frame):
        raise InputError(f"{path}: no embeddings")
    types = ["#q2:types"]
    if split is not None:
        frame["split"] = split.astype(str)
        types.append("categorical")
    names = [f"embedding_{i + 1}" for i in range(vectors.shape[1])]
    dims = pd.DataFrame(vectors.astype(np.float64), columns=names)
    frame = pd.concat([frame, dims], axis=1)
    types += ["numeric"] * vectors.shape[1]
    text = _tsv(frame, None).decode("utf-8")
    header, body = text.split("\n", 1)
    return {"metadata.tsv": f"{header}\n{chr(9).join(types)}\n{body}".encode()}


TYPES: dict[str, QzaType] = {
    "FeatureTable[Frequency]": QzaType("BIOMV210DirFmt", "BIOMV210Format", feature_table),
    "DistanceMatrix": QzaType("DistanceMatrixDirectoryFormat", "LSMatFormat", distance_matrix),
    "PCoAResults": QzaType("OrdinationDirectoryFormat", "OrdinationFormat", ordination),
    "SampleData[AlphaDiversity]": QzaType("AlphaDiversityDirectoryFormat", "AlphaDiversityFormat",
                                          alpha_diversity),
    "FeatureData[Taxonomy]": QzaType("TSVTaxonomyDirectoryFormat", "TSVTaxonomyFormat", taxonomy),
    "SampleData[ClassifierPredictions]": QzaType("PredictionsDirectoryFormat", "PredictionsFormat",
                                                 predictions),
    "SampleData[RegressorPredictions]": QzaType("PredictionsDirectoryFormat", "PredictionsFormat",
                                                regression_predictions),
    "SampleData[Probabilities]": QzaType("ProbabilitiesDirectoryFormat", "ProbabilitiesFormat",
                                         probabilities),
    "ImmutableMetadata": QzaType("ImmutableMetadataDirectoryFormat", "ImmutableMetadataFormat", embeddings),
}


def write_artifact(out: str | Path, semantic_type: str, source: Path, record: dict,
                   column: str | None = None) -> str:
    """`source` as a `semantic_type` artifact at `out`: converted (and so checked) by the type's
    converter, written atomically (:func:`aam.io.qza_write.write_qza`) with `record` as what made it;
    returns the artifact's UUID. What `aam export-qza` and `aam classify --out *.qza` both do."""
    from aam.io.qza_write import write_qza

    kind = TYPES[semantic_type]
    files = kind.convert(Path(source), column)
    return write_qza(out, semantic_type, kind.directory_format, kind.import_format, files, record)

