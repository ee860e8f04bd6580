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

import numpy as np
import pandas as pd

from aam.config import load_settings
from aam.errors import InputError
from aam.evaluate.baselines import LABELS, BaselineSettings, nested_fit_predict, validate_section
from aam.evaluate.fold_samples import (
    evaluation_samples,
    positive_last,
    samples_fingerprint,
    split_fingerprints,
)
from aam.evaluate.metrics import PRIMARY_METRIC, compute_metrics
from aam.io.atomic import atomic_dir
from aam.io.biom import read_table, table_to_csr
from aam.io.metadata import read_target_column
from aam.io.splits import read_splits
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


def target_classes(text: str) -> list[str] | None:
    if not text:
        return None
    try:
        classes = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"--classes: not valid JSON: {err}") from None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise InputError(f"--classes: expected a JSON list of class names, got {text!r}")
    return classes


def run_baselines(args: argparse.Namespace, section: dict) -> dict:
    settings = BaselineSettings.from_dict(section, seed=args.seed).with_threads(args.threads)
    split_of = read_splits(args.splits)
    group_of = _groups(Path(args.splits))
    labels = read_target_column(args.samples, args.target_column, target_classes(args.classes))
    counts, table_samples, _ = table_to_csr(read_table(args.rarefied))
    row_of = {s: i for i, s in enumerate(table_samples)}
    kept, classes = evaluation_samples(split_of, labels, row_of, args.task)
    if classes and args.positive_class:
        try:
            classes = positive_last(classes, args.positive_class)
        except ValueError as err:
            raise InputError(f"--positive-class: {err}") from None
    train_ids = [s for name in ("train", "val") if name in settings.train_splits for s in kept[name]]
    test_ids = kept["test"]
    where = f"{args.splits}, target {args.target_column!r}"
    if len(train_ids) < 2:
        raise InputError(f"{where}: {len(train_ids)} training samples in the rarefied table have a value")
    if not test_ids:
        raise InputError(f"{where}: no test sample in the rarefied table with a value")
    if args.task == "classification" and len(classes) < 2:
        raise InputError(f"{where}: the training split has one class only ({classes})")
    y_train = _targets([labels[s] for s in train_ids], args.task, where)
    y_test = _targets([labels[s] for s in test_ids], args.task, where)
    dense = counts.tocsr()
    x_train = dense[[row_of[s] for s in train_ids]].toarray()
    x_test = dense[[row_of[s] for s in test_ids]].toarray()
    groups = [group_of.get(s) for s in train_ids]

    from threadpoolctl import threadpool_limits

    models, predictions = {}, pd.DataFrame({"sample": test_ids, "y_true": [labels[s] for s in test_ids]})
    for name in settings.models:
        with threadpool_limits(limits=settings.n_jobs):
            result = nested_fit_predict(name, x_train, y_train, groups, x_test, args.task, settings, classes)
        test = compute_metrics(args.task, y_test, result.predictions, result.proba, classes)
        models[name] = {"test": test, "params": result.params, "search": result.search,
                        "n_features": result.n_features}
        predictions[f"{name}_pred"] = result.predictions
        if result.proba is not None:
            for j, c in enumerate(classes):
                predictions[f"{name}_prob_{c}"] = result.proba[:, j]
        log.info("%s: %s %s with %s (%d features, %.1f s)", LABELS[name], PRIMARY_METRIC[args.task],
                 _fmt(test[PRIMARY_METRIC[args.task]]), result.params, result.n_features, result.seconds)
    return {
        "dataset": args.dataset,
        "fold": args.fold,
        "target": args.target,
        "column": args.target_column,
        "task": args.task,
        "classes": classes,
        "positive_class": classes[1] if classes and len(classes) == 2 else None,
        "n_train": len(train_ids),
        "n_test": len(test_ids),
        "train_splits": list(settings.train_splits),
        "test_samples": samples_fingerprint(test_ids),
        "fold_samples": split_fingerprints(kept),
        "models": models,
        # the settings as the fits ran: defaults filled, the seed resolved, the threads given
        "provenance": provenance(used_settings(validate_section(section), seed=settings.seed,
                                               n_jobs=settings.n_jobs), args.seed),
    }, predictions


def _groups(path: Path) -> dict[str, str | None]:
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    if "group" not in frame.columns:
        return {}
    return {s: (g or None) for s, g in zip(frame.iloc[:, 0], frame["group"], strict=True)}


def _targets(values: list[str], task: str, where: str) -> np.ndarray:
    if task == "classification":
        return np.asarray(values, dtype=object)
    try:
        return np.asarray([float(v) for v in values], dtype=np.float64)
    except ValueError as err:
        raise InputError(f"{where}: a regression target must be numeric ({err})") from None


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


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
