"""Random-forest baseline: relative abundances, the q2-sample-classifier recipe, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.ensemble import RandomForestClassifier

from aam.evaluate.baselines import ForestSettings, fit_predict_forest, relative_abundance
from aam.evaluate.metrics import auroc, regression_metrics


def make_counts(n=80, f=25, seed=0):
    """Counts where feature 0's share marks class 'Crohns' and sets a regression target."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(20, size=(n, f)).astype(float)
    y_class = np.where(rng.random(n) < 0.5, "Control", "Crohns")
    counts[y_class == "Crohns", 0] += 200
    target = counts[:, 0] / counts.sum(axis=1) * 10 + rng.normal(scale=0.1, size=n)
    return counts, y_class, target


def test_relative_abundance_rows_sum_to_one_and_zero_rows_stay_zero():
    counts = np.array([[1, 3, 0], [0, 0, 0], [5, 5, 10]])
    rel = relative_abundance(counts)
    np.testing.assert_allclose(rel, [[0.25, 0.75, 0], [0, 0, 0], [0.25, 0.25, 0.5]])
    np.testing.assert_allclose(relative_abundance(sp.csr_matrix(counts)), rel)
    with pytest.raises(ValueError):
        relative_abundance(np.array([[-1, 2]]))


def test_settings_defaults_and_seed_fallback():
    s = ForestSettings.from_dict({"n_estimators": 500, "seed": None}, seed=7)
    assert (s.n_estimators, s.seed, s.train_splits) == (500, 7, ("train", "val"))
    assert ForestSettings.from_dict({"seed": 3}, seed=7).seed == 3
    assert ForestSettings.from_dict(None).n_estimators == 500


def test_classifier_matches_plain_sklearn_recipe():
    counts, y, _ = make_counts()
    rel = relative_abundance(counts)
    settings = ForestSettings(n_estimators=25, seed=11)
    res = fit_predict_forest(rel[:60], y[:60], rel[60:], "classification", settings)
    ref = RandomForestClassifier(n_estimators=25, random_state=11).fit(rel[:60], y[:60])
    np.testing.assert_allclose(res.proba, ref.predict_proba(rel[60:]))
    np.testing.assert_array_equal(res.predictions, ref.predict(rel[60:]))
    assert res.classes == ["Control", "Crohns"]
    assert (res.n_train, res.n_features) == (60, 25)
    assert auroc(y[60:], res.proba, res.classes) > 0.95  # the planted signal is found


def test_classifier_is_deterministic_across_n_jobs():
    counts, y, _ = make_counts(seed=3)
    rel = relative_abundance(counts)
    a = fit_predict_forest(rel[:60], y[:60], rel[60:], "classification", ForestSettings(20, 1, 5))
    b = fit_predict_forest(rel[:60], y[:60], rel[60:], "classification", ForestSettings(20, 2, 5))
    np.testing.assert_array_equal(a.proba, b.proba)


def test_classifier_orders_probabilities_by_given_classes_and_handles_absent_class():
    counts, y, _ = make_counts(seed=4)
    rel = relative_abundance(counts)
    classes = ["Crohns", "UC", "Control"]  # UC never seen in training
    res = fit_predict_forest(rel[:60], y[:60], rel[60:], "classification", ForestSettings(15, 1, 0), classes)
    assert res.proba.shape == (20, 3)
    np.testing.assert_allclose(res.proba[:, 1], 0)
    np.testing.assert_allclose(res.proba.sum(axis=1), 1)
    np.testing.assert_array_equal(res.predictions, np.array(classes)[res.proba.argmax(1)])
    with pytest.raises(ValueError, match="not among"):
        fit_predict_forest(rel[:60], y[:60], rel[60:], "classification", ForestSettings(5), ["Control"])


def test_regressor_learns_planted_signal():
    counts, _, target = make_counts(seed=5)
    rel = relative_abundance(counts)
    res = fit_predict_forest(rel[:60], target[:60], rel[60:], "regression", ForestSettings(30, 1, 1))
    assert res.proba is None and res.classes is None
    assert regression_metrics(target[60:], res.predictions)["r2"] > 0.8


def test_rejects_bad_shapes_and_task():
    x = np.ones((4, 3))
    with pytest.raises(ValueError):
        fit_predict_forest(x, [1, 2, 3, 4], np.ones((2, 2)), "regression", ForestSettings(5))
    with pytest.raises(ValueError):
        fit_predict_forest(x, [1, 2], x, "regression", ForestSettings(5))
    with pytest.raises(ValueError):
        fit_predict_forest(x, [1, 2, 3, 4], x, "ranking", ForestSettings(5))
