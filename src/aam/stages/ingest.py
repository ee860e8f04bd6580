"""Stage `aam ingest`: a table, sequences, tree and metadata into Parquet caches and a pruned tree.

Outputs (in --out-dir, each written atomically and only after every input has been checked):

features.parquet
    ``feature_id`` (string), ``sequence`` (string, upper-case DNA): the kept features in table
    order. Kept = in the tree, with reads in at least one kept sample.
counts.parquet
    ``sample`` (string), ``feature`` (string: a feature_id), ``count`` (int64 > 0): the sparse
    table in long form, samples in table order, features in features.parquet order within each.
    Every table sample with reads is here, also those the metadata lacks: self-supervised
    pretraining needs no metadata and uses them all (splits and targets come from samples.parquet).
samples.parquet
    ``sample`` (string) then every metadata column (string; null where missing, after the
    missing-value terms of aam.io.metadata): the table's samples that the metadata knows, in table
    order (samples without reads stay here; the rarefy stage lists them as dropped).
tree.nwk
    the tree pruned to the kept features (single-child nodes collapsed, as skbio's shear does).

Logged: table samples missing from the metadata (kept in counts.parquet for pretraining only).
Dropped with a warning: features without reads, and features missing from the tree (how many and
what fraction of the reads; past ``ingest.max_missing_tree_fraction`` that is an error).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from aam.errors import InputError
from aam.io.atomic import atomic_path
from aam.io.biom import read_table, table_to_csr
from aam.io.metadata import read_metadata
from aam.io.newick import Tree, read_tree, write_tree
from aam.io.rep_seqs import read_rep_seqs, sequences_for

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, help="feature table: BIOM (HDF5/JSON), .qza or TSV")
    parser.add_argument(
        "--sequences",
        nargs="?",
        const="",
        help="representative sequences (FASTA or .qza); omit (or '') when the IDs are DNA",
    )
    parser.add_argument("--tree", required=True, help="rooted tree: Newick or .qza Phylogeny[Rooted]")
    parser.add_argument("--metadata", required=True, help="sample metadata TSV (QIIME 2 / Qiita)")
    parser.add_argument(
        "--group-column",
        nargs="?",
        const="",
        help="metadata column that groups samples (e.g. host_subject_id)",
    )
    parser.add_argument(
        "--color-column", nargs="?", const="", help="metadata column for PCoA colours (checked to exist)"
    )
    parser.add_argument(
        "--targets",
        default="[]",
        help='JSON list of {"name", "column", "type": "regression"|"classification"}',
    )
    parser.add_argument(
        "--settings", help='JSON of the config\'s ingest section, e.g. {"max_missing_tree_fraction": 0.1}'
    )
    parser.add_argument(
        "--out-dir", required=True, help="folder for features/counts/samples.parquet and tree.nwk"
    )


@dataclass
class Ingested:
    counts: sp.csr_matrix  # samples x features, int64
    sample_ids: list[str]  # every table sample (counts rows)
    feature_ids: list[str]
    sequences: list[str]
    samples: pd.DataFrame  # index: the table's samples that the metadata knows (table order); strings
    tree: Tree


def section_settings(text: str | None, section: str) -> dict:
    """A config section (ingest, split, rarefy) from JSON, validated and defaults filled from the schema."""
    from aam.config import load_schema, validate

    try:
        settings = json.loads(text) if text else {}
    except json.JSONDecodeError as err:
        raise InputError(f"--settings: not valid JSON: {err}") from None
    return validate(settings, load_schema()["properties"][section], where=f"--settings ({section})")


def _targets(text: str) -> list[dict]:
    try:
        targets = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"--targets: not valid JSON: {err}") from None
    if not isinstance(targets, list) or not all(
        isinstance(t, dict) and {"name", "column", "type"} <= set(t) for t in targets
    ):
        raise InputError('--targets: expected a list of {"name", "column", "type"} objects')
    for t in targets:
        if t["type"] not in ("regression", "classification"):
            raise InputError(f"--targets: target '{t['name']}' has type '{t['type']}'")
    return targets


def ingest(
    table_path: str,
    tree_path: str,
    metadata_path: str,
    sequences_path: str | None = None,
    group_column: str | None = None,
    color_column: str | None = None,
    targets: list[dict] | None = None,
    max_missing_tree_fraction: float = 0.1,
) -> Ingested:
    """Read, check and join the inputs; nothing is written. Every problem is an `InputError`."""
    targets = targets or []
    counts, sample_ids, feature_ids = table_to_csr(read_table(table_path))

    # --- metadata: keep the table's samples that it knows
    metadata = read_metadata(metadata_path)
    known = np.isin(np.asarray(sample_ids, dtype=object), metadata.index.to_numpy(dtype=object))
    if not known.any():
        raise InputError(
            f"{metadata_path}: no sample of the table {table_path} is in the metadata "
            f"(table has e.g. '{sample_ids[0]}', metadata '{metadata.index[0]}')"
        )
    if not known.all():
        log.warning(
            "%d of %d table samples are not in %s (e.g. '%s'): kept in counts.parquet for "
            "self-supervised pretraining only; no split or target uses them",
            int((~known).sum()),
            len(sample_ids),
            metadata_path,
            sample_ids[int(np.flatnonzero(~known)[0])],
        )
    samples = metadata.loc[[s for s, k in zip(sample_ids, known, strict=True) if k]]
    _check_columns(samples, metadata_path, group_column, color_column, targets)

    # --- features without reads
    totals = np.asarray(counts.sum(axis=0)).ravel()
    if totals.sum() == 0:
        raise InputError(f"{table_path}: empty table (no reads)")
    if (totals == 0).any():
        log.info("%d features have no reads and are dropped", int((totals == 0).sum()))
        counts, feature_ids, totals = _keep_features(counts, feature_ids, totals, totals > 0)

    # --- sequences
    rep = read_rep_seqs(sequences_path) if sequences_path else None
    sequences = sequences_for(feature_ids, rep, table_path=str(table_path), seqs_path=sequences_path)

    # --- tree: drop features it lacks, prune it to the rest
    tree = read_tree(tree_path)
    tip_names = tree.tip_names()
    tip_set = set(tip_names)
    in_tree = np.fromiter((f in tip_set for f in feature_ids), dtype=bool, count=len(feature_ids))
    if not in_tree.any():
        raise InputError(
            f"{tree_path}: the tree shares no tip with the table {table_path} "
            f"(table features e.g. '{feature_ids[0]}', tree tips e.g. '{tip_names[0]}')"
        )
    if not in_tree.all():
        n_missing = int((~in_tree).sum())
        read_fraction = float(totals[~in_tree].sum() / totals.sum())
        message = (
            f"{n_missing} of {len(feature_ids)} table features ({read_fraction:.2%} of reads) "
            "are not in the tree"
        )
        if read_fraction > max_missing_tree_fraction:
            raise InputError(
                f"{tree_path}: {message}, more than "
                f"ingest.max_missing_tree_fraction = {max_missing_tree_fraction:g}"
            )
        log.warning("%s: %s; they are dropped", tree_path, message)
        sequences = [s for s, k in zip(sequences, in_tree, strict=True) if k]
        counts, feature_ids, totals = _keep_features(counts, feature_ids, totals, in_tree)
    kept = set(feature_ids)
    kept_tips = [t for t in tip_names if t in kept]
    if len(kept_tips) != len(feature_ids):
        dup = next(t for t, n in Counter(kept_tips).items() if n > 1)
        raise InputError(f"{tree_path}: tip name '{dup}' occurs more than once")
    pruned = tree.prune(feature_ids)
    log.info(
        "ingested %d samples x %d features (%d reads); tree pruned from %d to %d tips",
        counts.shape[0],
        counts.shape[1],
        int(totals.sum()),
        len(tip_names),
        len(feature_ids),
    )
    return Ingested(counts, sample_ids, feature_ids, sequences, samples, pruned)


def _keep_features(counts, feature_ids, totals, mask):
    counts = counts[:, mask].tocsr()
    counts.eliminate_zeros()
    feature_ids = [f for f, k in zip(feature_ids, mask, strict=True) if k]
    return counts, feature_ids, totals[mask]


def _check_columns(samples: pd.DataFrame, path, group_column, color_column, targets) -> None:
    for role, column in (("group_column", group_column), ("color_column", color_column)):
        if column and column not in samples.columns:
            raise InputError(f"{path}: no column '{column}' (datasets.<name>.{role})")
    for target in targets:
        column = target["column"]
        if column not in samples.columns:
            raise InputError(f"{path}: no column '{column}' for target '{target['name']}'")
        values = samples[column]
        if values.isna().all():
            raise InputError(
                f"{path}: target column '{column}' is missing for every one of the "
                f"{len(values)} table samples"
            )
        if target["type"] == "regression":
            present = values.dropna()
            numeric = pd.to_numeric(present, errors="coerce")
            if numeric.isna().any():
                bad = present[numeric.isna()].iloc[0]
                raise InputError(
                    f"{path}: regression target column '{column}' has a non-numeric value '{bad}'"
                )


def write_outputs(result: Ingested, out_dir: str | Path) -> None:
    """Write the four artifacts atomically (each a temporary file renamed into place)."""
    out_dir = Path(out_dir)
    features = pa.table(
        {
            "feature_id": pa.array(result.feature_ids, type=pa.string()),
            "sequence": pa.array(result.sequences, type=pa.string()),
        }
    )
    coo = result.counts.tocsr()
    coo.sort_indices()
    rows = np.repeat(np.arange(coo.shape[0]), np.diff(coo.indptr))
    sample_arr = np.asarray(result.sample_ids, dtype=object)
    feature_arr = np.asarray(result.feature_ids, dtype=object)
    counts = pa.table(
        {
            "sample": pa.array(sample_arr[rows], type=pa.string()),
            "feature": pa.array(feature_arr[coo.indices], type=pa.string()),
            "count": pa.array(coo.data.astype(np.int64), type=pa.int64()),
        }
    )
    meta = result.samples
    columns = {"sample": pa.array([str(s) for s in meta.index], type=pa.string())}
    for column in meta.columns:
        if column == "sample":
            log.warning("metadata column 'sample' clashes with the sample ID column and is left out")
            continue
        values = [None if pd.isna(v) else str(v) for v in meta[column].tolist()]
        columns[str(column)] = pa.array(values, type=pa.string())
    samples = pa.table(columns)
    outputs = {"features.parquet": features, "counts.parquet": counts, "samples.parquet": samples}
    for name, table in outputs.items():
        with atomic_path(out_dir / name) as tmp:
            pq.write_table(table, tmp, compression="zstd")
    write_tree(result.tree, out_dir / "tree.nwk")


def run(args: argparse.Namespace) -> None:
    settings = section_settings(args.settings, "ingest")
    result = ingest(
        args.table,
        args.tree,
        args.metadata,
        sequences_path=args.sequences or None,
        group_column=args.group_column or None,
        color_column=args.color_column or None,
        targets=_targets(args.targets),
        max_missing_tree_fraction=float(settings["max_missing_tree_fraction"]),
    )
    write_outputs(result, args.out_dir)
