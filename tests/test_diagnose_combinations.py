"""scripts/diagnose_combinations.py: the means of AAM and the baselines, with and without AAM, scored
from one fold's predictions.tsv, against scikit-learn on means computed here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from diagnose_combinations import fold_scores  # noqa: E402

MODELS = ("aam", "random_forest", "linear_clr")


def classification_fold(path: Path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    y = np.array(["A", "B"] * 6)
    frame = pd.DataFrame({"sample": [f"s{i}" for i in range(12)], "split": "test", "y_true": y})
    for m in MODELS:
        p_b = rng.uniform(size=12)
        frame[f"{m}_pred"] = np.where(p_b > 0.5, "B", "A")
        frame[f"{m}_prob_A"], frame[f"{m}_prob_B"] = 1 - p_b, p_b
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False)
    return frame


def test_every_mean_is_scored_as_scikit_learn_scores_it(tmp_path):
    frame = classification_fold(tmp_path / "p.tsv")
    rows = {r["model"]: r for r in fold_scores(tmp_path / "p.tsv", "scratch")}
    # 3 singles, 3 pairs, 1 triple; AAM named by its run
    assert set(rows) == {"scratch", "random_forest", "linear_clr", "scratch+random_forest",
                         "scratch+linear_clr", "random_forest+linear_clr", "scratch+random_forest+linear_clr"}
    truth = frame["y_true"] == "B"
    mean = (frame["random_forest_prob_B"] + frame["linear_clr_prob_B"]) / 2
    assert rows["random_forest+linear_clr"]["score"] == pytest.approx(roc_auc_score(truth, mean))
    three = sum(frame[f"{m}_prob_B"] for m in MODELS) / 3
    assert rows["scratch+random_forest+linear_clr"]["score"] == pytest.approx(roc_auc_score(truth, three))
    assert rows["scratch"]["score"] == pytest.approx(roc_auc_score(truth, frame["aam_prob_B"]))


def test_a_regression_fold_gives_r2_and_mae(tmp_path):
    y = np.array([60.0, 70.0, 80.0, 65.0])
    frame = pd.DataFrame({"sample": list("abcd"), "split": "test", "y_true": y,
                          "aam_pred": [62.0, 71.0, 75.0, 70.0],
                          "random_forest_pred": [66.0, 68.0, 70.0, 67.0],
                          "linear_clr_pred": [58.0, 74.0, 83.0, 61.0]})
    frame.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    rows = {r["model"]: r for r in fold_scores(tmp_path / "p.tsv", "aam")}
    mean = (frame["aam_pred"] + frame["linear_clr_pred"]) / 2  # 60, 72.5, 79, 65.5
    assert rows["aam+linear_clr"]["score"] == pytest.approx(r2_score(y, mean))
    assert rows["aam+linear_clr"]["mae"] == pytest.approx(mean_absolute_error(y, mean))


def test_the_script_prints_the_ranked_table(tmp_path):
    for fold in ("r0f0", "r0f1"):
        classification_fold(tmp_path / "study" / "cv" / fold / "eval" / "aam" / "y" / "predictions.tsv")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "diagnose_combinations.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mean_rank" in done.stdout and "random_forest+linear_clr" in done.stdout
    empty = subprocess.run([sys.executable, str(REPO / "scripts" / "diagnose_combinations.py"),
                            str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert empty.returncode != 0 and "no evaluations of run 'aam'" in empty.stderr
