"""Stage `aam rarefy`: one seeded rarefaction of the table to a fixed depth, without replacement.

Input: ``--table``, the ingested ``ingest/counts.parquet`` (sample, feature, count) or any table
that aam.io.biom reads (BIOM, .qza, TSV); with ``--samples ingest/samples.parquet`` samples without
reads are listed as dropped too. The depth is an integer or ``auto`` (the largest depth that keeps
at least ``--min-sample-fraction`` of the samples). Outputs: ``--out`` (BIOM HDF5, the samples that
reach the depth, each summing to it; features without reads after the draw removed) and
``--dropped`` (TSV: ``sample``, ``reads``: the samples below the depth), both or neither
(`aam.io.atomic.publish_files`).
"""

from __future__ import annotations

import argparse

from aam.data.rarefy_table import rarefied_table, read_counts, with_all_samples
from aam.errors import InputError
from aam.io.atomic import publish_files
from aam.io.biom import write_biom


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, help="ingest/counts.parquet, or a BIOM/.qza/TSV table")
    parser.add_argument("--samples", help="ingest/samples.parquet: lists samples without reads as dropped")
    parser.add_argument("--depth", default="auto", help="reads per sample, or 'auto' (default)")
    parser.add_argument(
        "--min-sample-fraction", type=float, default=0.9, help="share of samples that depth 'auto' keeps"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", required=True, help="rarefied BIOM table (HDF5) to write")
    parser.add_argument("--dropped", required=True, help="TSV of the samples below the depth to write")


def parse_depth(text: str) -> int | str:
    """--depth: a positive integer or "auto"."""
    if str(text) == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"--depth: expected a positive integer or 'auto', got '{text}'") from None
    if value < 1:
        raise InputError(f"--depth: expected a positive integer or 'auto', got {value}")
    return value


def run(args: argparse.Namespace) -> None:
    depth_setting = parse_depth(args.depth)
    if not 0 < args.min_sample_fraction <= 1:
        raise InputError(f"--min-sample-fraction: must lie in (0, 1], got {args.min_sample_fraction}")
    counts, sample_ids, feature_ids = read_counts(args.table)
    if args.samples:
        counts, sample_ids = with_all_samples(args.samples, counts, sample_ids)
    table, dropped, depth = rarefied_table(counts, sample_ids, feature_ids, depth_setting,
                                           args.min_sample_fraction, args.seed, args.table)
    with publish_files([args.out, args.dropped]) as (out, dropped_out):
        write_biom(table, out, generated_by=f"aam rarefy (depth {depth}, seed {args.seed})")
        dropped.to_csv(dropped_out, sep="\t", index=False)
