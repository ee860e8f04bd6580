"""Metrics against hand-worked examples and independent formulas (brute-force pair counting)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from aam.evaluate.metrics import (
    auroc,
    classification_metrics,
    compute_metrics,
    macro_roc_points,
    regression_metrics,
)


def brute_auroc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney: P(score of a positive > score of a negative), ties count one half."""
    pos, neg = scores[positive], scores[~positive]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_regression_hand_worked():
    # errors 0.5, 0, -0.5, 1: MAE 0.5, MSE 0.375; SS_res 1.5, SS_tot 5 -> R^2 0.7
    # Pearson: cov 5.5 / sqrt(5 * 7.25)
    m = regression_metrics([1, 2, 3, 4], [1.5, 2, 2.5, 5])
    assert m["n"] == 4
    assert m["mae"] == pytest.approx(0.5)
    assert m["rmse"] == pytest.approx(math.sqrt(0.375))
    assert m["r2"] == pytest.approx(0.7)
    assert m["pearson_r"] == pytest.approx(5.5 / math.sqrt(5 * 7.25))


def test_regression_matches_numpy_formulas():
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    yhat = y + rng.normal(scale=0.5, size=50)
    m = regression_metrics(y, yhat)
    assert m["mae"] == pytest.approx(np.abs(y - yhat).mean())
    assert m["rmse"] == pytest.approx(np.sqrt(((y - yhat) ** 2).mean()))
    assert m["r2"] == pytest.approx(1 - ((y - yhat) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    assert m["pearson_r"] == pytest.approx(np.corrcoef(y, yhat)[0, 1])


def test_regression_constant_prediction_has_no_correlation():
    m = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert m["pearson_r"] is None
    assert m["r2"] == pytest.approx(0.0)


def test_regression_rejects_mismatch_and_nan():
    with pytest.raises(ValueError):
        regression_metrics([1, 2], [1])
    with pytest.raises(ValueError):
        regression_metrics([1, float("nan")], [1, 2])


def test_binary_hand_worked():
    y = ["a", "a", "a", "b", "b"]
    pred = ["a", "b", "a", "b", "a"]
    p_b = np.array([0.1, 0.6, 0.3, 0.8, 0.4])
    m = classification_metrics(y, pred, np.column_stack([1 - p_b, p_b]), ["a", "b"])
    assert m["accuracy"] == pytest.approx(0.6)
    # F1_a = 2*2 / (4 + 1 + 1) = 2/3; F1_b = 2*1 / (2 + 1 + 1) = 1/2
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    # positive b: 0.8 beats all three a's, 0.4 beats 0.1 and 0.3 -> 5/6
    assert m["auroc"] == pytest.approx(5 / 6)
    assert m["confusion_matrix"] == [[2, 1], [1, 1]]
    assert m["classes"] == ["a", "b"]


def test_binary_auroc_with_ties_matches_pair_counting():
    rng = np.random.default_rng(1)
    y = rng.choice(["Control", "Crohns"], size=40)
    p = rng.integers(0, 5, size=40) / 4  # many ties
    got = auroc(y, np.column_stack([1 - p, p]), ["Control", "Crohns"])
    assert got == pytest.approx(brute_auroc(y == "Crohns", p))


def test_multiclass_macro_ovr_auroc_matches_pair_counting():
    rng = np.random.default_rng(2)
    classes = ["x", "y", "z"]
    y = np.array(rng.choice(classes, size=60), dtype=object)
    logits = rng.normal(size=(60, 3)) + 1.5 * (y[:, None] == np.array(classes)[None, :])
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = np.mean([brute_auroc(y == c, proba[:, k]) for k, c in enumerate(classes)])
    m = classification_metrics(y, np.array(classes)[proba.argmax(1)], proba, classes)
    assert m["auroc"] == pytest.approx(expected)
    # macro-F1 from per-class counts
    pred = np.array(classes)[proba.argmax(1)]
    f1s = []
    for c in classes:
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    assert m["macro_f1"] == pytest.approx(np.mean(f1s))
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == 60
    assert np.trace(cm) / 60 == pytest.approx(m["accuracy"])


def test_multiclass_auroc_skips_absent_class():
    classes = ["x", "y", "z"]
    y = ["x", "x", "y", "y"]
    proba = np.array([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.2, 0.6, 0.2], [0.4, 0.3, 0.3]])
    expected = np.mean([brute_auroc(np.array(y) == c, proba[:, k]) for k, c in enumerate(classes[:2])])
    assert auroc(y, proba, classes) == pytest.approx(expected)


def test_single_class_auroc_is_none_and_json_safe():
    m = classification_metrics(["a", "a"], ["a", "b"], np.array([[0.9, 0.1], [0.4, 0.6]]), ["a", "b"])
    assert m["auroc"] is None
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["confusion_matrix"] == [[1, 1], [0, 0]]


def test_classification_rejects_unknown_label_and_bad_proba():
    with pytest.raises(ValueError, match="not among"):
        classification_metrics(["a", "c"], ["a", "a"], None, ["a", "b"])
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(["a", "b"], ["a", "a"], np.ones((2, 3)), ["a", "b"])


def test_macro_roc_points_perfect_separation():
    classes = ["x", "y", "z"]
    y = ["x", "y", "z", "x"]
    proba = np.eye(3)[[0, 1, 2, 0]] * 0.9 + 0.05
    fpr, tpr = macro_roc_points(y, proba, classes)
    assert np.trapezoid(tpr, fpr) == pytest.approx(1.0, abs=0.01)


def test_compute_metrics_dispatch():
    assert compute_metrics("regression", [1, 2], [1, 2])["mae"] == 0
    with pytest.raises(ValueError):
        compute_metrics("ranking", [1], [1])


def test_degenerate_predictions():
    from aam.evaluate.metrics import degenerate_predictions

    y = ["a", "b", "a", "b"]
    proba = np.array([[0.6, 0.4], [0.61, 0.39], [0.6, 0.4], [0.59, 0.41]])
    flag = degenerate_predictions("classification", y, ["a"] * 4, proba)
    assert flag.startswith("one class ('a') predicted for all 4 test samples")
    assert "sd 0.00707" in flag  # np.std([0.4, 0.39, 0.4, 0.41]) = 0.00707
    assert degenerate_predictions("classification", y, ["a", "b", "a", "a"], proba) is None
    truth = np.array([10.0, 20.0, 30.0, 40.0])  # sd 11.18: the threshold is 10 % of it, 1.118
    assert degenerate_predictions("regression", truth, [25.0, 25.1, 25.0, 25.1]) is not None  # sd 0.05
    flag = degenerate_predictions("regression", truth, [25.0, 26.0, 25.0, 26.0])  # sd 0.5: 4.47 %
    assert flag.startswith("predictions barely vary: sd 0.5 is 4.47% of the true values' sd 11.2")
    assert degenerate_predictions("regression", truth, [24.0, 26.3, 24.0, 26.3]) is None  # sd 1.15 > 1.118
    assert degenerate_predictions("regression", [1.0], [1.0]) is None


# --- the registry: every table, summary and training monitor takes its metrics from it ---


def test_registry_directions_agree_with_better_and_worse_predictions():
    """For every metric, predictions closer to the truth score better in the registry's direction
    (hand-made: exact or near-exact predictions against shuffled ones)."""
    from aam.evaluate.metrics import METRICS

    y = np.array([1.0, 2.0, 4.0, 7.0, 11.0])
    good, bad = y + np.array([0.1, -0.1, 0.2, 0.0, -0.2]), y[::-1].copy()
    labels = np.array(["a", "b", "a", "b", "b", "a"])
    p_good = np.where(labels == "b", 0.9, 0.2)
    p_bad = np.where(labels == "b", 0.4, 0.6)
    for metric in METRICS.values():
        if metric.task == "regression":
            scores = [metric.compute(y, pred, None, None) for pred in (good, bad)]
        else:
            scores = [metric.compute(labels, np.where(p > 0.5, "b", "a"), np.column_stack([1 - p, p]),
                                     ["a", "b"]) for p in (p_good, p_bad)]
        assert scores[0] != scores[1], metric.name
        assert (scores[0] > scores[1]) == metric.higher_is_better, metric.name


def test_every_list_of_metrics_is_the_registry_s(tmp_path):
    from aam.evaluate.cv import _scores
    from aam.evaluate.metrics import (
        METRICS,
        PRIMARY_METRIC,
        TRAINING_MONITOR,
        metric_names,
        monitored_metrics,
        secondary_metrics,
    )
    from aam.stages.compare import comparison_table
    from aam.training.finetune import AUTO_MONITOR

    assert metric_names("regression") == ("mae", "rmse", "r2", "pearson_r")
    assert metric_names("classification") == ("accuracy", "macro_f1", "auroc")
    assert secondary_metrics("regression") == ("mae", "rmse", "pearson_r")
    assert [m.name for m in monitored_metrics("classification")] == ["accuracy", "auroc"]
    assert AUTO_MONITOR == {"regression": ("val/mae", "min"), "classification": ("val/auroc", "max")}
    assert all(METRICS[name].task == task for task, name in {**PRIMARY_METRIC, **TRAINING_MONITOR}.items())
    # metrics.json of the test set, a CV fold's scores: the registry's metrics, in its order
    m = regression_metrics([1, 2, 3, 4], [1.5, 2, 2.5, 5])
    assert list(m) == ["n", *metric_names("regression")]
    assert list(_scores(m, "regression")) == ["r2", "mae", "rmse", "pearson_r"]
    assert list(classification_metrics(["a", "b"], ["a", "b"], None, ["a", "b"]))[1:4] == list(
        metric_names("classification"))
    # the comparison table: one aam_ and one rf_ column per metric of the task
    import json

    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"task": "regression", "target": "age", "run": "r", "n_test": 4,
                                "test": {"aam": m, "random_forest": m}}))
    columns = list(comparison_table([path]).columns)
    assert [c for c in columns if c.startswith("aam_")] == [f"aam_{n}" for n in metric_names("regression")]
    assert [c for c in columns if c.startswith("random_forest_")] == [
        f"random_forest_{n}" for n in metric_names("regression")]


def test_training_monitors_the_registry_s_functions():
    """validation_metrics (logged as val/<name> in training) gives what the registry's functions
    give on the same predictions: accuracy counted by hand, AUROC by pair counting."""
    import torch

    from aam.training.aam_modules import validation_metrics

    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.2, 0.1], [0.0, 0.3]])
    codes = torch.tensor([0, 1, 1, 0, 1])
    m = validation_metrics("classification", logits, codes)
    assert set(m) == {"accuracy", "auroc"}
    assert m["accuracy"] == pytest.approx(4 / 5)  # sample 2 (logits favour class 0, truth 1) is wrong
    p1 = torch.softmax(logits, dim=-1)[:, 1].numpy()
    assert m["auroc"] == pytest.approx(brute_auroc(codes.numpy() == 1, p1))
    # one class only: AUROC undefined, left out
    assert set(validation_metrics("classification", logits[:2], torch.tensor([1, 1]))) == {"accuracy"}
    # three classes, one absent from validation: macro AUROC over the two present
    three = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.5, 0.0], [0.5, 0.0, 0.0]])
    m3 = validation_metrics("classification", three, torch.tensor([0, 1, 1, 0]))
    probs = torch.softmax(three, dim=-1).numpy()
    truth = np.array([0, 1, 1, 0])
    assert m3["auroc"] == pytest.approx(np.mean([brute_auroc(truth == c, probs[:, c]) for c in (0, 1)]))
    # regression in original units: standardized outputs x sd + mean
    r = validation_metrics("regression", torch.tensor([0.0, 1.0, -1.0]), torch.tensor([0.0, 0.5, -1.0]),
                           10.0, 2.0)
    assert set(r) == {"mae", "r2"}
    assert r["mae"] == pytest.approx(1.0 / 3)  # |12 - 11| / 3
    assert r["r2"] == pytest.approx(1 - 1.0 / np.var([10.0, 11.0, 8.0]) / 3)
