"""A DNA sequence collection: read (FASTA or plain text), label (taxonomy TSV), split, store.

The library of `aam seq-prepare` and of everything that reads its ``prepared.parquet``
(seq-train, embed, seq-evaluate, classify, the benchmarks). ``prepared.parquet`` has columns
``id``, ``sequence``, ``split`` (train/test, seeded) and, with labels, one column per rank
(kingdom phylum class order family genus species; an empty rank such as ``g__`` is missing, i.e.
null). A labels TSV has an ID column and either a taxonomy string column (Greengenes / SILVA
style, ``k__Bacteria; p__...; g__; s__``) or one column per rank.

FASTA and plain text follow one rule (`aam.io.dna_text`): IUPAC nucleotide codes only, U read as T.
An external test set replaces the random split; training records that share an ID or a sequence
with a test record are dropped from training, so a test set never leaks into training.

Bad input is one `InputError` line naming the file and ID: an empty FASTA, a record without
sequence, a character that is not an IUPAC nucleotide code, duplicate IDs, sequences without a
label row, a label file without the ID column, an unknown rank.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aam.errors import InputError
from aam.io.atomic import atomic_path
from aam.io.dna_text import dna_records, iter_dna_text
from aam.io.fasta import iter_fasta

log = logging.getLogger(__name__)

RANKS = ["kingdom", "phylum", "class", "order", "family", "genus", "species"]
_PREFIX = dict(zip("kpcofgs", RANKS, strict=True))
ID_COLUMNS = ("feature_id", "Feature ID", "id", "#OTU ID", "sequence_id")
TAXONOMY_COLUMNS = ("taxonomy", "Taxon", "taxon")


def check_ranks(ranks, where: str) -> list[str]:
    """Every name must be one of RANKS; returns the list."""
    ranks = [ranks] if isinstance(ranks, str) else list(ranks or [])
    for rank in ranks:
        if rank not in RANKS:
            raise InputError(f"{where}: unknown rank '{rank}'; known ranks: {', '.join(RANKS)}")
    return ranks


def read_sequences(fasta: str | None, text: str | None, chunk_len: int = 1024) -> pd.DataFrame:
    """FASTA records (IDs unique) or plain-text DNA cut into `chunk_len` records -> (id, sequence)."""
    if bool(fasta) == bool(text):
        raise InputError("seq-prepare: give exactly one of a FASTA file or a plain-text DNA file")
    if fasta:
        if not Path(fasta).exists():
            raise InputError(f"{fasta}: no such file")
        ids, seqs, seen = [], [], set()
        for rec_id, seq in iter_fasta(fasta):
            if rec_id in seen:
                raise InputError(f"{fasta}: duplicate sequence ID '{rec_id}'")
            seen.add(rec_id)
            ids.append(rec_id)
            seqs.append(seq)
        return pd.DataFrame({"id": ids, "sequence": dna_records(ids, seqs, fasta)})
    if not Path(text).exists():
        raise InputError(f"{text}: no such file")
    seqs, buf = [], ""
    for chunk in iter_dna_text(text):
        buf += chunk
        while len(buf) >= chunk_len:
            seqs.append(buf[:chunk_len])
            buf = buf[chunk_len:]
    if buf:
        seqs.append(buf)
    if not seqs:
        raise InputError(f"{text}: no DNA text")
    return pd.DataFrame({"id": [f"chunk{i}" for i in range(len(seqs))], "sequence": seqs})


def parse_taxonomy(values: pd.Series) -> pd.DataFrame:
    """``k__A; p__B; ...; g__; s__`` -> one column per rank; empty ranks are missing (None)."""
    out = {rank: [None] * len(values) for rank in RANKS}
    for row, value in enumerate(values.fillna("").astype(str)):
        parts = [p.strip() for p in value.split(";") if p.strip()]
        for pos, part in enumerate(parts):
            if len(part) >= 3 and part[1:3] == "__" and part[0].lower() in _PREFIX:
                rank, name = _PREFIX[part[0].lower()], part[3:].strip()
            elif pos < len(RANKS):
                rank, name = RANKS[pos], part
            else:
                continue
            out[rank][row] = name or None
    return pd.DataFrame(out, index=values.index)


def read_labels(path: str, id_column: str | None = None, taxonomy_column: str | None = None) -> pd.DataFrame:
    """Labels TSV -> DataFrame indexed by ID (str) with one column per rank present."""
    if not Path(path).exists():
        raise InputError(f"{path}: no such file")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment=None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read labels TSV: {err}") from err
    if id_column is not None:
        if id_column not in table.columns:
            raise InputError(f"{path}: no ID column '{id_column}' (columns: {list(table.columns)})")
    else:
        id_column = next((c for c in ID_COLUMNS if c in table.columns), None)
        if id_column is None:
            raise InputError(
                f"{path}: no ID column (one of {', '.join(ID_COLUMNS)}; columns: {list(table.columns)})"
            )
    ids = table[id_column].str.strip()
    dup = ids[ids.duplicated()]
    if len(dup):
        raise InputError(f"{path}: duplicate ID '{dup.iloc[0]}' in the labels")
    tax_col = taxonomy_column or next((c for c in TAXONOMY_COLUMNS if c in table.columns), None)
    if taxonomy_column is not None and taxonomy_column not in table.columns:
        raise InputError(f"{path}: no taxonomy column '{taxonomy_column}' (columns: {list(table.columns)})")
    if tax_col is not None:
        ranks = parse_taxonomy(table[tax_col])
    else:
        present = [r for r in RANKS if r in table.columns]
        if not present:
            raise InputError(f"{path}: no taxonomy column and no rank columns ({', '.join(RANKS)})")
        ranks = table[present].apply(lambda c: c.str.strip().replace("", None))
    ranks.index = ids.values
    return ranks


def split_ids(n: int, test_fraction: float, seed: int) -> np.ndarray:
    """Seeded split labels ('train'/'test') for n items; at least one of each when n >= 2."""
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"seq-prepare: test_fraction must be in (0, 1), got {test_fraction}")
    n_test = int(round(n * test_fraction))
    if n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    split = np.full(n, "train", dtype=object)
    split[order[:n_test]] = "test"
    return split


def prepare(
    fasta: str | None = None,
    text: str | None = None,
    labels: str | None = None,
    id_column: str | None = None,
    taxonomy_column: str | None = None,
    test_fraction: float = 0.2,
    chunk_len: int = 1024,
    seed: int = 42,
    ranks: list[str] | None = None,
    test_fasta: str | None = None,
    test_labels: str | None = None,
) -> pd.DataFrame:
    """Validated (id, sequence, split, ranks...) frame; see the module docstring."""
    ranks = check_ranks(ranks, "seq-prepare settings")
    if test_labels and not test_fasta:
        raise InputError(f"{test_labels}: test labels without test sequences (test: fasta)")
    frame = _labelled(fasta, text, labels, id_column, taxonomy_column, chunk_len, ranks)
    if test_fasta:
        if bool(labels) != bool(test_labels):
            raise InputError(
                "seq-prepare: give labels for both the training and the test sequences, or for neither"
            )
        test = _labelled(test_fasta, None, test_labels, id_column, taxonomy_column, chunk_len, ranks)
        leak = frame["id"].isin(test["id"]) | frame["sequence"].isin(test["sequence"])
        if leak.any():
            log.warning(
                "%d training sequences share an ID or a sequence with the test set %s: dropped from training",
                int(leak.sum()),
                test_fasta,
            )
            frame = frame[~leak.to_numpy()]
        if frame.empty:
            raise InputError(f"{fasta or text}: no training sequence is left that is not in the test set")
        frame = pd.concat(
            [frame.assign(split="train"), test.assign(split="test")], ignore_index=True
        )
    else:
        frame["split"] = split_ids(len(frame), test_fraction, seed)
    cols = ["id", "sequence", "split"] + [r for r in RANKS if r in frame.columns]
    return frame[cols]


def _labelled(fasta, text, labels, id_column, taxonomy_column, chunk_len, ranks) -> pd.DataFrame:
    """(id, sequence, ranks...) of one collection, every sequence labelled when labels are given."""
    frame = read_sequences(fasta, text, chunk_len)
    source = fasta or text
    if labels:
        if text:
            raise InputError(f"{labels}: labels need FASTA input with IDs, not plain text")
        table = read_labels(labels, id_column, taxonomy_column)
        missing = ~frame["id"].isin(table.index)
        if missing.any():
            first = frame["id"][missing].iloc[0]
            raise InputError(
                f"{labels}: no label for sequence '{first}' of {source} "
                f"({int(missing.sum())} of {len(frame)} sequences have none)"
            )
        extra = len(table) - len(frame)
        if extra > 0:
            log.info("%s: %d label rows without a sequence are ignored", labels, extra)
        for rank in table.columns:
            frame[rank] = table.loc[frame["id"], rank].to_numpy()
        absent = [r for r in ranks if r not in frame.columns]
        if absent:
            raise InputError(f"{labels}: rank '{absent[0]}' is not in the labels (has {list(table.columns)})")
    elif ranks and fasta:
        log.info("no labels: the ranks %s will not be evaluated", ranks)
    return frame


def write_prepared(frame: pd.DataFrame, out: str, meta: dict) -> None:
    """``prepared.parquet``, with `meta` (settings, seed) in the schema metadata; all or nothing."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({b"aam.seq_prepare": json.dumps(meta, sort_keys=True).encode()})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)


def read_prepared(path: str) -> pd.DataFrame:
    """A ``prepared.parquet``; a missing file or column is one InputError line."""
    if not Path(path).exists():
        raise InputError(f"{path}: no such file (run seq-prepare first)")
    frame = pq.read_table(path).to_pandas()
    for col in ("id", "sequence", "split"):
        if col not in frame.columns:
            raise InputError(f"{path}: no column '{col}'; not a seq-prepare output")
    return frame


def label_codes(frame: pd.DataFrame, ranks: list[str], fit_rows: np.ndarray) -> np.ndarray:
    """(n, len(ranks)) int64 codes; classes are those of `fit_rows` (others and missing -1)."""
    out = np.full((len(frame), len(ranks)), -1, dtype=np.int64)
    for j, rank in enumerate(ranks):
        values = frame[rank].to_numpy(dtype=object)
        classes = pd.unique(values[fit_rows][pd.notna(values[fit_rows])])
        mapping = {c: i for i, c in enumerate(classes)}
        out[:, j] = [mapping.get(v, -1) if v is not None and v == v else -1 for v in values]
    return out


def blocks_from(seqs: list[str], block_len: int, stride: int | None = None) -> np.ndarray:
    """Cut sequences into full blocks (never across sequences) -> (n, block_len) uint8."""
    stride = stride or block_len
    out = [
        s[i : i + block_len].encode("ascii", errors="replace")
        for s in seqs
        for i in range(0, len(s) - block_len + 1, stride)
    ]
    if not out:
        return np.zeros((0, block_len), dtype=np.uint8)
    return np.frombuffer(b"".join(out), dtype=np.uint8).reshape(len(out), block_len).copy()
