"""Stage `aam cv-split`: cross-validation folds of a dataset, each as a splits.tsv.

Input: ``ingest/samples.parquet`` (sample + metadata). Repeated K-fold by whole groups of
``--group-column``, stratified by ``--stratify-column`` (a classification target), seeded; each
fold's training groups give up ``--val-fraction`` of their samples, by whole groups, to validation
(early stopping). See aam.data.split.cv_folds.

Outputs in ``--out-dir`` (a folder of its own: all of them or none, `aam.io.atomic.publish_together`;
the workflow makes each repeat in its own job and folder, results/{dataset}/cv/split/r{repeat}/, with
``--repeats 1 --first-repeat R``: a repeat's folds are the same however many repeats are made, so
raising ``evaluate.cv.repeats`` adds jobs and reruns none):
  folds.tsv           sample, repeat, fold, split: every assignment
  summary.tsv         fold, split, class, samples, groups
  {fold}.tsv          per fold (``r0f0``, ``r0f1``, ...): sample, split, group, the format of
                      splits.tsv, so that `aam finetune` and `aam evaluate` run on a fold unchanged
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from aam.data.split import cv_folds, fold_name, fold_splits, split_summary
from aam.errors import InputError
from aam.io.atomic import publish_together

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", required=True, help="ingest/samples.parquet")
    parser.add_argument(
        "--group-column", nargs="?", const="", help="metadata column; no group spans two splits"
    )
    parser.add_argument(
        "--stratify-column", nargs="?", const="", help="classification target column to balance"
    )
    parser.add_argument("--folds", type=int, required=True, help="K")
    parser.add_argument("--repeats", type=int, default=1, help="repeats of K-fold, each its own shuffle")
    parser.add_argument("--first-repeat", type=int, default=0,
                        help="number of the first repeat (r<first>f0, ...): each is seeded by its number")
    parser.add_argument("--val-fraction", type=float, default=0.15, help="share of a fold's training part")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out-dir", required=True,
                        help="folder of its own for folds.tsv, summary.tsv and {fold}.tsv")


def run(args: argparse.Namespace) -> None:
    try:
        samples = pd.read_parquet(args.samples)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise InputError(f"{args.samples}: cannot read samples table ({err})") from None
    group_column, stratify = args.group_column or None, args.stratify_column or None  # '' = none
    try:
        folds = cv_folds(
            samples, group_column, stratify, args.folds, args.repeats, args.seed, args.val_fraction,
            args.first_repeat,
        )
    except ValueError as err:
        raise InputError(f"{args.samples}: evaluate.{err}") from None
    strata = samples[stratify].tolist() if stratify else None
    repeats = range(args.first_repeat, args.first_repeat + args.repeats)
    names = [fold_name(repeat, fold) for repeat in repeats for fold in range(args.folds)]
    summaries = []
    outputs = ["folds.tsv", "summary.tsv", *(f"{n}.tsv" for n in names)]
    with publish_together(args.out_dir, outputs, owned=r"r\d+f\d+\.tsv") as out:
        for name in names:
            splits = fold_splits(folds, samples, group_column, name)
            splits.to_csv(out / f"{name}.tsv", sep="\t", index=False)
            summary = split_summary(splits, strata)
            summaries.append(summary.assign(fold=name))
            sizes = summary[summary["class"] == "all"].set_index("split")["samples"].to_dict()
            log.info("fold %s: %s", name, ", ".join(f"{k} {v}" for k, v in sizes.items()))
        table = pd.concat(summaries, ignore_index=True)[["fold", "split", "class", "samples", "groups"]]
        table.to_csv(out / "summary.tsv", sep="\t", index=False)
        folds.to_csv(out / "folds.tsv", sep="\t", index=False)
