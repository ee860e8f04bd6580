"""The benchmark pooled over fold draws (aam.evaluate.pooled_draws, scripts/pool_fold_draws.py):
means, paired tests and margins worked by hand; draws of the same folds refused."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from aam.evaluate.leaderboard import leaderboard
from aam.evaluate.pooled_draws import check_distinct_draws, pool_draws, pool_task, repeat_partitions

REPO = Path(__file__).resolve().parents[1]


def summary(per_fold: dict[str, dict[str, float]], ratio: float, task: str = "classification",
            secondary: dict[str, dict[str, float]] | None = None, dataset: str = "toy") -> dict:
    """A cv-summary as aam.evaluate.cv writes it, reduced to what pooling reads."""
    folds = list(next(iter(per_fold.values())))
    models = {}
    for m, scores in per_fold.items():
        values = list(scores.values())
        models[m] = {"kind": "baseline" if m != "aam" else "aam", "n_folds": len(values),
                     "mean": sum(values) / len(values), "sd": None, "per_fold": scores,
                     "secondary_means": (secondary or {}).get(m, {}), "versus": {}}
    return {"dataset": dataset, "target": "y", "classes": ["a", "b"] if task != "regression" else None,
            "task": task, "metric": "auroc" if task != "regression" else "r2", "folds": folds,
            "n_samples": 40, "test_train_ratio": ratio, "models": models}


def student_t3_cdf(t: float) -> float:
    """Student's t CDF with 3 degrees of freedom in closed form (not SciPy)."""
    x = t / math.sqrt(3)
    return 0.5 + (x / (1 + x * x) + math.atan(x)) / math.pi


def test_pooled_means_and_corrected_test_by_hand():
    a = summary({"aam": {"r0f0": 0.8, "r0f1": 0.6}, "random_forest": {"r0f0": 0.7, "r0f1": 0.7}}, 0.25)
    b = summary({"aam": {"r0f0": 0.7, "r0f1": 0.9}, "random_forest": {"r0f0": 0.75, "r0f1": 0.65}}, 0.35)
    pooled = pool_task({"s1": a, "s2": b})
    aam = pooled["models"]["aam"]
    assert pooled["folds"] == ["s1:r0f0", "s1:r0f1", "s2:r0f0", "s2:r0f1"]
    assert aam["per_fold"] == {"s1:r0f0": 0.8, "s1:r0f1": 0.6, "s2:r0f0": 0.7, "s2:r0f1": 0.9}
    assert aam["mean"] == pytest.approx(0.75)
    assert pooled["models"]["random_forest"]["mean"] == pytest.approx(0.70)
    # differences 0.1, -0.1, -0.05, 0.25: mean 0.05, squared deviations 0.0025 + 0.0225 + 0.01 + 0.04
    # = 0.075, s^2 = 0.025; n2/n1 the mean of the draws' ratios over their folds, (0.25 + 0.35) / 2
    assert pooled["test_train_ratio"] == pytest.approx(0.30)
    t = 0.05 / math.sqrt((1 / 4 + 0.30) * 0.025)
    versus = aam["versus"]["random_forest"]
    assert (versus["wins"], versus["losses"], versus["n"]) == (2, 2, 4)
    assert versus["mean"] == pytest.approx(0.05)
    assert versus["corrected_p"] == pytest.approx(2 * (1 - student_t3_cdf(t)), rel=1e-9)
    # a baseline is compared with the other baselines, never with itself
    assert set(pooled["models"]["random_forest"]["versus"]) == set()


def test_regression_mae_is_pooled_over_the_folds_and_judges_the_margin():
    """MAE pooled as the fold-weighted mean of the draws' means: a draw where AAM trails the
    forest's MAE by 10 % and one where it leads by 4 % pool to 3 % behind, inside the 5 % margin."""
    a = summary({"aam": {"r0f0": 0.1, "r0f1": 0.1}, "random_forest": {"r0f0": 0.2, "r0f1": 0.2}}, 0.25,
                task="regression",
                secondary={"aam": {"mae": 5.5, "rmse": 7.0}, "random_forest": {"mae": 5.0}})
    b = summary({"aam": {"r0f0": 0.2, "r0f1": 0.2}, "random_forest": {"r0f0": 0.1, "r0f1": 0.1}}, 0.25,
                task="regression", secondary={"aam": {"mae": 4.8}, "random_forest": {"mae": 5.0}})
    alone, _, _, _ = leaderboard([a])
    assert alone.set_index("model").loc["aam", "behind"] == "toy/y MAE +10.0 %"
    pooled = pool_task({"s1": a, "s2": b})
    # (5.5 x 2 + 4.8 x 2) / 4 = 5.15 against 5.0: +3 %; rmse is in one draw only, so it is dropped
    assert pooled["models"]["aam"]["secondary_means"] == pytest.approx({"mae": 5.15})
    board, _, _, _ = leaderboard([pooled])
    assert board.set_index("model").loc["aam", "n_behind"] == 0


def test_a_margin_missed_on_one_draw_is_judged_on_the_pooled_folds():
    """0.05 behind the forest on one draw, 0.03 ahead on the other: 0.01 behind pooled (within the
    0.02 margin); the ranks follow the pooled means."""
    a = summary({"aam": {"r0f0": 0.70, "r0f1": 0.70}, "random_forest": {"r0f0": 0.75, "r0f1": 0.75}}, 0.25)
    b = summary({"aam": {"r0f0": 0.73, "r0f1": 0.73}, "random_forest": {"r0f0": 0.70, "r0f1": 0.70}}, 0.25)
    first, _, _, _ = leaderboard([a])
    assert first.set_index("model").loc["aam", "behind"] == "toy/y −0.050"
    board, tasks, _, _ = leaderboard(pool_draws({"s1": [a], "s2": [b]}))
    rows = board.set_index("model")
    assert rows.loc["aam", "n_behind"] == 0
    assert rows.loc["aam", "toy/y"] == pytest.approx(0.715)
    assert rows.loc["random_forest", "toy/y"] == pytest.approx(0.725)
    assert tasks.set_index("model").loc["random_forest", "rank"] == 1.0


def test_repeat_partitions_and_draws_of_the_same_folds_are_refused():
    def folds(test_fold_of: dict[str, int]) -> pd.DataFrame:
        rows = [{"sample": s, "repeat": 0, "fold": f, "split": "test"} for s, f in test_fold_of.items()]
        rows += [{"sample": s, "repeat": 0, "fold": f, "split": "train"}
                 for s, own in test_fold_of.items() for f in range(3) if f != own]
        return pd.DataFrame(rows)

    first = folds({"a": 0, "b": 0, "c": 1, "d": 1, "e": 2, "f": 2})
    assert repeat_partitions(first) == {0: frozenset({frozenset("ab"), frozenset("cd"), frozenset("ef")})}
    renumbered = folds({"a": 2, "b": 2, "c": 0, "d": 0, "e": 1, "f": 1})  # the same folds, other numbers
    other = folds({"a": 0, "c": 0, "b": 1, "e": 1, "d": 2, "f": 2})
    check_distinct_draws({"s1": list(repeat_partitions(first).values()),
                          "s2": list(repeat_partitions(other).values())}, "toy/y")
    with pytest.raises(ValueError, match="toy/y: draws s1 and s2 share a repeat's folds"):
        check_distinct_draws({"s1": list(repeat_partitions(first).values()),
                              "s2": list(repeat_partitions(renumbered).values())}, "toy/y")


def test_draws_that_do_not_match_are_refused():
    a = summary({"aam": {"r0f0": 0.8}, "random_forest": {"r0f0": 0.7}}, 0.25)
    no_forest = summary({"aam": {"r0f0": 0.8}}, 0.25)
    with pytest.raises(ValueError, match=r"toy/y: models \['random_forest'\] are not in every draw"):
        pool_task({"s1": a, "s2": no_forest})
    other_samples = {**a, "n_samples": 41}
    with pytest.raises(ValueError, match="toy/y: draws s1 and s2 differ in n_samples"):
        pool_task({"s1": a, "s2": other_samples})
    with pytest.raises(ValueError, match=r"tasks \['other/y'\] are not in every draw"):
        pool_draws({"s1": [a], "s2": [a, summary({"aam": {"r0f0": 0.5}}, 0.25, dataset="other")]})
    with pytest.raises(ValueError, match="at least two draws"):
        pool_task({"s1": a})


def write_draw(root: Path, s: dict, test_fold_of: dict[str, int]) -> None:
    task = root / s["dataset"] / "cv_summary" / s["target"]
    task.mkdir(parents=True)
    (task / "summary.json").write_text(json.dumps(s))
    split = root / s["dataset"] / "cv" / "split" / "r0"
    split.mkdir(parents=True)
    pd.DataFrame([{"sample": k, "repeat": 0, "fold": f, "split": "test"} for k, f in test_fold_of.items()]
                 ).to_csv(split / "folds.tsv", sep="\t", index=False)


def test_pool_script_writes_the_pooled_leaderboard_and_refuses_one_draw_twice(tmp_path):
    a = summary({"aam": {"r0f0": 0.70, "r0f1": 0.70}, "random_forest": {"r0f0": 0.75, "r0f1": 0.75}}, 0.25)
    b = summary({"aam": {"r0f0": 0.73, "r0f1": 0.73}, "random_forest": {"r0f0": 0.70, "r0f1": 0.70}}, 0.25)
    write_draw(tmp_path / "s1", a, {"x": 0, "y": 1})
    write_draw(tmp_path / "s2", b, {"x": 0, "y": 0, "z": 1})
    write_draw(tmp_path / "again", b, {"x": 1, "y": 0})  # s1's folds, numbered the other way
    script = [sys.executable, str(REPO / "scripts" / "pool_fold_draws.py")]
    done = subprocess.run([*script, str(tmp_path / "s1"), str(tmp_path / "s2"), "--out-dir",
                           str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    board = pd.read_csv(tmp_path / "out" / "leaderboard.tsv", sep="\t").set_index("model")
    assert board.loc["aam", "toy/y"] == pytest.approx(0.715)
    assert board.loc["aam", "n_behind"] == 0
    alone = subprocess.run([*script, str(tmp_path / "s1"), str(tmp_path / "s2"), "--out-dir",
                            str(tmp_path / "alone"), "--exclude", "random_forest"],
                           capture_output=True, text=True)
    assert alone.returncode == 0, alone.stderr
    assert list(pd.read_csv(tmp_path / "alone" / "leaderboard.tsv", sep="\t")["model"]) == ["aam"]
    refused = subprocess.run([*script, str(tmp_path / "s1"), str(tmp_path / "again"), "--out-dir",
                              str(tmp_path / "out2")], capture_output=True, text=True)
    assert refused.returncode != 0
    assert refused.stderr.strip() == ("toy/y: draws s1 and again share a repeat's folds (the same seed "
                                      "run twice?); pooling them would count those folds twice")
    assert not (tmp_path / "out2").exists()
    broken = tmp_path / "broken"
    write_draw(broken, b, {"x": 0, "y": 0, "z": 1})
    (broken / "toy" / "cv_summary" / "y" / "summary.json").write_text("{not json")
    refused = subprocess.run([*script, str(tmp_path / "s1"), str(broken), "--out-dir",
                              str(tmp_path / "out3")], capture_output=True, text=True)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1
    assert refused.stderr.startswith(f"{broken}/toy/cv_summary/y/summary.json: not an `aam cv-summary` JSON")
