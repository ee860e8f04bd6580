"""The baselines: features (relative abundance, CLR, prevalence), the plain scikit-learn recipes they
reproduce, the grouped inner folds, and the nested selection that never reads the test samples."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge

from aam.evaluate import baselines as bl
from aam.evaluate.baselines import (
    BaselineSettings,
    clr,
    grid,
    inner_folds,
    nested_fit_predict,
    prevalent_features,
    relative_abundance,
)
from aam.evaluate.metrics import auroc, regression_metrics


def make_counts(n=90, f=25, seed=0):
    """Counts where feature 0's share marks class 'Crohns' and sets a regression target; subjects of 3."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(20, size=(n, f)).astype(float)
    y_class = np.where(rng.random(n) < 0.5, "Control", "Crohns")
    counts[y_class == "Crohns", 0] += 200
    target = counts[:, 0] / counts.sum(axis=1) * 10 + rng.normal(scale=0.1, size=n)
    groups = [f"subject{i // 3}" for i in range(n)]
    return counts, y_class, target, groups


def settings(**section):
    return BaselineSettings.from_dict(section, seed=11)


def test_relative_abundance_rows_sum_to_one_and_zero_rows_stay_zero():
    counts = np.array([[1, 3, 0], [0, 0, 0], [5, 5, 10]])
    rel = relative_abundance(counts)
    np.testing.assert_allclose(rel, [[0.25, 0.75, 0], [0, 0, 0], [0.25, 0.25, 0.5]])
    np.testing.assert_allclose(relative_abundance(sp.csr_matrix(counts)), rel)
    with pytest.raises(ValueError):
        relative_abundance(np.array([[-1, 2]]))


def test_clr_by_hand():
    # log(1.5), log(3.5), log(0.5), minus their mean
    logs = np.log([1.5, 3.5, 0.5])
    np.testing.assert_allclose(clr(np.array([[1, 3, 0]]), 0.5), [logs - logs.mean()])
    assert clr(np.array([[4, 9, 1]]), 1.0).sum() == pytest.approx(0)  # rows are centred
    with pytest.raises(ValueError):
        clr(np.ones((1, 2)), 0)


def test_prevalence_keeps_features_present_in_enough_rows_and_never_none():
    counts = np.array([[1, 0, 0], [2, 0, 1], [3, 0, 0], [4, 1, 0]])  # prevalence 1, 0.25, 0.25
    assert prevalent_features(counts, 0.5).tolist() == [0]
    assert prevalent_features(counts, 0.25).tolist() == [0, 1, 2]
    assert prevalent_features(np.array([[0, 1], [0, 0]]), 0.9).tolist() == [1]


def test_settings_defaults_come_from_the_schema_and_bad_values_are_one_error():
    s = settings()
    assert s.models == ("random_forest", "linear_clr", "hist_gradient_boosting")
    assert (s.seed, s.train_splits, s.inner_folds) == (11, ("train", "val"), 3)
    assert s.options["random_forest"]["n_estimators"] == 500
    assert BaselineSettings.from_dict({"seed": 3}).seed == 3
    from aam.errors import InputError

    with pytest.raises(InputError, match="evaluate.baselines"):
        BaselineSettings.from_dict({"models": ["svm"]})
    with pytest.raises(InputError, match="evaluate.baselines"):
        BaselineSettings.from_dict({"linear_clr": {"C": [0]}})


def test_grids_are_the_products_of_the_listed_values():
    opts = settings(random_forest={"max_features": ["sqrt", 0.2], "min_samples_leaf": [1, 5]}).options
    assert grid("random_forest", "classification", opts["random_forest"]) == [
        {"max_features": "sqrt", "min_samples_leaf": 1},
        {"max_features": "sqrt", "min_samples_leaf": 5},
        {"max_features": 0.2, "min_samples_leaf": 1},
        {"max_features": 0.2, "min_samples_leaf": 5},
    ]
    linear = settings(linear_clr={"C": [0.1, 1.0], "alpha": [3.0]}).options["linear_clr"]
    assert grid("linear_clr", "classification", linear) == [{"C": 0.1}, {"C": 1.0}]
    assert grid("linear_clr", "regression", linear) == [{"alpha": 3.0}]


def test_inner_folds_keep_groups_together_and_validate_each_sample_once():
    _, y, _, groups = make_counts(n=60)
    folds = inner_folds(groups, y, 3, seed=5)
    assert len(folds) == 3
    validated = np.concatenate([val for _, val in folds])
    assert sorted(validated.tolist()) == list(range(60))
    for fit, val in folds:
        assert not {groups[i] for i in fit} & {groups[i] for i in val}
        assert set(y[val]) == {"Control", "Crohns"}  # stratified
    assert inner_folds(groups, y, 3, seed=5)[0][1].tolist() == folds[0][1].tolist()  # seeded
    assert len(inner_folds(["a", "a", "b", "b"], None, 3, seed=0)) == 2  # fewer groups, fewer folds
    assert inner_folds(["a"] * 4, None, 3, seed=0) == []  # one group: no search


def test_one_candidate_forest_is_plain_sklearn():
    counts, y, _, groups = make_counts()
    s = settings(random_forest={"n_estimators": 25, "max_features": ["sqrt"], "min_samples_leaf": [1]})
    res = nested_fit_predict(
        "random_forest", counts[:60], y[:60], groups[:60], counts[60:], "classification", s
    )
    rel = relative_abundance(counts)
    ref = RandomForestClassifier(
        n_estimators=25, random_state=11, max_features="sqrt", min_samples_leaf=1
    ).fit(rel[:60], y[:60])
    np.testing.assert_allclose(res.proba, ref.predict_proba(rel[60:]))
    assert res.search == [] and res.params == {"max_features": "sqrt", "min_samples_leaf": 1}
    assert (res.n_train, res.n_features) == (60, 25)
    assert auroc(y[60:], res.proba, ["Control", "Crohns"]) > 0.95  # the planted signal is found


def test_linear_and_boosting_match_sklearn_on_their_features():
    counts, y, target, groups = make_counts(seed=2)
    counts[:, 5] = 0
    counts[3, 5] = 7  # a feature in 1 of 60 training samples: below 5 % prevalence
    s = settings(
        linear_clr={"C": [0.3], "alpha": [2.0], "min_prevalence": 0.05},
        hist_gradient_boosting={"learning_rate": [0.1], "max_iter": 20, "min_prevalence": 0.05},
    )
    keep = [j for j in range(25) if j != 5]
    x = clr(counts[:, keep], 0.5)
    res = nested_fit_predict("linear_clr", counts[:60], y[:60], groups[:60], counts[60:], "classification", s)
    ref = LogisticRegression(C=0.3, max_iter=5000).fit(x[:60], y[:60])
    np.testing.assert_allclose(res.proba, ref.predict_proba(x[60:]), rtol=1e-6)
    assert res.n_features == 24
    ridge = nested_fit_predict(
        "linear_clr", counts[:60], target[:60], groups[:60], counts[60:], "regression", s
    )
    np.testing.assert_allclose(ridge.predictions, Ridge(alpha=2.0).fit(x[:60], target[:60]).predict(x[60:]))
    hgb = nested_fit_predict(
        "hist_gradient_boosting", counts[:60], y[:60], groups[:60], counts[60:], "classification", s
    )
    rel = relative_abundance(counts[:, keep])
    ref = HistGradientBoostingClassifier(
        max_iter=20,
        learning_rate=0.1,
        max_leaf_nodes=15,
        min_samples_leaf=5,
        l2_regularization=0.0,
        early_stopping=False,
        random_state=11,
    )
    np.testing.assert_allclose(hgb.proba, ref.fit(rel[:60], y[:60]).predict_proba(rel[60:]))


def test_search_picks_the_best_inner_score_by_hand(monkeypatch):
    """The chosen candidate is the one with the best mean inner-fold score; ties go to the first."""
    counts, y, _, groups = make_counts(n=60, seed=4)
    s = settings(linear_clr={"C": [0.001, 0.01, 1.0]})
    res = nested_fit_predict("linear_clr", counts[:45], y[:45], groups[:45], counts[45:], "classification", s)
    means = [c["inner_mean"] for c in res.search]
    assert [c["params"]["C"] for c in res.search] == [0.001, 0.01, 1.0]
    assert res.params == res.search[int(np.argmax(means))]["params"]
    # every inner score by hand: fit on the inner training rows, AUROC on the inner validation rows
    folds = inner_folds(groups[:45], y[:45], 3, 11)
    x = clr(counts[:45], 0.5)
    for candidate in res.search:
        expected = [
            auroc(
                y[:45][val],
                LogisticRegression(C=candidate["params"]["C"], max_iter=5000)
                .fit(x[fit][:, prevalent_features(counts[:45][fit], 0.01)], y[:45][fit])
                .predict_proba(x[val][:, prevalent_features(counts[:45][fit], 0.01)]),
                ["Control", "Crohns"],
            )
            for fit, val in folds
        ]
        # the CLR is taken over the kept features; with every feature present they are all of them
        np.testing.assert_allclose(candidate["inner_scores"], expected, rtol=1e-6)
    monkeypatch.setattr(bl, "inner_score", lambda *a: 0.5)  # all tied: the first candidate
    tied = nested_fit_predict(
        "linear_clr", counts[:45], y[:45], groups[:45], counts[45:], "classification", s
    )
    assert tied.params == {"C": 0.001}


def test_regression_forest_learns_planted_signal_and_classes_fix_the_order():
    counts, y, target, groups = make_counts(seed=5)
    s = settings(random_forest={"n_estimators": 30, "search_estimators": 10})
    res = nested_fit_predict(
        "random_forest", counts[:60], target[:60], groups[:60], counts[60:], "regression", s
    )
    assert res.proba is None and regression_metrics(target[60:], res.predictions)["r2"] > 0.7
    classes = ["Crohns", "UC", "Control"]  # UC never seen in training: probability 0
    res = nested_fit_predict(
        "random_forest", counts[:60], y[:60], groups[:60], counts[60:], "classification", s, classes
    )
    assert res.proba.shape == (30, 3)
    np.testing.assert_allclose(res.proba[:, 1], 0)
    np.testing.assert_array_equal(res.predictions, np.array(classes)[res.proba.argmax(1)])
    with pytest.raises(ValueError, match="not among"):
        nested_fit_predict(
            "random_forest", counts[:60], y[:60], groups[:60], counts[60:], "classification", s, ["Control"]
        )


def test_results_do_not_depend_on_threads():
    counts, y, _, groups = make_counts(seed=3)
    s = settings(random_forest={"n_estimators": 20, "search_estimators": 10})
    a = nested_fit_predict(
        "random_forest", counts[:60], y[:60], groups[:60], counts[60:], "classification", s
    )
    b = nested_fit_predict(
        "random_forest", counts[:60], y[:60], groups[:60], counts[60:], "classification", s.with_threads(2)
    )
    np.testing.assert_array_equal(a.proba, b.proba)
    assert a.search == b.search


def test_rejects_bad_shapes_and_task():
    x, s = np.ones((4, 3)), settings()
    with pytest.raises(ValueError):
        nested_fit_predict("linear_clr", x, [1, 2, 3, 4], list("abcd"), np.ones((2, 2)), "regression", s)
    with pytest.raises(ValueError):
        nested_fit_predict("linear_clr", x, [1, 2], list("abcd"), x, "regression", s)
    with pytest.raises(ValueError):
        nested_fit_predict("linear_clr", x, [1, 2, 3, 4], list("abcd"), x, "ranking", s)
