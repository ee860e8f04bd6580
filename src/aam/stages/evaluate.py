"""Evaluate one fine-tuned model on the test split beside the baselines on the very same samples.

Inputs (files only):
  finetune dir   model.json (task, classes), metrics.csv, predictions.tsv (sample, split, y_true,
                 y_pred, prob_<class>...), embeddings.parquet (id, split, embedding: the layout
                 of aam.io.embeddings)
  pretrain dir   metrics.csv (optional: runs without pretraining have none)
  baselines dir  metrics.json and predictions.tsv of `aam baselines` on the same split or fold and
                 target (optional): fit once per fold, whatever the number of runs; they must have
                 predicted exactly this model's test samples, and trained on its training samples
                 (an error otherwise)
  splits.tsv (sample, split, group), ingest/samples.parquet (sample + metadata)

Outputs in --out-dir (replaced as a whole, atomically):
  metrics.json     our model and every baseline side by side on the test split (each baseline
                   scored here from its predictions, in the model's class order), with sample
                   counts, our model's validation metrics, the baselines' chosen hyperparameters,
                   the test samples' fingerprint, ``fold_samples`` (each split's samples the model
                   was trained, validated and tested on, from its embeddings.parquet; with
                   --baselines they must be the baselines' own, an error otherwise: identical
                   folds) and ``degenerate_predictions`` (null, or why our
                   model's test predictions ignore their input: one class for every sample, or a
                   regression whose predictions vary by < 10 % of the target's sd; a WARNING line in
                   the log too, for the baselines as well); with --combine, ``combined``: per
                   combination (aam.evaluate.combine: the mean of AAM's and one or more
                   baselines' predictions) its members, method "mean" and
                   degenerate_predictions, its scores under ``test`` as model aam+<combination>
  predictions.tsv  sample, split, y_true, aam_pred, <baseline>_pred (+ aam_prob_<c>, <baseline>_prob_<c>),
                   aam+<combination>_pred (+ aam+<combination>_prob_<c>) per combination
  plots/           learning_curves.png, embedding_pcoa.png and, per task, pred_vs_true.png
                   (regression) or confusion_matrices.png and roc.png (classification)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

from aam.evaluate.holdout import (
    degenerate_flags,
    label,
    metrics_record,
    prediction_table,
    score_holdout,
    write_plots,
)
from aam.evaluate.metrics import PRIMARY_METRIC
from aam.io.atomic import atomic_dir

log = logging.getLogger(__name__)


def evaluate(args: argparse.Namespace) -> dict:
    """Score (:mod:`aam.evaluate.holdout`), warn of degenerate predictions, write all or nothing."""
    finetune_dir = Path(args.finetune_dir)
    h = score_holdout(finetune_dir, args.splits, args.samples, args.target_column, args.task,
                      args.positive_class, args.baselines, args.combine)
    flags = degenerate_flags(h)
    for name, flag in flags.items():
        if flag:
            log.warning("degenerate predictions of the %s: %s", label(name), flag)
    result = metrics_record(h, flags, {"dataset": args.dataset, "run": args.run, "fold": args.fold,
                                               "target": args.target, "column": args.target_column})
    with atomic_dir(Path(args.out_dir)) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        prediction_table(h).to_csv(tmp / "predictions.tsv", sep="\t", index=False, float_format="%.6g")
        (tmp / "plots").mkdir()
        write_plots(tmp / "plots", h, finetune_dir, args.pretrain_dir, args.target, args.run)
    metric = PRIMARY_METRIC[h.task]
    log.info("test %s: %s", metric, ", ".join(f"{label(n)} {_fmt(s[metric])}" for n, s in h.scores.items()))
    return result


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--finetune-dir", required=True, help="models/{run}/finetune/{target}/")
    parser.add_argument("--pretrain-dir", default=None, help="models/{run}/pretrain/ (learning curves)")
    parser.add_argument("--splits", required=True, help="splits.tsv")
    parser.add_argument("--samples", required=True, help="ingest/samples.parquet (metadata)")
    parser.add_argument("--target-column", required=True, help="metadata column of the target")
    parser.add_argument("--task", choices=("regression", "classification"), default=None,
                        help="target type (default: from model.json)")
    parser.add_argument("--target", default=None, help="target name (default: the column)")
    parser.add_argument("--positive-class", nargs="?", const="", default="",
                        help="binary classification: the class AUROC scores (default: the second sorted)")
    parser.add_argument("--run", default="run", help="run name, for labels")
    parser.add_argument("--dataset", default="dataset", help="dataset name, for labels")
    parser.add_argument("--fold", default=None, help="cross-validation fold (e.g. r0f3), for labels")
    parser.add_argument("--baselines", default=None,
                        help="the folder of `aam baselines` on the same split and target")
    parser.add_argument("--combine", nargs="*", default=[], metavar="BASELINE[+BASELINE]",
                        help="baselines to combine with the model, each alone or several joined with +: "
                             "the mean of its and the baselines' predictions (class probabilities) is "
                             "scored as model aam+<combination>")
    parser.add_argument("--out-dir", required=True, help="eval/{run}/{target}/")


def run(args: argparse.Namespace) -> None:
    if args.target is None:
        args.target = args.target_column
    evaluate(args)
