"""The random-forest baseline, after q2-sample-classifier's default recipe.

q2-sample-classifier (`classify-samples` / `regress-samples`) fits a scikit-learn random forest of
500 trees on the feature table converted to relative abundances (each sample's counts divided by its
total), with no feature selection or tuning by default. We do the same on the very rarefied table
our evaluation uses, and predict the very test samples our model is scored on.

Which samples train the forest: q2-sample-classifier trains on everything that is not test. We do
the same by default (`train_splits = ("train", "val")`): our model sees the validation split only
for early stopping and model selection, so giving the forest those labelled samples as well keeps
the comparison fair to the baseline rather than to us. The forest therefore has no honest
validation score; only its test score is reported.

Determinism: the forest is seeded (`random_state`), so the same table, split and seed give the
same predictions, whatever `n_jobs` is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor


@dataclass(frozen=True)
class ForestSettings:
    n_estimators: int = 500
    n_jobs: int = 1
    seed: int = 42
    train_splits: tuple[str, ...] = ("train", "val")

    @classmethod
    def from_dict(cls, d: dict | None, seed: int = 42) -> ForestSettings:
        """Settings from the config's `evaluate.random_forest` section; its `seed: null` means `seed`."""
        d = dict(d or {})
        own_seed = d.get("seed")
        return cls(
            n_estimators=int(d.get("n_estimators", cls.n_estimators)),
            n_jobs=int(d.get("n_jobs", cls.n_jobs)),
            seed=int(seed if own_seed is None else own_seed),
            train_splits=tuple(d.get("train_splits", cls.train_splits)),
        )


@dataclass
class ForestResult:
    predictions: np.ndarray  # (n_test,) class names or floats
    proba: np.ndarray | None  # (n_test, n_classes) in `classes` order, classification only
    classes: list[str] | None
    n_train: int
    n_features: int


def relative_abundance(counts: np.ndarray | sp.spmatrix) -> np.ndarray:
    """Samples x features counts to proportions per sample (rows sum to 1; all-zero rows stay 0)."""
    if sp.issparse(counts):
        counts = counts.toarray()
    counts = np.asarray(counts, dtype=np.float64)
    if (counts < 0).any():
        raise ValueError("counts must be non-negative")
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def fit_predict_forest(
    x_train: np.ndarray,
    y_train: Sequence,
    x_test: np.ndarray,
    task: str,
    settings: ForestSettings,
    classes: Sequence[str] | None = None,
) -> ForestResult:
    """Fit a forest on (x_train, y_train), predict x_test.

    Features are used as given (pass relative abundances). For classification `classes` fixes the
    column order of the returned probabilities (a class absent from training gets probability 0).
    """
    x_train = np.asarray(x_train, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
    if x_train.shape[1] != x_test.shape[1]:
        raise ValueError(f"train has {x_train.shape[1]} features, test {x_test.shape[1]}")
    if len(y_train) != x_train.shape[0]:
        raise ValueError(f"{len(y_train)} labels for {x_train.shape[0]} training samples")
    common = dict(n_estimators=settings.n_estimators, n_jobs=settings.n_jobs, random_state=settings.seed)
    if task == "regression":
        model = RandomForestRegressor(**common)
        model.fit(x_train, np.asarray(y_train, dtype=np.float64))
        return ForestResult(model.predict(x_test), None, None, x_train.shape[0], x_train.shape[1])
    if task != "classification":
        raise ValueError(f"unknown task {task!r}")
    y_train = np.asarray([str(v) for v in y_train], dtype=object)
    classes = sorted(set(y_train)) if classes is None else [str(c) for c in classes]
    unknown = sorted(set(y_train) - set(classes))
    if unknown:
        raise ValueError(f"training labels {unknown} are not among the classes {classes}")
    model = RandomForestClassifier(**common)
    model.fit(x_train, y_train)
    proba = np.zeros((x_test.shape[0], len(classes)))
    raw = model.predict_proba(x_test)
    for j, c in enumerate(model.classes_):
        proba[:, classes.index(str(c))] = raw[:, j]
    # argmax over `classes`, ties to the first class: the same rule our model's predictions follow
    predictions = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    return ForestResult(predictions, proba, classes, x_train.shape[0], x_train.shape[1])
