"""Stage `aam baselines`: the baselines of one split or fold and target, each tuned by nested CV.

Inputs: the rarefied table (rarefied/table.biom), the split or fold (splits.tsv: sample, split,
group) and the metadata (ingest/samples.parquet). Every baseline of ``evaluate.baselines.models``
(aam.evaluate.baselines: random forest, CLR + L2 logistic/ridge, HistGradientBoosting) chooses its
hyperparameters by grouped inner cross-validation on the training samples (the splits of
``train_splits``, default train + val), is refit on them and predicts the test samples: the samples
of aam.evaluate.fold_samples, the very ones the AAM runs are scored on. Run once per fold and
target, whatever the number of AAM runs; `aam evaluate` and `aam cv-summary` read its outputs.

Outputs in --out-dir (replaced as a whole, atomically):
  metrics.json     task, classes, n_train, n_test, test_samples (fingerprint of the test samples,
                   aam.evaluate.fold_samples.samples_fingerprint), fold_samples (that of each
                   split's samples: `aam evaluate` checks the AAM run's against them) and per
                   baseline its test metrics,
                   the chosen hyperparameters, every candidate's inner-CV scores and the features
                   used (the seconds each took are in the log: outputs are the same on every run)
  predictions.tsv  sample, y_true, then per baseline <name>_pred (and <name>_prob_<class>)
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from aam.config import load_settings
from aam.errors import InputError
from aam.evaluate.baselines import BaselineSettings, validate_section
from aam.evaluate.fold_baselines import fit_baselines, fold_data
from aam.evaluate.fold_samples import samples_fingerprint
from aam.io.atomic import atomic_dir
from aam.provenance import provenance, used_settings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rarefied", required=True, help="rarefied/table.biom")
    parser.add_argument("--splits", required=True, help="splits.tsv (sample, split, group)")
    parser.add_argument("--samples", required=True, help="ingest/samples.parquet (metadata)")
    parser.add_argument("--target-column", required=True, help="metadata column of the target")
    parser.add_argument("--task", choices=("regression", "classification"), required=True)
    parser.add_argument("--target", default=None, help="target name (default: the column)")
    parser.add_argument("--classes", nargs="?", const="", default="",
                        help="classification: JSON list of the classes to model (others left out)")
    parser.add_argument("--positive-class", nargs="?", const="", default="",
                        help="binary classification: the class AUROC scores (default: the second sorted)")
    parser.add_argument("--dataset", default="dataset", help="dataset name, for labels")
    parser.add_argument("--fold", default=None, help="cross-validation fold (e.g. r0f3), for labels")
    parser.add_argument("--settings", default="{}",
                        help="the config's evaluate.baselines section as JSON (or a YAML/JSON file)")
    parser.add_argument("--seed", type=int, default=42, help="seed when baselines.seed is null")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of the fits")
    parser.add_argument("--out-dir", required=True, help="the folder to write")


def run_baselines(args: argparse.Namespace, section: dict) -> tuple:
    """metrics.json's record and the predictions table (:mod:`aam.evaluate.fold_baselines`)."""
    settings = BaselineSettings.from_dict(section, seed=args.seed).with_threads(args.threads)
    data = fold_data(args.rarefied, args.splits, args.samples, args.target_column, args.task, args.classes,
                     args.positive_class, settings.train_splits)
    models, predictions = fit_baselines(data, args.task, settings)
    classes = data.classes
    return {
        "dataset": args.dataset,
        "fold": args.fold,
        "target": args.target,
        "column": args.target_column,
        "task": args.task,
        "classes": classes,
        "positive_class": classes[1] if classes and len(classes) == 2 else None,
        "n_train": len(data.train_ids),
        "n_test": len(data.test_ids),
        "train_splits": list(settings.train_splits),
        "test_samples": samples_fingerprint(data.test_ids),
        "fold_samples": data.fold_samples,
        "models": models,
        # the settings as the fits ran: defaults filled, the seed resolved, the threads given
        "provenance": provenance(used_settings(validate_section(section), seed=settings.seed,
                                               n_jobs=settings.n_jobs), args.seed),
    }, predictions


def run(args: argparse.Namespace) -> None:
    if args.target is None:
        args.target = args.target_column
    section = load_settings(args.settings)
    if not isinstance(section, dict):
        raise InputError("--settings must be a JSON object (the config's evaluate.baselines section)")
    result, predictions = run_baselines(args, section)
    with atomic_dir(Path(args.out_dir)) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        predictions.to_csv(tmp / "predictions.tsv", sep="\t", index=False, float_format="%.6g")
