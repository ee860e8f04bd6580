"""Test-set metrics for regression and classification, shared by our models and the random forest.

Regression (y in original units):
    MAE  = mean |y - yhat|
    RMSE = sqrt(mean (y - yhat)^2)
    R^2  = 1 - sum (y - yhat)^2 / sum (y - mean y)^2   (coefficient of determination, can be < 0)
    r    = Pearson correlation of y and yhat             (NaN -> None when either side is constant)

Classification (labels are class names; `proba` has one column per class, in `classes` order):
    accuracy  = fraction of samples whose predicted class equals the true class
    macro-F1  = unweighted mean over `classes` of F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)
    AUROC     = binary: area under the ROC curve of P(classes[1]) for the positive class classes[1];
                multiclass: one-vs-rest AUROC per class, unweighted mean (macro) over the classes
                present in y_true. None where it is undefined (a single class in y_true).
    confusion = counts[i][j] of samples with true class classes[i] predicted as classes[j]

Every value is a plain Python float/int/list (or None), ready for JSON.

:data:`METRICS` is the one registry of these metrics (name, task, whether higher is better, whether
training monitors it, function): the test-set tables here, the validation metrics logged in training
(:func:`aam.training.aam_modules.validation_metrics`), the cross-validation summaries
(:mod:`aam.evaluate.cv`) and the comparison table (`aam compare`) all take their metrics from it. A
new metric is one entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn import metrics as skm


def _clean(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict:
    """MAE, RMSE, R^2 and Pearson r of predictions against true values (both in original units)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be 1-D of equal length")
    n = int(y_true.size)
    if n == 0:
        raise ValueError("no samples to evaluate")
    if not (np.isfinite(y_true).all() and np.isfinite(y_pred).all()):
        raise ValueError("regression values must be finite")
    return {"n": n, **{m.name: m.compute(y_true, y_pred, None, None) for m in task_metrics("regression")}}


def auroc(y_true: Sequence[str], proba: np.ndarray, classes: Sequence[str]) -> float | None:
    """Binary AUROC of P(classes[1]), or macro one-vs-rest AUROC over the classes present in y_true."""
    y_true = np.asarray(y_true, dtype=object)
    proba = np.asarray(proba, dtype=np.float64)
    classes = list(classes)
    present = [c for c in classes if (y_true == c).any()]
    if len(present) < 2:
        return None
    if len(classes) == 2:
        return _clean(skm.roc_auc_score(y_true == classes[1], proba[:, 1]))
    per_class = [skm.roc_auc_score(y_true == c, proba[:, classes.index(c)]) for c in present]
    return _clean(np.mean(per_class))


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> list[list[int]]:
    """counts[i][j]: samples of true class classes[i] predicted as classes[j]."""
    cm = skm.confusion_matrix(np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object),
                              labels=list(classes))
    return cm.astype(int).tolist()


def classification_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    proba: np.ndarray | None,
    classes: Sequence[str],
) -> dict:
    """Accuracy, macro-F1, AUROC (None without probabilities) and the confusion matrix."""
    classes = [str(c) for c in classes]
    y_true = np.asarray([str(v) for v in y_true], dtype=object)
    y_pred = np.asarray([str(v) for v in y_pred], dtype=object)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be 1-D of equal length")
    if y_true.size == 0:
        raise ValueError("no samples to evaluate")
    unknown = sorted(set(y_true) - set(classes))
    if unknown:
        raise ValueError(f"true labels {unknown} are not among the classes {classes}")
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64)
        if proba.shape != (y_true.size, len(classes)):
            raise ValueError(f"probabilities of shape {proba.shape}, expected {(y_true.size, len(classes))}")
    scores = {m.name: m.compute(y_true, y_pred, proba, classes) for m in task_metrics("classification")}
    return {
        "n": int(y_true.size),
        **scores,
        "confusion_matrix": confusion_matrix(y_true, y_pred, classes),
        "classes": classes,
    }


def roc_points(y_true: Sequence[str], scores: np.ndarray, positive: str) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of the ROC curve of `scores` for class `positive`."""
    fpr, tpr, _ = skm.roc_curve(np.asarray(y_true, dtype=object) == positive, np.asarray(scores, float))
    return fpr, tpr


def macro_roc_points(
    y_true: Sequence[str], proba: np.ndarray, classes: Sequence[str], grid: int = 201
) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest ROC curves of the present classes, TPR averaged on a common FPR grid."""
    y_true = np.asarray(y_true, dtype=object)
    fpr_grid = np.linspace(0.0, 1.0, grid)
    tprs = []
    for k, c in enumerate(classes):
        if (y_true == c).any() and (y_true != c).any():
            fpr, tpr = roc_points(y_true, proba[:, k], c)
            tprs.append(np.interp(fpr_grid, fpr, tpr))
    if not tprs:
        return fpr_grid, np.full_like(fpr_grid, np.nan)
    tpr = np.mean(tprs, axis=0)
    tpr[0] = 0.0
    return fpr_grid, tpr


def compute_metrics(task: str, y_true, y_pred, proba=None, classes=None) -> dict:
    """Dispatch on the task type: 'regression' or 'classification'."""
    if task == "regression":
        return regression_metrics(y_true, y_pred)
    if task == "classification":
        if classes is None:
            raise ValueError("classification metrics need the class names")
        return classification_metrics(y_true, y_pred, proba, classes)
    raise ValueError(f"unknown task {task!r}: expected 'regression' or 'classification'")


# --------------------------------------------------------------------------------- the registry
# Each function takes (y_true, y_pred, proba, classes): regression values in original units (proba
# and classes unused), or class labels with proba's columns in `classes` order (proba may be None).


def _mae(y_true, y_pred, proba=None, classes=None) -> float | None:
    return _clean(skm.mean_absolute_error(y_true, y_pred))


def _rmse(y_true, y_pred, proba=None, classes=None) -> float | None:
    return _clean(math.sqrt(skm.mean_squared_error(y_true, y_pred)))


def _r2(y_true, y_pred, proba=None, classes=None) -> float | None:
    """R^2; undefined (None) for fewer than 2 values or constant true values."""
    y_true = np.asarray(y_true, dtype=np.float64)
    if y_true.size < 2 or np.ptp(y_true) == 0:
        return None
    return _clean(skm.r2_score(y_true, y_pred))


def _pearson_r(y_true, y_pred, proba=None, classes=None) -> float | None:
    """Pearson r; undefined (None) for fewer than 2 values or either side constant."""
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if y_true.size < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return None
    return _clean(stats.pearsonr(y_true, y_pred).statistic)


def _accuracy(y_true, y_pred, proba=None, classes=None) -> float | None:
    return _clean(skm.accuracy_score(y_true, y_pred))


def _macro_f1(y_true, y_pred, proba, classes) -> float | None:
    return _clean(skm.f1_score(y_true, y_pred, labels=list(classes), average="macro", zero_division=0))


def _auroc(y_true, y_pred, proba, classes) -> float | None:
    return None if proba is None else auroc(y_true, proba, classes)


@dataclass(frozen=True)
class Metric:
    """One metric: ``name`` (its key in metrics.json, ``val/<name>`` in training logs), the ``task``
    it scores, whether higher is better (the direction of comparisons, early stopping and model
    selection), whether training logs it on the validation split (``monitored``), and ``compute``:
    (y_true, y_pred, proba, classes) -> float, or None where it is undefined."""

    name: str
    task: str
    higher_is_better: bool
    compute: Callable[..., float | None]
    monitored: bool = False


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("mae", "regression", False, _mae, monitored=True),
    Metric("rmse", "regression", False, _rmse),
    Metric("r2", "regression", True, _r2, monitored=True),
    Metric("pearson_r", "regression", True, _pearson_r),
    Metric("accuracy", "classification", True, _accuracy, monitored=True),
    Metric("macro_f1", "classification", True, _macro_f1),
    Metric("auroc", "classification", True, _auroc, monitored=True),
)}
TASKS = ("regression", "classification")
# The one number a run is ranked by, per task (higher is better for both).
PRIMARY_METRIC = {"regression": "r2", "classification": "auroc"}
# What fine-tuning's early stopping and best epoch follow with `trainer.monitor: auto`.
TRAINING_MONITOR = {"regression": "mae", "classification": "auroc"}


def task_metrics(task: str) -> tuple[Metric, ...]:
    """The metrics of a task, in the registry's order (the order of tables and metrics.json)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: expected 'regression' or 'classification'")
    return tuple(m for m in METRICS.values() if m.task == task)


def metric_names(task: str) -> tuple[str, ...]:
    """The names of a task's metrics, in the registry's order."""
    return tuple(m.name for m in task_metrics(task))


def secondary_metrics(task: str) -> tuple[str, ...]:
    """A task's metrics other than its primary one (reported beside it)."""
    return tuple(name for name in metric_names(task) if name != PRIMARY_METRIC[task])


def monitored_metrics(task: str) -> tuple[Metric, ...]:
    """The metrics training logs on the validation split (``val/<name>``)."""
    return tuple(m for m in task_metrics(task) if m.monitored)


def mode(name: str) -> str:
    """``max`` or ``min``: how a checkpoint monitor or a selection reads this metric."""
    return "max" if METRICS[name].higher_is_better else "min"


REGRESSION_METRICS = metric_names("regression")
CLASSIFICATION_METRICS = metric_names("classification")


# Regression predictions whose standard deviation is below this share of the true values' count as
# not varying: the model answers (nearly) the same number whatever the sample. Calibrated predictions
# that correlate r with the target vary by about |r| x its sd, so under 10 % they could explain at
# most 1 % of its variance. (At 1 % the check missed a fine-tuned model whose test predictions
# varied by 0.38 years against the targets' 9.54, 4 %, and correlated r 0.11: issue 24.)
DEGENERATE_SD_RATIO = 0.1


def degenerate_predictions(task: str, y_true, y_pred, proba=None) -> str | None:
    """Why predictions ignore their input, or None: the symptom of a model that did not learn.

    Classification: every sample gets the same class (the spread of the class probabilities is
    reported beside it). Regression: the predictions' standard deviation is below
    ``DEGENERATE_SD_RATIO`` (10 %) of the true values' standard deviation. Needs >= 2 samples.
    """
    if len(y_pred) < 2:
        return None
    if task == "classification":
        predicted = {str(p) for p in y_pred}
        if len(predicted) > 1:
            return None
        spread = ""
        if proba is not None and np.asarray(proba).size:
            sd = float(np.asarray(proba, dtype=np.float64).std(axis=0).max())
            spread = f"; class probabilities vary by sd {sd:.3g}"
        return f"one class ({next(iter(predicted))!r}) predicted for all {len(y_pred)} test samples{spread}"
    pred_sd = float(np.std(np.asarray(y_pred, dtype=np.float64)))
    true_sd = float(np.std(np.asarray(y_true, dtype=np.float64)))
    if true_sd == 0 or pred_sd >= DEGENERATE_SD_RATIO * true_sd:
        return None
    return (f"predictions barely vary: sd {pred_sd:.3g} is {pred_sd / true_sd:.2%} of the true values' "
            f"sd {true_sd:.3g} (under {DEGENERATE_SD_RATIO:.0%}: calibrated, they would explain at most "
            f"{DEGENERATE_SD_RATIO ** 2:.0%} of its variance) on {len(y_pred)} test samples")
