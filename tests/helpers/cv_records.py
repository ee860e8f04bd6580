"""Cross-validation records as `aam evaluate --fold` and `aam baselines` write them: five folds, two
runs, two baselines, with per-fold scores whose paired tests tests/test_cv_summary.py works by hand."""

from __future__ import annotations


def record(fold, run, aam, degenerate=None, task="classification", samples="abc"):
    """An `aam evaluate --fold` metrics.json of one run."""
    key = "auroc" if task == "classification" else "r2"
    return {
        "dataset": "toy",
        "run": run,
        "fold": fold,
        "target": "ibd",
        "task": task,
        "n_test": 10,
        "test_samples": samples,
        "degenerate_predictions": degenerate,
        "test": {"aam": {key: aam, "accuracy": 0.5}},
    }


def baseline_record(fold, forest, linear, task="classification", samples="abc"):
    """An `aam baselines` metrics.json of one fold (two of the baselines)."""
    key = "auroc" if task == "classification" else "r2"
    return {
        "dataset": "toy", "fold": fold, "target": "ibd", "task": task, "n_test": 10, "test_samples": samples,
        "models": {"random_forest": {"test": {key: forest, "accuracy": 0.7}},
                   "linear_clr": {"test": {key: linear, "accuracy": 0.6}}},
    }


FOREST = [0.7, 0.8, 0.6, 0.9, 0.75]
LINEAR = [0.8, 0.8, 0.6, 0.8, 0.8]
# differences to the forest 0.1, 0.2, -0.05, 0.3, 0.15 (test_cv_summary.test_paired_tests_hand_worked)
PRETRAINED = [0.8, 1.0, 0.55, 1.2, 0.9]
SCRATCH = [0.5, 0.6, 0.4, None, 0.5]  # one fold with an undefined AUROC


def records():
    """Five folds of two runs (pretrained, scratch), scratch degenerate on r0f2."""
    out = []
    for k in range(5):
        fold = f"r0f{k}"
        out.append(record(fold, "pretrained", PRETRAINED[k]))
        out.append(record(fold, "scratch", SCRATCH[k], degenerate="one class" if k == 2 else None))
    return out


def baseline_records():
    """The baselines of the same five folds."""
    return [baseline_record(f"r0f{k}", FOREST[k], LINEAR[k]) for k in range(5)]
