"""Sample metadata: QIIME 2 / Qiita tab-separated files.

- The ID column is the first column named (case-insensitively) one of `ID_COLUMNS`: QIIME 2's
  ``id``, ``sampleid``, ``sample id``, ``sample-id``, ``featureid``, ``feature id``,
  ``feature-id``, ``#SampleID``, ``#Sample ID``, ``#OTUID``, ``#OTU ID``, or Qiita's
  ``sample_name``.
- Lines starting with ``#`` other than the header are comments, and the ``#q2:types`` row (and
  any other ``#q2:`` directive) is skipped. Blank lines are skipped.
- Every value is a string (``dtype=str``): sample IDs such as ``2538.1000102`` must never become
  floats. The missing-value terms (`MISSING_TERMS` unless the caller gives its own, from the
  config's ``ingest.missing_values``; compared case-insensitively, blanks stripped) read as
  missing (NaN).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from aam.errors import InputError

ID_COLUMNS = (
    "sample_name",
    "#sampleid",
    "#sample id",
    "sample-id",
    "sampleid",
    "sample id",
    "id",
    "feature-id",
    "featureid",
    "feature id",
    "#otuid",
    "#otu id",
)
# The default of the config's ingest.missing_values (a test checks that they agree): QIIME 2 / Qiita
# practice, where `None`, `NA` and `nan` also stand for a missing value.
MISSING_TERMS = (
    "",
    "None",
    "NA",
    "N/A",
    "nan",
    "null",
    "Missing: Not provided",
    "Missing: Not collected",
    "Missing: Not applicable",
    "Missing: Restricted access",
    "Not provided",
    "Not applicable",
    "Not collected",
    "Restricted access",
    "missing",
)


def _is_header(line: str) -> bool:
    """A '#' line is the header when its first field is a recognised ID column name."""
    first = line.split("\t", 1)[0].strip().lower()
    return first in ID_COLUMNS


def read_metadata(path: str | os.PathLike, missing_values: Iterable[str] | None = None) -> pd.DataFrame:
    """Read a metadata TSV into a DataFrame of strings indexed by sample ID (index name ``sample``).

    Values in `missing_values` (default `MISSING_TERMS`; case-insensitive) become NaN.

    `InputError` naming the file for: no such file, no ID column, no data rows, duplicate or empty
    sample IDs, rows with more fields than the header.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a metadata TSV (binary file)") from None
    lines = text.splitlines()
    header_at = None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        if line.startswith("#") and not _is_header(line):
            continue  # a comment before the header
        header_at = i
        break
    if header_at is None:
        raise InputError(f"{path}: empty metadata file")
    header = [h.strip() for h in lines[header_at].split("\t")]
    id_positions = [j for j, h in enumerate(header) if h.lower() in ID_COLUMNS]
    if not id_positions:
        raise InputError(
            f"{path}: no sample ID column (the header needs one of: sample_name, #SampleID, sample-id, "
            f"id, sampleid, feature-id); found {', '.join(header[:5])}{', ...' if len(header) > 5 else ''}"
        )
    id_col = id_positions[0]
    body = [ln for ln in lines[header_at + 1 :] if ln.strip() and not ln.startswith("#")]
    if not body:
        raise InputError(f"{path}: no samples (a header but no data rows)")
    try:
        frame = pd.read_csv(
            io.StringIO("\n".join([lines[header_at], *body])),
            sep="\t",
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            quoting=csv.QUOTE_NONE,
            header=0,
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise InputError(f"{path}: malformed metadata TSV ({err})") from None
    if len(header) != len(set(header)):
        dup = next(h for h in header if header.count(h) > 1)
        raise InputError(f"{path}: duplicate column name '{dup}'")
    frame.columns = header
    frame = frame.apply(lambda col: col.str.strip())
    ids = frame.iloc[:, id_col]
    if (ids == "").any():
        row = int(np.flatnonzero((ids == "").to_numpy())[0])
        raise InputError(f"{path}: empty sample ID in data row {row + 1}")
    dups = ids[ids.duplicated()].unique()
    if len(dups):
        shown = ", ".join(f"'{d}'" for d in dups[:3])
        raise InputError(f"{path}: duplicate sample IDs: {shown}")
    frame = frame.set_index(header[id_col])
    frame.index.name = "sample"
    terms = {term.strip().lower() for term in (MISSING_TERMS if missing_values is None else missing_values)}
    missing = frame.apply(lambda col: col.str.lower().isin(terms))
    return frame.mask(missing)


_MISSING = {"", "nan", "na", "n/a", "none", "null"}


def target_classes(text: str, task: str) -> list[str] | None:
    """The --classes JSON list (the target's `classes`), or None for every class."""
    if not text:
        return None
    try:
        classes = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"--classes: not valid JSON: {err}") from None
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise InputError(f"--classes: expected a JSON list of two or more class names, got {text!r}")
    if task != "classification":
        raise InputError("--classes is for classification targets")
    return classes


def read_target_column(path: str | os.PathLike, column: str, classes=None) -> dict[str, str]:
    """{sample: raw value} of one metadata column (Parquet or TSV; IDs as strings); missing
    values (empty, NA, Qiita's 'not provided'/'not applicable'/'missing: ...') are left out, and so
    are values outside `classes` when it is given (a target's `classes`: the samples it models)."""
    path = Path(path)
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
    else:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment=None)
    if column not in table.columns:
        raise InputError(f"{path}: no target column {column!r}")
    names = ("sample", "sample_id", "sample_name", "sample-id", "sampleid", "#sampleid", "#sample id", "id")
    sample_col = next((c for c in table.columns if c.lower() in names), table.columns[0])
    out = {}
    for sample, value in zip(table[sample_col].astype(str), table[column], strict=True):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        text = str(value).strip()
        low = text.lower()
        if low in _MISSING or low.startswith(("missing", "not applicable", "not provided", "not collected",
                                              "restricted access")):
            continue
        out[sample] = text
    if classes is not None:
        wanted = {str(c) for c in classes}
        out = {sample: value for sample, value in out.items() if value in wanted}
    return out
