"""aam.evaluate.cv and `aam cv-summary`: per-fold scores, mean +- sd, paired tests vs hand-worked values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers.cv_records import (
    FOREST,
    LINEAR,
    baseline_records,
    record,
    records,
)
from scipy import stats

from aam.cli import main
from aam.evaluate.cv import corrected_t_test, fold_scores, paired_tests, summarize


def test_paired_tests_hand_worked():
    # d = 0.1, 0.2, -0.05, 0.3, 0.15. Ranks of |d|: 0.05 -> 1, 0.1 -> 2, 0.15 -> 3, 0.2 -> 4, 0.3 -> 5.
    # W- = 1 (only -0.05). Exact null: each of the 2^5 = 32 sign patterns equally likely; the
    # patterns with W- <= 1 are {} and {1}: P = 2/32; two-sided p = 2 x 2/32 = 0.125.
    # Sign test: 4 of 5 positive; P(X >= 4) = (5 + 1)/32; two-sided p = 12/32 = 0.375.
    out = paired_tests([0.1, 0.2, -0.05, 0.3, 0.15])
    assert out["wilcoxon_p"] == pytest.approx(0.125)
    assert out["sign_p"] == pytest.approx(0.375)
    assert (out["n"], out["wins"], out["losses"], out["ties"]) == (5, 4, 1, 0)
    assert out["mean"] == pytest.approx(0.14)
    assert out["sd"] == pytest.approx(np.std([0.1, 0.2, -0.05, 0.3, 0.15], ddof=1))
    # all five positive: the smallest p that five folds allow, 2/32, for both tests
    best = paired_tests([0.01, 0.02, 0.03, 0.04, 0.05])
    assert best["wilcoxon_p"] == pytest.approx(0.0625) and best["sign_p"] == pytest.approx(0.0625)
    # zeros are dropped (Wilcoxon's method): 0.1, -0.2, 0.3 -> W- = 2; patterns with W- <= 2 are
    # {}, {1}, {2}: 3/8; two-sided 6/8. Sign test: 2 of 3, p = 1.
    dropped = paired_tests([0.1, 0.0, -0.2, 0.3, None])
    assert dropped["n"] == 4 and dropped["ties"] == 1
    assert dropped["wilcoxon_p"] == pytest.approx(0.75) and dropped["sign_p"] == pytest.approx(1.0)
    assert paired_tests([0.0, 0.0])["wilcoxon_p"] == 1.0
    assert paired_tests([])["wilcoxon_p"] is None


def test_corrected_t_test_hand_worked():
    """Nadeau and Bengio's corrected t-test worked by hand, with Student's t CDF of 4 df in closed
    form instead of SciPy's."""
    d = np.array([0.1, 0.2, -0.05, 0.3, 0.15])
    # mean 0.14; squared deviations 0.0016 + 0.0036 + 0.0361 + 0.0256 + 0.0001 = 0.067, s^2 = 0.067 / 4;
    # 5 folds of one repeat: n2 / n1 = 1/4, so t = 0.14 / sqrt((1/5 + 1/4) x 0.01675), 4 df
    t = 0.14 / np.sqrt(0.45 * 0.067 / 4)
    assert t == pytest.approx(1.61255, abs=1e-5)
    # Student's t with 4 df: F(t) = 1/2 + (3/4) v - (1/4) v^3 with v = t / sqrt(4 + t^2)
    v = t / np.sqrt(4 + t**2)
    p_by_hand = 2 * (1 - (0.5 + 0.75 * v - 0.25 * v**3))
    assert corrected_t_test(d, 0.25) == pytest.approx(p_by_hand, rel=1e-9)
    assert paired_tests(d, 0.25)["corrected_p"] == pytest.approx(p_by_hand, rel=1e-9)
    # without the correction it is the ordinary one-sample t-test, whose p is smaller
    plain = stats.ttest_1samp(d, 0.0).pvalue
    assert corrected_t_test(d, 0.0) == pytest.approx(plain, rel=1e-12)
    assert plain < p_by_hand
    # edge cases: no spread at all, equal non-zero differences, too few folds, no ratio
    assert corrected_t_test(np.zeros(4), 0.25) == 1.0
    assert corrected_t_test(np.full(4, 0.1), 0.25) == 0.0
    assert corrected_t_test(np.array([0.1]), 0.25) is None
    assert paired_tests(d)["corrected_p"] is None
    with pytest.raises(ValueError, match="test_train_ratio"):
        corrected_t_test(d, -0.1)


def test_summarize_means_sds_and_pairs():
    scores, task = fold_scores(records(), baseline_records())
    summary, result = summarize(scores, task)
    assert list(summary["model"]) == ["pretrained", "scratch", "random_forest", "linear_clr"]
    rows = summary.set_index("model")
    assert rows.loc["random_forest", "mean"] == pytest.approx(np.mean(FOREST))
    assert rows.loc["random_forest", "sd"] == pytest.approx(np.std(FOREST, ddof=1))
    assert rows.loc["pretrained", "vs_random_forest_wilcoxon_p"] == pytest.approx(0.125)
    assert rows.loc["pretrained", "vs_random_forest_sign_p"] == pytest.approx(0.375)
    assert rows.loc["pretrained", "vs_random_forest_difference"] == pytest.approx(0.14)
    # 5 folds of 10 test samples out of 50: n2 / n1 = 10 / 40; the differences of the hand-worked test
    assert result["test_train_ratio"] == pytest.approx(0.25)
    assert rows.loc["pretrained", "vs_random_forest_corrected_p"] == pytest.approx(
        corrected_t_test(np.array([0.1, 0.2, -0.05, 0.3, 0.15]), 0.25))
    # vs the linear model: 0, 0.2, -0.05, 0.4, 0.1 -> one tie, 3 wins, 1 loss
    pre = rows.loc["pretrained"]
    assert (pre["vs_linear_clr_wins"], pre["vs_linear_clr_losses"]) == (3, 1)
    # the baselines are compared with each other too, never with themselves
    difference = np.mean(LINEAR) - np.mean(FOREST)
    assert rows.loc["linear_clr", "vs_random_forest_difference"] == pytest.approx(difference)
    assert pd.isna(rows.loc["random_forest", "vs_random_forest_difference"])
    assert rows.loc["scratch", "n_folds"] == 4
    assert rows.loc["scratch", "mean"] == pytest.approx(0.5)
    assert rows.loc["scratch", "vs_random_forest_losses"] == 4
    assert rows.loc["scratch", "degenerate_folds"] == 1
    assert rows.loc["pretrained", "r0f3"] == pytest.approx(1.2)
    assert rows.loc["random_forest", "mean_accuracy"] == pytest.approx(0.7)
    assert result["folds"] == [f"r0f{k}" for k in range(5)]
    assert result["models"]["scratch"]["degenerate_folds"] == {"r0f2": "one class"}
    assert result["models"]["pretrained"]["versus"]["random_forest"]["wins"] == 4
    assert result["baselines"] == ["random_forest", "linear_clr"] and result["n_samples"] == 50
    assert result["models"]["linear_clr"]["kind"] == "baseline"


def test_models_tested_on_other_samples_are_refused():
    """Identical folds: a run or baseline whose test samples differ from the others' in a fold."""
    bad = records()
    bad[3]["test_samples"] = "abd"  # fold r0f1, run scratch
    with pytest.raises(ValueError, match="fold r0f1: 'scratch' and 'pretrained' were tested on different"):
        fold_scores(bad, baseline_records())
    other = baseline_records()
    other[4]["test_samples"] = "xyz"
    with pytest.raises(ValueError, match="fold r0f4: 'random_forest' and 'pretrained'"):
        fold_scores(records(), other)
    with pytest.raises(ValueError, match="two metrics files for fold r0f0 and model random_forest"):
        fold_scores(records(), baseline_records() + baseline_records()[:1])


def test_baselines_alone_are_summarized():
    summary, result = summarize(*fold_scores([], baseline_records()))
    assert list(summary["model"]) == ["random_forest", "linear_clr"]


def test_fold_order_is_numeric():
    recs = [record(f"r0f{k}", "a", 0.5) for k in (10, 2, 1)]
    _, result = summarize(*fold_scores(recs))
    assert result["folds"] == ["r0f1", "r0f2", "r0f10"]


def write_records(tmp_path):
    paths, base = [], []
    for k, m in enumerate(records()):
        path = tmp_path / f"m{k}.json"
        path.write_text(json.dumps(m))
        paths.append(str(path))
    for k, m in enumerate(baseline_records()):
        path = tmp_path / f"b{k}.json"
        path.write_text(json.dumps(m))
        base.append(str(path))
    return paths, base


def test_cv_summary_stage(tmp_path):
    paths, base = write_records(tmp_path)
    out = tmp_path / "out"
    argv = ["cv-summary", "--metrics", *paths, "--baselines", *base, "--out", str(out / "s.tsv"),
            "--json", str(out / "s.json"), "--plot", str(out / "s.png")]
    assert main(argv) == 0
    table = pd.read_csv(out / "s.tsv", sep="\t")
    pre = table.set_index("model").loc["pretrained"]
    assert pre["vs_random_forest_wilcoxon_p"] == pytest.approx(0.125)
    assert json.loads((out / "s.json").read_text())["dataset"] == "toy"
    assert (out / "s.png").read_bytes()[:4] == b"\x89PNG"
    # a metrics file without a fold is not a CV result: one clear line, no output
    plain = json.loads((tmp_path / "m0.json").read_text())
    plain["fold"] = None
    (tmp_path / "plain.json").write_text(json.dumps(plain))
    argv = ["cv-summary", "--metrics", str(tmp_path / "plain.json"), "--out", str(tmp_path / "x.tsv"),
            "--json", str(tmp_path / "x.json"), "--plot", str(tmp_path / "x.png")]
    assert main(argv) != 0
    assert not (tmp_path / "x.tsv").exists()
