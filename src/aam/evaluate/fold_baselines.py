"""The baselines of one split or fold and target: read the fold, fit each baseline, score it.

The library of `aam baselines`. The training samples are those of ``train_splits`` (default train +
val) and the test samples those of :func:`aam.evaluate.fold_samples.evaluation_samples`, the very
ones the AAM runs are scored on, so that every model is compared on identical folds. Each baseline
(:mod:`aam.evaluate.baselines`) tunes its hyperparameters by grouped inner cross-validation on the
training samples only, is refit on them and predicts the test samples; it is scored by the one
metric registry (:func:`aam.evaluate.metrics.compute_metrics`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aam.data.split import fold_file
from aam.errors import InputError
from aam.evaluate.baselines import LABELS, BaselineSettings, nested_fit_predict
from aam.evaluate.fold_samples import evaluation_samples, positive_last, split_fingerprints
from aam.evaluate.metrics import PRIMARY_METRIC, compute_metrics
from aam.io.biom import read_table, table_to_csr
from aam.io.metadata import read_target_column, target_classes
from aam.io.splits import read_groups, read_splits

log = logging.getLogger(__name__)


@dataclass
class FoldData:
    """One split or fold as the baselines see it: features (rarefied counts) and targets."""

    train_ids: list[str]
    test_ids: list[str]
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    groups: list[str | None]  # the training samples' groups, for grouped inner CV
    classes: list[str] | None  # positive class last
    labels: dict  # every sample's target value (text)
    fold_samples: dict[str, str]  # each split's fingerprint (fold_samples.split_fingerprints)


def fold_data(rarefied: str, splits: str, samples: str, target_column: str, task: str, classes_json: str,
              positive_class: str, train_splits) -> FoldData:
    """Read and check the fold: enough training samples, a test sample, two classes."""
    split_of = read_splits(splits)
    group_of = read_groups(splits)
    labels = read_target_column(samples, target_column, target_classes(classes_json, task))
    counts, table_samples, _ = table_to_csr(read_table(rarefied))
    row_of = {s: i for i, s in enumerate(table_samples)}
    kept, classes = evaluation_samples(split_of, labels, row_of, task)
    if classes and positive_class:
        try:
            classes = positive_last(classes, positive_class)
        except ValueError as err:
            raise InputError(f"--positive-class: {err}") from None
    train_ids = [s for name in ("train", "val") if name in train_splits for s in kept[name]]
    test_ids = kept["test"]
    where = f"{splits}, target {target_column!r}"
    if len(train_ids) < 2:
        raise InputError(f"{where}: {len(train_ids)} training samples in the rarefied table have a value")
    if not test_ids:
        raise InputError(f"{where}: no test sample in the rarefied table with a value")
    if task == "classification" and len(classes) < 2:
        raise InputError(f"{where}: the training split has one class only ({classes})")
    y_train = _targets([labels[s] for s in train_ids], task, where)
    y_test = _targets([labels[s] for s in test_ids], task, where)
    dense = counts.tocsr()
    x_train = dense[[row_of[s] for s in train_ids]].toarray()
    x_test = dense[[row_of[s] for s in test_ids]].toarray()
    return FoldData(train_ids, test_ids, x_train, x_test, y_train, y_test,
                    [group_of.get(s) for s in train_ids], classes, labels, split_fingerprints(kept))


def recorded_fold(results, dataset: str, metrics_file) -> tuple[dict, str, FoldData]:
    """(the record, the fold's name, its FoldData) of a baselines ``metrics.json`` of a
    cross-validated results folder (``<results>/<dataset>/cv/<fold>/baselines/<target>/``): the
    fold as `aam baselines` read it, for diagnoses that refit models on the very same samples."""
    results, metrics_file = Path(results), Path(metrics_file)
    meta = json.loads(metrics_file.read_text())
    task, fold = meta["task"], metrics_file.parents[2].name
    classes = json.dumps(meta["classes"]) if task == "classification" else ""
    data = fold_data(str(results / dataset / "rarefied" / "table.biom"),
                     str(results / dataset / fold_file(fold)),
                     str(results / dataset / "ingest" / "samples.parquet"), meta["column"], task, classes,
                     meta.get("positive_class") or "", tuple(meta["train_splits"]))
    return meta, fold, data


def fit_baselines(data: FoldData, task: str, settings: BaselineSettings) -> tuple[dict, pd.DataFrame]:
    """Per baseline its test metrics, chosen hyperparameters, inner-CV scores and features used; and
    the predictions table (sample, y_true, <name>_pred, <name>_prob_<class>)."""
    from threadpoolctl import threadpool_limits

    classes = data.classes
    models = {}
    predictions = pd.DataFrame({"sample": data.test_ids, "y_true": [data.labels[s] for s in data.test_ids]})
    for name in settings.models:
        with threadpool_limits(limits=settings.n_jobs):
            result = nested_fit_predict(name, data.x_train, data.y_train, data.groups, data.x_test, task,
                                        settings, classes)
        test = compute_metrics(task, data.y_test, result.predictions, result.proba, classes)
        models[name] = {"test": test, "params": result.params, "search": result.search,
                        "n_features": result.n_features}
        predictions[f"{name}_pred"] = result.predictions
        if result.proba is not None:
            for j, c in enumerate(classes):
                predictions[f"{name}_prob_{c}"] = result.proba[:, j]
        log.info("%s: %s %s with %s (%d features, %.1f s)", LABELS[name], PRIMARY_METRIC[task],
                 _fmt(test[PRIMARY_METRIC[task]]), result.params, result.n_features, result.seconds)
    return models, predictions


def _targets(values: list[str], task: str, where: str) -> np.ndarray:
    """Class names, or floats for a regression (a non-number is one InputError line)."""
    if task == "classification":
        return np.asarray(values, dtype=object)
    try:
        return np.asarray([float(v) for v in values], dtype=np.float64)
    except ValueError as err:
        raise InputError(f"{where}: a regression target must be numeric ({err})") from None


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
