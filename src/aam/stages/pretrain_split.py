"""Stage `aam pretrain-split`: the samples that self-supervised pretraining trains and validates on.

Pretraining (UniFrac + masked nucleotides) reads no target, so it uses every sample of the table:
those of ``ingest/counts.parquet``, also the ones without metadata, and also the samples that
`aam split` or `aam cv-split` hold out as test for the targets (their tables, never their targets).
A seeded ``val_fraction`` of them, by whole groups where the metadata gives a group, is held out
to measure pretraining's validation losses.

Inputs: ``ingest/counts.parquet`` (which samples), ``ingest/samples.parquet`` (their groups).
Output: ``pretrain_splits.tsv`` (``sample``, ``split`` in {train, val}, ``group``), the format of
splits.tsv, in counts.parquet order.
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd
import pyarrow.parquet as pq

from aam.data.split import pretrain_split
from aam.errors import InputError
from aam.io.atomic import atomic_path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--counts", required=True, help="ingest/counts.parquet (every table sample)")
    parser.add_argument("--samples", required=True, help="ingest/samples.parquet (groups)")
    parser.add_argument("--group-column", nargs="?", const="", help="metadata column of the groups")
    parser.add_argument("--val-fraction", type=float, default=0.15, help="share of samples held out")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", required=True, help="pretrain_splits.tsv to write")


def run(args: argparse.Namespace) -> None:
    try:
        names = pq.read_table(args.counts, columns=["sample"]).column("sample").to_pandas().astype(str)
        samples = pd.read_parquet(args.samples)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise InputError(f"cannot read {args.counts} or {args.samples} ({err})") from None
    names = list(dict.fromkeys(names))  # unique, in table order
    group_of: dict[str, object] = {}
    if args.group_column:
        if args.group_column not in samples.columns:
            raise InputError(f"{args.samples}: no group column '{args.group_column}'")
        group_of = dict(zip(samples["sample"].astype(str), samples[args.group_column], strict=True))
    groups = [group_of.get(s) for s in names]
    try:
        split = pretrain_split(names, groups, args.val_fraction, args.seed)
    except ValueError as err:
        raise InputError(f"split.{err}") from None
    with_metadata = set(samples["sample"].astype(str))
    n_meta = sum(s in with_metadata for s in names)
    counts = split["split"].value_counts()
    log.info(
        "pretraining: %d table samples (%d without metadata): %d train, %d val",
        len(names),
        len(names) - n_meta,
        counts.get("train", 0),
        counts.get("val", 0),
    )
    with atomic_path(args.out) as tmp:
        split.to_csv(tmp, sep="\t", index=False)
