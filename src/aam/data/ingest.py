"""Reading, checking and joining a study's inputs (feature table, representative sequences, tree,
metadata) into the artifacts of `aam ingest`; the stage's docstring describes the files.

The checks stop at the first problem with one `InputError` naming the file and what is wrong; the
outputs are written all or none (:func:`write_outputs`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from aam.errors import InputError, setting_name
from aam.io.atomic import publish_together
from aam.io.biom import read_table, table_to_csr
from aam.io.metadata import read_metadata
from aam.io.newick import Tree, check_branch_lengths, read_tree, write_tree
from aam.io.rep_seqs import read_rep_seqs, sequences_for

log = logging.getLogger(__name__)


@dataclass
class Ingested:
    counts: sp.csr_matrix  # samples x features, int64
    sample_ids: list[str]  # every table sample (counts rows)
    feature_ids: list[str]
    sequences: list[str]
    samples: pd.DataFrame  # index: the table's samples that the metadata knows (table order); strings
    tree: Tree


def ingest(
    table_path: str,
    tree_path: str,
    metadata_path: str,
    sequences_path: str | None = None,
    group_column: str | None = None,
    color_column: str | None = None,
    targets: list[dict] | None = None,
    max_missing_tree_fraction: float = 0.1,
    max_missing_sequence_fraction: float = 0.1,
    missing_values: list[str] | None = None,
    missing_branch_lengths: str = "error",
) -> Ingested:
    """Read, check and join the inputs; nothing is written. Every problem is an `InputError`."""
    targets = targets or []
    counts, sample_ids, feature_ids = table_to_csr(read_table(table_path))
    samples = _known_samples(sample_ids, metadata_path, table_path, missing_values)
    _check_columns(samples, metadata_path, group_column, color_column, targets)

    # --- features without reads
    totals = np.asarray(counts.sum(axis=0)).ravel()
    if totals.sum() == 0:
        raise InputError(f"{table_path}: empty table (no reads)")
    if (totals == 0).any():
        log.info("%d features have no reads and are dropped", int((totals == 0).sum()))
        counts, feature_ids, totals = _keep_features(counts, feature_ids, totals, totals > 0)

    # --- sequences: drop features that have none
    rep = read_rep_seqs(sequences_path) if sequences_path else None
    sequences = sequences_for(feature_ids, rep, table_path=str(table_path), seqs_path=sequences_path)
    has_sequence = np.fromiter((s is not None for s in sequences), dtype=bool, count=len(sequences))
    if not has_sequence.all():
        _check_missing_share(
            has_sequence, feature_ids, totals, str(sequences_path), "have no sequence",
            "max_missing_sequence_fraction", max_missing_sequence_fraction,
        )
        sequences = [s for s, k in zip(sequences, has_sequence, strict=True) if k]
        counts, feature_ids, totals = _keep_features(counts, feature_ids, totals, has_sequence)

    # --- tree: check its lengths, drop features it lacks, prune it to the rest
    tree = _checked_tree(tree_path, missing_branch_lengths)
    tip_names = tree.tip_names()
    tip_set = set(tip_names)
    in_tree = np.fromiter((f in tip_set for f in feature_ids), dtype=bool, count=len(feature_ids))
    if not in_tree.any():
        raise InputError(
            f"{tree_path}: the tree shares no tip with the table {table_path} "
            f"(table features e.g. '{feature_ids[0]}', tree tips e.g. '{tip_names[0]}')"
        )
    if not in_tree.all():
        _check_missing_share(
            in_tree, feature_ids, totals, str(tree_path), "are not in the tree", "max_missing_tree_fraction",
            max_missing_tree_fraction,
        )
        sequences = [s for s, k in zip(sequences, in_tree, strict=True) if k]
        counts, feature_ids, totals = _keep_features(counts, feature_ids, totals, in_tree)
    pruned = _pruned_tree(tree, tip_names, feature_ids, tree_path)
    log.info(
        "ingested %d samples x %d features (%d reads); tree pruned from %d to %d tips",
        counts.shape[0],
        counts.shape[1],
        int(totals.sum()),
        len(tip_names),
        len(feature_ids),
    )
    return Ingested(counts, sample_ids, feature_ids, sequences, samples, pruned)


def _known_samples(sample_ids: list[str], metadata_path: str, table_path: str,
                   missing_values: list[str] | None) -> pd.DataFrame:
    """The metadata rows of the table's samples, in table order; table samples the metadata lacks
    are logged (they stay in counts.parquet for self-supervised pretraining)."""
    metadata = read_metadata(metadata_path, missing_values)
    known = pd.Index(sample_ids).isin(metadata.index)  # hashed (np.isin on strings is quadratic)
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
    return metadata.loc[[s for s, k in zip(sample_ids, known, strict=True) if k]]


def _checked_tree(tree_path: str, missing_branch_lengths: str) -> Tree:
    """The user's tree with its branch lengths checked (missing ones as 0 when allowed, logged)."""
    tree = read_tree(tree_path)
    n_absent = int(np.isnan(tree.length[1:]).sum())
    tree = check_branch_lengths(tree, str(tree_path), missing_branch_lengths)
    if n_absent:
        log.warning(
            "%s: %d of %d branches have no length and count as 0 (ingest.missing_branch_lengths: zero)",
            tree_path,
            n_absent,
            tree.n_nodes - 1,
        )
    return tree


def _pruned_tree(tree: Tree, tip_names: list[str], feature_ids: list[str], tree_path: str) -> Tree:
    """The tree pruned to the kept features; a tip name that occurs twice is an error."""
    kept = set(feature_ids)
    kept_tips = [t for t in tip_names if t in kept]
    if len(kept_tips) != len(feature_ids):
        dup = next(t for t, n in Counter(kept_tips).items() if n > 1)
        raise InputError(f"{tree_path}: tip name '{dup}' occurs more than once")
    return tree.prune(feature_ids)


def _check_missing_share(kept, feature_ids, totals, path: str, what: str, setting: str, limit: float) -> None:
    """Warn that the features not `kept` are dropped (how many, what share of the reads), or raise
    an `InputError` when they hold more than `limit` of the reads (the config's ingest.<setting>)."""
    n_missing = int((~kept).sum())
    read_fraction = float(totals[~kept].sum() / totals.sum())
    examples = ", ".join(f"'{feature_ids[i]}'" for i in np.flatnonzero(~kept)[:3])
    share = f"{read_fraction:.2%} of reads"
    message = f"{n_missing} of {len(kept)} table features ({share}) {what} (e.g. {examples})"
    if read_fraction > limit:
        raise InputError(f"{path}: {message}, more than ingest.{setting} = {limit:g}")
    log.warning("%s: %s; they are dropped", path, message)


def _keep_features(counts, feature_ids, totals, mask):
    counts = counts[:, mask].tocsr()
    counts.eliminate_zeros()
    feature_ids = [f for f, k in zip(feature_ids, mask, strict=True) if k]
    return counts, feature_ids, totals[mask]


def _check_columns(samples: pd.DataFrame, path, group_column, color_column, targets) -> None:
    for role, column in (("group_column", group_column), ("color_column", color_column)):
        if column and column not in samples.columns:
            where = setting_name(f"--{role.replace('_', '-')}", f"datasets.<name>.{role}")
            raise InputError(f"{path}: no column '{column}' ({where})")
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
                    f"{path}: regression target column '{column}' has a non-numeric value '{bad}' "
                    "(add it to ingest.missing_values if it stands for a missing value)"
                )
        _check_classes(target, set(values.dropna()), path)


def _check_classes(target: dict, present: set[str], path) -> None:
    """A target's `classes` and `positive_class` name classes its column holds (typos stop here,
    before any training), and only classification targets have them."""
    name, classes, positive = target["name"], target.get("classes"), target.get("positive_class")
    if target["type"] != "classification":
        if classes or positive:
            raise InputError(f"target '{name}': classes and positive_class are for classification targets")
        return
    shown = ", ".join(sorted(present)[:10])
    if classes:
        absent = [c for c in classes if c not in present]
        if absent:
            raise InputError(
                f"{path}: target '{name}': class(es) {absent} are not in column '{target['column']}' "
                f"of the table's samples (its values: {shown})"
            )
    if positive is not None:
        modelled = list(classes) if classes else sorted(present)
        if positive not in modelled:
            raise InputError(
                f"{path}: target '{name}': positive_class '{positive}' is not one of its classes {modelled}"
            )
        if len(modelled) != 2:
            raise InputError(
                f"target '{name}': positive_class needs two classes, the target has {len(modelled)} "
                f"({modelled}); list two in classes, or drop positive_class"
            )


OUTPUTS = ("features.parquet", "counts.parquet", "samples.parquet", "tree.nwk")


def write_outputs(result: Ingested, out_dir: str | Path) -> None:
    """Write the four artifacts, all or none: into a temporary folder that then takes the place of
    `out_dir` (`aam.io.atomic.publish_together`), so a kill never leaves some of them."""
    with publish_together(out_dir, OUTPUTS) as tmp:
        _write_all(result, tmp)


def _write_all(result: Ingested, out_dir: Path) -> None:
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
        pq.write_table(table, out_dir / name, compression="zstd")
    write_tree(result.tree, out_dir / "tree.nwk")
