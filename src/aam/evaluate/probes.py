"""Nested probes of a representation: how much of a task's signal a fixed representation carries.

Why: to diagnose why UniFrac pretraining does not transfer (docs/benchmark.md, "Pretraining:
diagnosis"), two representations are scored on the benchmark's folds with models that learn
nothing but a readout, so the score measures the representation, not a network's training:

- ``linear``: L2 logistic regression (multinomial for more than two classes) or ridge regression
  on standardized features, e.g. a frozen encoder's sample embeddings
  (:mod:`aam.evaluate.frozen_encoder`);
- ``knn``: distance-weighted k nearest neighbours on a precomputed distance matrix (the study's
  UniFrac): the task's signal as far as the distances alone place samples near each other;
- ``dissimilarity``: the ``linear`` readout of each sample's distances to (at most
  :data:`PROTOTYPES`, seeded) training samples (Pekalska & Duin's dissimilarity representation):
  the distances' signal for a linear model, as the CLR + L2 baseline is one.

Each chooses its grid value by grouped, stratified inner cross-validation on the training samples
only (:func:`aam.evaluate.baselines.inner_folds` and :func:`~aam.evaluate.baselines.search_grid`,
the baselines' own), is refit on them and predicts the test samples. For the distance probes the
fitted model sees the distances among its fitting samples and, to predict, those from the predicted
samples to the fitting samples: never a distance to a test sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from aam.evaluate.baselines import estimator_predictions, inner_folds, inner_score, search_grid

PROBES = ("linear", "knn", "dissimilarity")
PROTOTYPES = 300
# Per probe and task: the one searched setting and its values.
GRIDS = {
    ("linear", "classification"): ("C", [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0]),
    ("linear", "regression"): ("alpha", [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0]),
    ("knn", "classification"): ("k", [1, 3, 5, 10, 20, 40, 80]),
    ("knn", "regression"): ("k", [1, 3, 5, 10, 20, 40, 80]),
}
GRIDS[("dissimilarity", "classification")] = GRIDS[("linear", "classification")]
GRIDS[("dissimilarity", "regression")] = GRIDS[("linear", "regression")]


def _estimator(probe: str, task: str, params: Mapping, n_fit: int):
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if probe == "knn":
        cls = KNeighborsClassifier if task == "classification" else KNeighborsRegressor
        return cls(n_neighbors=min(int(params["k"]), n_fit), weights="distance", metric="precomputed")
    readout = (LogisticRegression(C=float(params["C"]), max_iter=5000) if task == "classification"
               else Ridge(alpha=float(params["alpha"])))
    return make_pipeline(StandardScaler(), readout)


def _views(probe: str, x: np.ndarray, fit: np.ndarray, pred: np.ndarray,
           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """What a probe fitted on the rows ``fit`` sees of them and of the rows ``pred`` it predicts."""
    if probe == "linear":
        return x[fit], x[pred]
    columns = fit
    if probe == "dissimilarity" and fit.size > PROTOTYPES:
        columns = np.sort(np.random.default_rng(seed).choice(fit, PROTOTYPES, replace=False))
    return x[np.ix_(fit, columns)], x[np.ix_(pred, columns)]


def nested_probe(probe: str, x: np.ndarray, y: np.ndarray, groups: Sequence[object], train: np.ndarray,
                 test: np.ndarray, task: str, classes: Sequence[str] | None, seed: int, folds: int = 3,
                 grid: tuple[str, Sequence] | None = None) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Predictions of the rows ``test`` (and, for classification, probabilities in ``classes``
    order) by the probe fitted on the rows ``train``, and the grid value inner CV chose.

    ``x``: features [n, d] (``linear``) or a square distance matrix [n, n] over the same rows
    (``knn``, ``dissimilarity``); ``y`` and ``groups``: every row's target and group (only the
    training rows' are read); ``grid`` defaults to :data:`GRIDS`.
    """
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")
    if probe != "linear" and x.shape[0] != x.shape[1]:
        raise ValueError(f"a {probe} probe needs a square distance matrix, got shape {x.shape}")
    train, test = np.asarray(train), np.asarray(test)
    y_train = np.asarray(y)[train]
    key, values = grid or GRIDS[(probe, task)]
    candidates = [{key: v} for v in values]
    labels = y_train if task == "classification" else None
    splits = (inner_folds([groups[i] for i in train], labels, folds, seed) if len(candidates) > 1 else [])

    def fit_predict(params: dict, fit: np.ndarray, pred: np.ndarray):
        x_fit, x_pred = _views(probe, x, fit, pred, seed)
        model = _estimator(probe, task, params, fit.size).fit(x_fit, np.asarray(y)[fit])
        return estimator_predictions(model, x_pred, task, classes)

    def score(params: dict, fit_rows: np.ndarray, val_rows: np.ndarray) -> float | None:
        pred, proba = fit_predict(params, train[fit_rows], train[val_rows])
        return inner_score(task, y_train[val_rows], pred, proba, classes)

    chosen, _ = search_grid(candidates, splits, score)
    predictions, proba = fit_predict(chosen, train, test)
    return predictions, proba, chosen
