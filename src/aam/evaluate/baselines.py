"""The baselines every AAM run is judged against, each tuned by nested, grouped cross-validation.

Three models a reviewer accepts, on the rarefied table (samples x features counts):

- ``random_forest``: q2-sample-classifier's recipe (`classify-samples` / `regress-samples`): a
  scikit-learn random forest on relative abundances (each sample's counts over its total), every
  feature, 500 trees.
- ``linear_clr``: L2-regularised logistic regression (classification; multinomial for more than two
  classes) or ridge regression (regression) on CLR-transformed abundances,
  ``clr(x)_j = log(x_j + p) - mean_k log(x_k + p)`` with a pseudocount p on the counts.
- ``hist_gradient_boosting``: scikit-learn's HistGradientBoosting on relative abundances.

Hyperparameters (nested): for each candidate of a small grid (the Cartesian product of the list-valued
settings), the model is fit on the inner training folds and scored on the inner validation folds
by the task's primary metric (``aam.evaluate.metrics``); the candidate with the best mean inner
score (ties: the first in grid order) is refit on all training samples and predicts the test
samples. The inner folds are made by ``aam.data.split.cv_folds``, the very function that makes the
outer folds: whole groups (subjects, families), stratified by class, seeded. Only training samples
reach this module's search: the outer test fold's samples are passed for prediction alone.

Why the search loop is written here rather than with GridSearchCV: its scorers cannot score an
inner fold in which a class is absent from training or validation (small studies, multi-class), and
they do not use our metric definitions; the loop is a dozen lines.

Features: ``min_prevalence`` drops, per fit, the features present in fewer than that share of the
fit's own training samples (linear and boosting models; the forest uses every feature, as
q2-sample-classifier does). It speeds up large tables and removes near-constant CLR columns.

Determinism: the forest and the boosting are seeded (``random_state``), the inner folds too, so the
same table, fold and seed give the same predictions whatever the thread count.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aam.evaluate.metrics import PRIMARY_METRIC, compute_metrics

BASELINES = ("random_forest", "linear_clr", "hist_gradient_boosting")
# Names a person reads in tables and plots.
LABELS = {
    "random_forest": "random forest",
    "linear_clr": "CLR + L2 logistic/ridge",
    "hist_gradient_boosting": "HistGradientBoosting",
}
# The hyperparameters of each baseline that a list in the config searches over, and the fixed settings.
SEARCHED = {
    "random_forest": ("max_features", "min_samples_leaf"),
    "linear_clr": ("C", "alpha"),
    "hist_gradient_boosting": ("learning_rate", "max_leaf_nodes", "min_samples_leaf", "l2_regularization"),
}


@dataclass(frozen=True)
class BaselineSettings:
    """The config's ``evaluate.baselines`` section (defaults filled)."""

    models: tuple[str, ...]
    seed: int
    n_jobs: int
    train_splits: tuple[str, ...]
    inner_folds: int
    options: Mapping[str, Mapping]  # per baseline its section (fixed and searched settings)

    @classmethod
    def from_dict(cls, section: Mapping | None, seed: int = 42) -> BaselineSettings:
        """Settings from the config's section, validated and completed with the schema's defaults;
        its ``seed: null`` means the config's `seed`."""
        section = validate_section(section)
        own_seed = section["seed"]
        return cls(
            models=tuple(section["models"]),
            seed=int(seed if own_seed is None else own_seed),
            n_jobs=int(section["n_jobs"]),
            train_splits=tuple(section["train_splits"]),
            inner_folds=int(section["inner_folds"]),
            options={name: dict(section[name]) for name in BASELINES},
        )

    def with_threads(self, n_jobs: int) -> BaselineSettings:
        return replace(self, n_jobs=max(1, int(n_jobs)))


def validate_section(section: Mapping | None) -> dict:
    """The `evaluate.baselines` section validated against the config schema, defaults filled in
    (aam.errors.InputError, one line, for a bad value)."""
    from aam.config import load_schema, validate

    schema = load_schema()
    definition = {**schema["properties"]["evaluate"]["properties"]["baselines"],
                  "definitions": schema.get("definitions", {})}
    return validate(dict(section or {}), definition, where="evaluate.baselines")


def grid(name: str, task: str, options: Mapping) -> list[dict]:
    """The candidates of one baseline for one task: every combination of its searched settings.

    ``linear_clr`` searches ``C`` (logistic regression, inverse strength) for classification and
    ``alpha`` (ridge strength) for regression.
    """
    keys = [k for k in SEARCHED[name] if not (name == "linear_clr" and k != ("C" if task == "classification"
                                                                                else "alpha"))]
    values = [list(options[k]) if isinstance(options[k], list | tuple) else [options[k]] for k in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


# ------------------------------------------------------------------------------------------ features
def relative_abundance(counts: np.ndarray | sp.spmatrix) -> np.ndarray:
    """Samples x features counts to proportions per sample (rows sum to 1; all-zero rows stay 0)."""
    if sp.issparse(counts):
        counts = counts.toarray()
    counts = np.asarray(counts, dtype=np.float64)
    if (counts < 0).any():
        raise ValueError("counts must be non-negative")
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def clr(counts: np.ndarray, pseudocount: float) -> np.ndarray:
    """Centred log-ratio of counts plus a pseudocount: log(x + p) minus the row's mean log."""
    if pseudocount <= 0:
        raise ValueError("the CLR pseudocount must be positive")
    logs = np.log(np.asarray(counts, dtype=np.float64) + pseudocount)
    return logs - logs.mean(axis=1, keepdims=True)


def prevalent_features(counts: np.ndarray, min_prevalence: float) -> np.ndarray:
    """Indices of the features present (count > 0) in at least `min_prevalence` of the rows; never
    none (the most prevalent feature is kept when the threshold removes all)."""
    prevalence = (np.asarray(counts) > 0).mean(axis=0)
    keep = np.flatnonzero(prevalence >= min_prevalence)
    return keep if keep.size else np.array([int(prevalence.argmax())])


# ------------------------------------------------------------------------------------------ models
class FittedBaseline:
    """One fitted baseline: its feature transform (learned on its own training rows) and estimator."""

    def __init__(self, name: str, task: str, params: Mapping, options: Mapping, classes: Sequence[str] | None,
                 seed: int, n_jobs: int, search: bool = False):
        self.name, self.task, self.params = name, task, dict(params)
        self.options, self.classes, self.seed, self.n_jobs = options, classes, seed, n_jobs
        self.search = search
        self.keep: np.ndarray | None = None
        self.estimator = None

    def _features(self, counts: np.ndarray) -> np.ndarray:
        if self.name == "random_forest":
            return relative_abundance(counts)
        kept = counts[:, self.keep]
        if self.name == "linear_clr":
            return clr(kept, float(self.options["pseudocount"]))
        return relative_abundance(kept)

    def fit(self, counts: np.ndarray, y: np.ndarray) -> FittedBaseline:
        if self.name != "random_forest":
            self.keep = prevalent_features(counts, float(self.options["min_prevalence"]))
        x = self._features(counts)
        self.estimator = baseline_estimator(self.name, self.task, self.params, self.options, self.seed,
                                            self.n_jobs, self.search)
        self.estimator.fit(x, y)
        return self

    @property
    def n_features(self) -> int:
        return int(self.keep.size) if self.keep is not None else int(self.estimator.n_features_in_)

    def predict(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions and, for classification, probabilities in `classes` order (0 for a class
        absent from training); the predicted class is the argmax over `classes`, ties to the first."""
        return estimator_predictions(self.estimator, self._features(counts), self.task, self.classes)


def estimator_predictions(estimator, x: np.ndarray, task: str,
                          classes: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """A fitted scikit-learn estimator's predictions of ``x`` and, for classification, its
    probabilities in ``classes`` order (0 for a class absent from training); the predicted class is
    the argmax over ``classes``, ties to the first."""
    if task == "regression":
        return estimator.predict(x).astype(np.float64), None
    proba = np.zeros((x.shape[0], len(classes)))
    raw = estimator.predict_proba(x)
    for j, c in enumerate(estimator.classes_):
        proba[:, list(classes).index(str(c))] = raw[:, j]
    return np.asarray(classes, dtype=object)[proba.argmax(axis=1)], proba


def baseline_estimator(name: str, task: str, params: Mapping, options: Mapping, seed: int, n_jobs: int,
                       search: bool):
    """The unfitted scikit-learn estimator of baseline `name` with the candidate `params` (a
    forest in the inner search gets `search_estimators` trees); the features are the caller's."""
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge

    classify = task == "classification"
    if name == "random_forest":
        trees = int(options["search_estimators"] if search else options["n_estimators"])
        cls = RandomForestClassifier if classify else RandomForestRegressor
        return cls(n_estimators=trees, n_jobs=n_jobs, random_state=seed, **params)
    if name == "linear_clr":
        if classify:
            return LogisticRegression(C=float(params["C"]), max_iter=5000)
        return Ridge(alpha=float(params["alpha"]))
    if name == "hist_gradient_boosting":
        cls = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        return cls(max_iter=int(options["max_iter"]), early_stopping=False, random_state=seed, **params)
    raise ValueError(f"unknown baseline {name!r}")


# ------------------------------------------------------------------------------------------ search
@dataclass
class BaselineResult:
    name: str
    predictions: np.ndarray  # (n_test,) class names or floats
    proba: np.ndarray | None  # (n_test, n_classes) in `classes` order, classification only
    params: dict  # the chosen candidate
    search: list[dict]  # per candidate: params, inner_mean, inner_scores
    n_train: int
    n_features: int
    seconds: float


def inner_folds(groups: Sequence[object], labels: Sequence[object] | None, folds: int,
                seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, validation rows) of the inner cross-validation over the training samples: by
    whole groups (None: a sample is its own group), stratified by `labels` when given, seeded. Fewer
    folds when there are fewer groups; none with fewer than 2 groups (no search)."""
    from aam.data.split import _missing, cv_folds

    n = len(groups)
    keys = {f"\0{i}" if _missing(g) else str(g) for i, g in enumerate(groups)}
    k = min(int(folds), len(keys))
    if k < 2:
        return []
    frame = pd.DataFrame({"sample": [str(i) for i in range(n)], "group": list(groups)})
    if labels is not None:
        frame["label"] = [str(v) for v in labels]
    assignment = cv_folds(frame, "group", "label" if labels is not None else None, k, 1, seed, 0.0)
    out = []
    for fold in range(k):
        part = assignment[assignment["fold"] == fold].set_index("sample").reindex(frame["sample"])
        test = part["split"].to_numpy() == "test"
        out.append((np.flatnonzero(~test), np.flatnonzero(test)))
    return out


def inner_score(task: str, y_true, predictions, proba, classes) -> float | None:
    """The task's primary metric of one inner validation fold (None where undefined)."""
    metrics = compute_metrics(task, y_true, predictions, proba, classes)
    return metrics[PRIMARY_METRIC[task]]


def search_grid(candidates: Sequence[dict], splits: Sequence[tuple[np.ndarray, np.ndarray]],
                score: Callable[[dict, np.ndarray, np.ndarray], float | None]) -> tuple[dict, list[dict]]:
    """The candidate with the best mean inner score (ties: the first in grid order; the first
    candidate when none is scored or there are no splits) and, per candidate, its params, mean and
    inner scores. ``score(params, fit_rows, val_rows)`` fits on the rows ``fit_rows`` of the
    training samples and scores the rows ``val_rows`` (None where the metric is undefined)."""
    search = []
    for params in candidates if splits else []:
        # A forest on n threads sums its trees' probabilities in another order: scores then differ
        # in the last bit (1.0 vs 0.9999999999999999), and so could a tie's winner. Rounded to
        # 1e-10, the search and its record are the same for any number of threads.
        scores = [None if (s := score(params, fit_rows, val_rows)) is None else round(s, 10)
                  for fit_rows, val_rows in splits]
        defined = [s for s in scores if s is not None and math.isfinite(s)]
        search.append({"params": params, "inner_mean": float(np.mean(defined)) if defined else None,
                       "inner_scores": scores})
    chosen = candidates[0]
    scored = [s for s in search if s["inner_mean"] is not None]
    if scored:
        chosen = max(scored, key=lambda s: s["inner_mean"])["params"]  # max keeps the first of ties
    return chosen, search


@dataclass
class NestedFit:
    """A baseline tuned by inner cross-validation and refit on all its training samples."""

    model: FittedBaseline
    params: dict  # the chosen candidate
    search: list[dict]  # per candidate: params, inner_mean, inner_scores
    n_train: int
    classes: list[str] | None


def nested_fit(
    name: str,
    counts_train: np.ndarray,
    y_train: np.ndarray,
    groups_train: Sequence[object],
    task: str,
    settings: BaselineSettings,
    classes: Sequence[str] | None = None,
) -> NestedFit:
    """Choose a baseline's hyperparameters by inner CV on the training samples and refit it on all
    of them. `counts_train` is a samples x features count matrix (the rarefied table's rows),
    `groups_train` the group of each sample. The fine-tuned AAM model's linear member
    (aam.training.linear_member) is this very fit of ``linear_clr``, on each sample's counts scaled
    to the depth instead of one draw."""
    counts_train = _dense(counts_train)
    if len(y_train) != counts_train.shape[0] or len(groups_train) != counts_train.shape[0]:
        raise ValueError(f"{len(y_train)} labels and {len(groups_train)} groups for {counts_train.shape[0]} "
                         "training samples")
    if task == "classification":
        y_train = np.asarray([str(v) for v in y_train], dtype=object)
        classes = sorted(set(y_train)) if classes is None else [str(c) for c in classes]
        unknown = sorted(set(y_train) - set(classes))
        if unknown:
            raise ValueError(f"training labels {unknown} are not among the classes {classes}")
    elif task == "regression":
        y_train = np.asarray(y_train, dtype=np.float64)
        classes = None
    else:
        raise ValueError(f"unknown task {task!r}")
    options = settings.options[name]
    candidates = grid(name, task, options)
    splits = (inner_folds(groups_train, y_train if task == "classification" else None, settings.inner_folds,
                          settings.seed) if len(candidates) > 1 else [])

    def score(params: dict, fit_rows: np.ndarray, val_rows: np.ndarray) -> float | None:
        model = FittedBaseline(name, task, params, options, classes, settings.seed, settings.n_jobs, True)
        model.fit(counts_train[fit_rows], y_train[fit_rows])
        pred, proba = model.predict(counts_train[val_rows])
        return inner_score(task, y_train[val_rows], pred, proba, classes)

    chosen, search = search_grid(candidates, splits, score)
    final = FittedBaseline(name, task, chosen, options, classes, settings.seed, settings.n_jobs)
    final.fit(counts_train, y_train)
    return NestedFit(final, dict(chosen), search, counts_train.shape[0], classes)


def nested_fit_predict(
    name: str,
    counts_train: np.ndarray,
    y_train: np.ndarray,
    groups_train: Sequence[object],
    counts_test: np.ndarray,
    task: str,
    settings: BaselineSettings,
    classes: Sequence[str] | None = None,
) -> BaselineResult:
    """:func:`nested_fit` on the training samples, then predict the test samples. Only
    `counts_test` is seen of the test samples, and only after the choice is made, by the refit
    model's predict."""
    start = time.perf_counter()
    counts_test = _dense(counts_test)
    if np.shape(counts_train)[1] != counts_test.shape[1]:
        raise ValueError(f"train has {np.shape(counts_train)[1]} features, test {counts_test.shape[1]}")
    fit = nested_fit(name, counts_train, y_train, groups_train, task, settings, classes)
    predictions, proba = fit.model.predict(counts_test)
    return BaselineResult(name, predictions, proba, fit.params, fit.search, fit.n_train,
                          fit.model.n_features, time.perf_counter() - start)


def _dense(counts) -> np.ndarray:
    if sp.issparse(counts):
        counts = counts.toarray()
    counts = np.asarray(counts, dtype=np.float64)
    if (counts < 0).any():
        raise ValueError("counts must be non-negative")
    return counts


def plain_forest(counts_train, y_train, counts_test, task: str, n_estimators: int = 500, seed: int = 42,
                 n_jobs: int = 1, classes: Sequence[str] | None = None) -> BaselineResult:
    """q2-sample-classifier's forest as it is, no search (max_features sqrt, leaves of 1 sample): the
    reference the benchmark scripts print beside published figures."""
    forest = {"n_estimators": n_estimators, "max_features": ["sqrt"], "min_samples_leaf": [1]}
    settings = BaselineSettings.from_dict({"random_forest": forest}, seed=seed).with_threads(n_jobs)
    groups = [None] * len(y_train)
    return nested_fit_predict("random_forest", counts_train, y_train, groups, counts_test, task, settings,
                              classes)
