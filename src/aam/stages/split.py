"""Stage `aam split`: grouped, stratified, seeded train/validation/test split of the ingested samples.

Input: ``ingest/samples.parquet`` (sample + metadata columns). Outputs: ``--out``, the splits.tsv
(columns ``sample``, ``split`` in {train, val, test}, ``group``; one row per sample, in
samples.parquet order) and ``--summary`` (``split``, ``class``, ``samples``, ``groups``), both or
neither (`aam.io.atomic.publish_files`; the workflow gives them a folder of their own, ``split/``).
See aam.data.split.
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from aam.config import section_settings
from aam.data.split import grouped_split, split_summary
from aam.errors import InputError
from aam.io.atomic import publish_files

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", required=True, help="ingest/samples.parquet")
    parser.add_argument(
        "--group-column", nargs="?", const="", help="metadata column; no group spans two splits"
    )
    parser.add_argument(
        "--stratify-column", nargs="?", const="", help="metadata column of a classification target to balance"
    )
    parser.add_argument("--settings", help='JSON of the config\'s split section, e.g. {"fractions": {...}}')
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", required=True, help="splits.tsv to write (the workflow: split/splits.tsv)")
    parser.add_argument("--summary", required=True, help="per-split summary TSV to write (split/summary.tsv)")


def _check_no_empty_split(splits: pd.DataFrame, fractions: dict, source: str, group: str | None) -> None:
    """A split asked for (fraction > 0) that gets no sample is an error here, not a puzzle later
    (no validation loss to stop on, no test samples to score)."""
    counts = splits["split"].value_counts()
    empty = [s for s in ("train", "val", "test") if fractions.get(s, 0) > 0 and counts.get(s, 0) == 0]
    if not empty:
        return
    n_groups = splits["group"].fillna(splits["sample"]).nunique()
    why = (
        f"the {len(splits)} samples form only {n_groups} group(s) of '{group}'"
        if group
        else f"there are only {len(splits)} samples"
    )
    raise InputError(
        f"{source}: split {' and '.join(empty)} would get no sample: {why}, too few for the fractions "
        f"{dict(fractions)}; use a group column with more groups, or set those fractions to 0"
    )


def run(args: argparse.Namespace) -> None:
    settings = section_settings(args.settings, "split")
    try:
        samples = pd.read_parquet(args.samples)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise InputError(f"{args.samples}: cannot read samples table ({err})") from None
    if "sample" not in samples.columns:
        raise InputError(f"{args.samples}: no 'sample' column")
    group_column, stratify_col = args.group_column or None, args.stratify_column or None  # '' = none
    for role, column in (("group column", group_column), ("stratify column", stratify_col)):
        if column and column not in samples.columns:
            raise InputError(f"{args.samples}: no {role} '{column}'")
    groups = samples[group_column].tolist() if group_column else None
    strata = samples[stratify_col].tolist() if stratify_col else None
    try:
        splits = grouped_split(samples["sample"].tolist(), groups, strata, settings["fractions"], args.seed)
    except ValueError as err:
        raise InputError(f"split settings: {err}") from None
    _check_no_empty_split(splits, settings["fractions"], args.samples, group_column)
    summary = split_summary(splits, strata)
    for row in summary[summary["class"] == "all"].itertuples():
        log.info("%s: %d samples in %d groups", row.split, row.samples, row.groups)
    with publish_files([args.out, args.summary]) as (out, summary_out):
        splits.to_csv(out, sep="\t", index=False)
        summary.to_csv(summary_out, sep="\t", index=False)
