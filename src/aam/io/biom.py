"""Feature tables: BIOM (HDF5 and JSON), QIIME 2 .qza FeatureTable[Frequency], classic TSV OTU tables.

`read_table` detects the format from the file's first bytes (not its name), validates the counts
and returns a `biom.Table` (features x samples, as BIOM stores it). Every problem is one
`InputError` naming the file: not a table, duplicate IDs, a (feature, sample) count stored twice,
a BIOM JSON `shape` that disagrees with its rows and columns, negative or non-integer counts, empty.

`table_to_csr` gives the samples x features CSR matrix (int64) that the rest of the package uses;
`write_biom` writes BIOM HDF5 atomically and reproducibly.
"""

from __future__ import annotations

import datetime
import io
import json
import os
from collections import Counter
from pathlib import Path

import biom
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from aam.errors import InputError
from aam.io import qza
from aam.io.atomic import atomic_path

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
TABLE_TYPES = ("FeatureTable[Frequency]",)
# Counts from here on are not reads: float64 (BIOM's storage) holds integers exactly only below it,
# and int64 (counts.parquet) overflows at 2^63, which a count read as float would silently become.
MAX_COUNT = 2**53
# a trailing observation-metadata column of a classic TSV table, dropped on reading
TSV_METADATA_COLUMNS = {"taxonomy", "consensus lineage", "consensuslineage"}


def _duplicates(ids) -> list[str]:
    return [str(i) for i, n in Counter(ids).items() if n > 1]


def _check_ids(path: Path, sample_ids, feature_ids) -> None:
    for kind, ids in (("sample", sample_ids), ("feature", feature_ids)):
        dups = _duplicates(ids)
        if dups:
            shown = ", ".join(f"'{d}'" for d in dups[:3])
            more = f" and {len(dups) - 3} more" if len(dups) > 3 else ""
            raise InputError(f"{path}: duplicate {kind} IDs: {shown}{more}")


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _from_hdf5(path: Path, source) -> biom.Table:
    try:
        with h5py.File(source, "r") as fh:
            try:
                sample_ids = [_text(i) for i in fh["sample/ids"][:]]
                feature_ids = [_text(i) for i in fh["observation/ids"][:]]
            except KeyError as err:
                raise InputError(f"{path}: HDF5 file is not a BIOM table (missing {err})") from None
            _check_ids(path, sample_ids, feature_ids)
            return biom.Table.from_hdf5(fh)
    except InputError:
        raise
    except Exception as err:  # h5py and biom raise many types on malformed input
        raise InputError(f"{path}: unreadable BIOM HDF5 table ({type(err).__name__}: {err})") from None


def _from_json(path: Path, text: str) -> biom.Table:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not a feature table (invalid BIOM JSON: {err})") from None
    if not isinstance(obj, dict) or "rows" not in obj or "columns" not in obj:
        raise InputError(f"{path}: JSON file is not a BIOM table (no 'rows'/'columns')")
    try:
        _check_ids(path, [c["id"] for c in obj["columns"]], [r["id"] for r in obj["rows"]])
        _check_json_entries(path, obj)
        return biom.Table.from_json(obj)
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"{path}: unreadable BIOM JSON table ({type(err).__name__}: {err})") from None


def _check_json_entries(path: Path, obj: dict) -> None:
    """The checks biom's JSON reader skips: it takes `shape` on trust and sums repeated sparse entries,
    so a wrong shape or a (row, column) pair listed twice would silently change the counts."""
    rows, columns = obj["rows"], obj["columns"]
    shape = obj.get("shape")
    if shape is not None and list(shape) != [len(rows), len(columns)]:
        raise InputError(
            f"{path}: BIOM JSON 'shape' {list(shape)} disagrees with its {len(rows)} rows and "
            f"{len(columns)} columns"
        )
    data = obj.get("data") or []
    if obj.get("matrix_type", "sparse") != "sparse":
        if len(data) != len(rows) or any(len(row) != len(columns) for row in data):
            size = f"{len(rows)} rows x {len(columns)} columns"
            raise InputError(f"{path}: BIOM JSON dense 'data' is not {size}")
        return
    seen: set[tuple[int, int]] = set()
    for entry in data:
        key = (int(entry[0]), int(entry[1]))
        if not (0 <= key[0] < len(rows) and 0 <= key[1] < len(columns)):
            size = f"{len(rows)} x {len(columns)}"
            raise InputError(f"{path}: BIOM JSON entry {list(entry)} lies outside the {size} table")
        if key in seen:
            raise InputError(
                f"{path}: BIOM JSON lists the entry of feature '{rows[key[0]]['id']}' in sample "
                f"'{columns[key[1]]['id']}' more than once (a valid table has one count per pair)"
            )
        seen.add(key)


def _from_tsv(path: Path, text: str) -> biom.Table:
    """Classic TSV: optional '# Constructed from biom file' line, then '#OTU ID<TAB>sample...' rows."""
    lines = text.splitlines()
    start = 0
    while start < len(lines) and (not lines[start].strip() or lines[start].startswith("# Constructed")):
        start += 1
    if start == len(lines) or "\t" not in lines[start]:
        raise InputError(f"{path}: not a feature table (no tab-separated header line)")
    raw_header = lines[start].rstrip("\r\n").split("\t")
    try:
        frame = pd.read_csv(
            io.StringIO("\n".join(lines[start:])),
            sep="\t",
            dtype={raw_header[0]: str},
            keep_default_na=False,
            na_filter=False,
            header=0,
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise InputError(f"{path}: not a feature table ({err})") from None
    n_samples = len(raw_header) - 1
    if n_samples and raw_header[-1].strip().lower() in TSV_METADATA_COLUMNS:
        n_samples -= 1
    # pandas renames repeated header names ('s1', 's1.1'): check duplicates on the raw header
    sample_ids = raw_header[1 : 1 + n_samples]
    feature_ids = frame.iloc[:, 0].tolist()
    _check_ids(path, sample_ids, feature_ids)
    values = frame.iloc[:, 1 : 1 + n_samples]
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise InputError(f"{path}: empty table ({values.shape[1]} samples x {values.shape[0]} features)")
    non_numeric = [str(c) for c, dt in values.dtypes.items() if not pd.api.types.is_numeric_dtype(dt)]
    if non_numeric:
        raise InputError(f"{path}: not a feature table (non-numeric values in column '{non_numeric[0]}')")
    data = values.to_numpy(dtype=np.float64)
    return biom.Table(sp.csr_matrix(data), feature_ids, sample_ids)


def _parse(path: Path) -> biom.Table:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err}") from None
    if qza.is_zip(path):
        _, payload = qza.read_payload(path, TABLE_TYPES, (".biom",))
        if payload.startswith(HDF5_MAGIC):
            return _from_hdf5(path, io.BytesIO(payload))
        return _from_json(path, payload.decode("utf-8", errors="replace"))
    if head.startswith(HDF5_MAGIC):
        return _from_hdf5(path, path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"{path}: not a feature table (a binary file, but not BIOM HDF5 or a .qza)"
        ) from None
    if text.lstrip().startswith("{"):
        return _from_json(path, text)
    return _from_tsv(path, text)


def count_samples(path: str | os.PathLike) -> int | None:
    """The number of samples of a table file from its header alone (no counts read), or None when
    the file is absent or not a table: for decisions made before a run (the workflow picks the
    UniFrac matrix format from it)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
        if head.startswith(qza.ZIP_MAGIC):
            _, payload = qza.read_payload(path, TABLE_TYPES, (".biom",))
            source = io.BytesIO(payload) if payload.startswith(HDF5_MAGIC) else None
            if source is None:
                return len(json.loads(payload)["columns"])
        elif head.startswith(HDF5_MAGIC):
            source = path
        else:
            with open(path, encoding="utf-8") as fh:
                first = fh.read(1)
                if first == "{":
                    return len(json.loads(first + fh.read())["columns"])
                fh.seek(0)
                for line in fh:
                    if line.strip() and not line.startswith("# Constructed"):
                        fields = [f.strip().lower() for f in line.rstrip("\n").split("\t")]
                        return len(fields) - 1 - (fields[-1] in TSV_METADATA_COLUMNS)
                return None
        with h5py.File(source, "r") as fh:
            return int(fh["sample/ids"].shape[0])
    except (OSError, ValueError, KeyError, InputError, UnicodeDecodeError):
        return None


def read_table(path: str | os.PathLike) -> biom.Table:
    """Read and validate a feature table; the format is detected from the content.

    Raises `InputError` (naming the file) for a file that is not a table, duplicate sample or
    feature IDs, negative or non-integer counts, or an empty table (no samples, no features or no
    reads).
    """
    path = Path(path)
    table = _parse(path)
    n_features, n_samples = table.shape
    if n_features == 0 or n_samples == 0:
        raise InputError(f"{path}: empty table ({n_samples} samples x {n_features} features)")
    matrix = table.matrix_data
    canonical = matrix.copy()
    canonical.sum_duplicates()
    if canonical.nnz != matrix.nnz:
        raise InputError(f"{path}: the table stores some (feature, sample) counts more than once")
    data = matrix.data
    if data.size and not np.all(np.isfinite(data)):
        raise InputError(f"{path}: non-finite counts (NaN or infinity)")
    if data.size and data.min() < 0:
        raise InputError(f"{path}: negative counts (smallest {data.min():g})")
    if data.size and not np.all(data == np.rint(data)):
        bad = data[data != np.rint(data)][0]
        raise InputError(
            f"{path}: non-integer counts (e.g. {bad:g}); expected read counts, not relative abundances"
        )
    if data.size and data.max() >= MAX_COUNT:
        feature, sample = _largest(table)
        raise InputError(
            f"{path}: count {data.max():.6g} of feature '{feature}' in sample '{sample}' is not a read "
            f"count (at least 2^53, beyond what BIOM's floating-point storage holds exactly)"
        )
    if data.sum() == 0:
        raise InputError(f"{path}: empty table (no reads)")
    return table


def _largest(table: biom.Table) -> tuple[str, str]:
    """(feature ID, sample ID) of the table's largest count."""
    coo = table.matrix_data.tocoo()
    k = int(np.argmax(coo.data))
    return str(table.ids("observation")[coo.row[k]]), str(table.ids("sample")[coo.col[k]])


def table_to_csr(table: biom.Table) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """(samples x features CSR of int64 counts, sample IDs, feature IDs) of a BIOM table."""
    matrix = sp.csr_matrix(table.matrix_data.T, dtype=np.int64)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix, [str(s) for s in table.ids("sample")], [str(f) for f in table.ids("observation")]


def csr_to_table(counts: sp.spmatrix, sample_ids, feature_ids) -> biom.Table:
    """A BIOM table (features x samples) from a samples x features matrix."""
    return biom.Table(sp.csr_matrix(counts.T, dtype=np.float64), list(feature_ids), list(sample_ids))


def creation_date() -> datetime.datetime:
    """The `creation-date` written into BIOM files: ``$SOURCE_DATE_EPOCH`` (the reproducible-builds
    convention) or the Unix epoch, never the clock, so that the same config and seed give
    byte-identical tables. The file's modification time still says when it was written."""
    seconds = int(os.environ.get("SOURCE_DATE_EPOCH", "0") or 0)
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).replace(tzinfo=None)


def write_biom(table: biom.Table, path: str | os.PathLike, generated_by: str = "aam") -> None:
    """Write BIOM 2.1 HDF5 atomically (temporary file, then rename) and reproducibly.

    The HDF5 file is built in memory and written with one plain write: the HDF5 library, writing
    to a full disk itself, fails in ways Python cannot always catch (a segfault, seen in `aam
    rarefy`), while a plain write fails with an OSError that `aam.io.atomic` reports as one line.
    Rarefied tables are held in memory anyway, so the copy costs no more than the table.
    """
    data = biom_bytes(table, generated_by)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def biom_bytes(table: biom.Table, generated_by: str = "aam") -> bytes:
    """The BIOM 2.1 HDF5 file of `table`, in memory, with the pinned `creation_date` (the same
    table gives the same bytes: rarefied/table.biom and the FeatureTable .qza's payload)."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as fh:
        table.to_hdf5(fh, generated_by, creation_date=creation_date())
    return buffer.getvalue()
