"""Stage `aam ingest`: a table, sequences, tree and metadata into Parquet caches and a pruned tree.

Outputs (in --out-dir, only after every input has been checked, and all or none: they are written
into a temporary folder that then takes the place of --out-dir, which must hold nothing else):

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

The tree's branch lengths are checked on the user's file: negative lengths, no lengths at all, or
all lengths 0 are errors (UniFrac would be 0 everywhere); some missing lengths are an error unless
``ingest.missing_branch_lengths`` is ``zero`` (then they are written as 0, with a warning).

Logged: table samples missing from the metadata (kept in counts.parquet for pretraining only).
Dropped with a warning: features without reads,
features without a representative sequence and features missing from the tree (how many and what
fraction of the reads; past ``ingest.max_missing_sequence_fraction`` or
``ingest.max_missing_tree_fraction`` that is an error). Metadata values in
``ingest.missing_values`` are missing.
"""

from __future__ import annotations

import argparse
import json

from aam.config import section_settings
from aam.data.ingest import ingest, write_outputs
from aam.errors import InputError


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
        max_missing_sequence_fraction=float(settings["max_missing_sequence_fraction"]),
        missing_values=list(settings["missing_values"]),
        missing_branch_lengths=settings["missing_branch_lengths"],
    )
    write_outputs(result, args.out_dir)
