"""How often one draw finds a model within the margins (aam.evaluate.pseudo_draws, and
scripts/pool_fold_draws.py --pseudo-draws): every combination of repeats judged by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers.cv_records import baseline_record, record

from aam.evaluate.cv import fold_scores, summarize
from aam.evaluate.pooled_draws import pool_draws
from aam.evaluate.pseudo_draws import margin_shares, repeat_of, restrict

REPO = Path(__file__).resolve().parents[1]


def draw(scores: dict[str, list[float]], task: str = "classification",
         mae: dict[str, list[float]] | None = None, dataset: str = "toy") -> dict:
    """One draw's cv-summary of two repeats of one fold each (r0f0, r1f0), as aam.evaluate.cv writes it."""
    folds = ["r0f0", "r1f0"]
    secondary = {m: {"mae": dict(zip(folds, v, strict=True))} for m, v in (mae or {}).items()}
    return {"dataset": dataset, "target": "y", "classes": None, "task": task,
            "metric": "auroc" if task != "regression" else "r2", "folds": folds, "n_samples": 40,
            "test_train_ratio": 0.25, "baselines": ["random_forest"],
            "models": {m: {"kind": "baseline" if m == "random_forest" else "aam", "n_folds": 2,
                           "mean": sum(v) / 2, "sd": None, "per_fold": dict(zip(folds, v, strict=True)),
                           "secondary_means": {k: sum(x.values()) / 2
                                               for k, x in secondary.get(m, {}).items()},
                           "secondary_per_fold": secondary.get(m, {}), "versus": {}}
                       for m, v in scores.items()}}


def test_summaries_keep_each_secondary_metric_per_fold():
    maes = [4.0, 6.0, 5.5]
    records, baselines = [], []
    for k, mae in enumerate(maes):
        r = record(f"r0f{k}", "aam", 0.1 * k, task="regression")
        r["test"]["aam"]["mae"] = mae
        records.append(r)
        b = baseline_record(f"r0f{k}", 0.2, 0.3, task="regression")
        b["models"]["random_forest"]["test"]["mae"] = 5.0 + k
        baselines.append(b)
    _, result = summarize(*fold_scores(records, baselines))
    aam = result["models"]["aam"]
    assert aam["secondary_per_fold"]["mae"] == {"r0f0": 4.0, "r0f1": 6.0, "r0f2": 5.5}
    assert aam["secondary_means"]["mae"] == pytest.approx(sum(maes) / 3)
    assert result["models"]["random_forest"]["secondary_per_fold"]["mae"] == {"r0f0": 5.0, "r0f1": 6.0,
                                                                             "r0f2": 7.0}
    # a metric a fold lacks is kept as None, not dropped
    assert result["models"]["linear_clr"]["secondary_per_fold"]["mae"] == {"r0f0": None, "r0f1": None,
                                                                          "r0f2": None}


def test_repeat_of_names_the_draw_and_repeat():
    assert repeat_of("r1f3") == "r1"
    assert repeat_of("s2026:r0f4") == "s2026:r0"
    with pytest.raises(ValueError, match="bad fold name"):
        repeat_of("s2026:fold3")


def test_margin_shares_hand_worked():
    """Two draws of two repeats: 4 repeats, C(4, 2) = 6 pseudo-draws of two.

    Classification: AAM scores 0.80 on every repeat; the forest, the only baseline, 0.81 and 0.85
    (draw s1), 0.79 and 0.83 (s2). A pseudo-draw's forest mean against 0.80:
    s1r0+s1r1 0.83 (behind by 0.03), s1r0+s2r0 0.80, s1r0+s2r1 0.82 (exactly the margin: within),
    s1r1+s2r0 0.82, s1r1+s2r1 0.84 (behind), s2r0+s2r1 0.81: within on 4 of 6, and on 1 of the 2
    actual draws (s2). Regression: AAM's R² trails the forest's by 0.1 on every repeat, which the
    R² margin would call behind, but its MAE is 2 % above the forest's: within on all 6, because a
    regression is judged by MAE. Every task: 4 of 6."""
    cls = {"s1": draw({"aam": [0.80, 0.80], "random_forest": [0.81, 0.85]}),
           "s2": draw({"aam": [0.80, 0.80], "random_forest": [0.79, 0.83]})}
    reg = {label: draw({"aam": [0.1, 0.1], "random_forest": [0.2, 0.2]}, task="regression",
                       mae={"aam": [5.1, 5.1], "random_forest": [5.0, 5.0]}, dataset="age")
           for label in ("s1", "s2")}
    pooled = pool_draws({label: [cls[label], reg[label]] for label in ("s1", "s2")})
    shares = margin_shares(pooled, repeats_per_draw=2).set_index("model")
    assert shares.loc["aam", "pseudo_draws"] == 6
    assert shares.loc["aam", "toy/y"] == pytest.approx(4 / 6)
    assert shares.loc["aam", "age/y"] == pytest.approx(1.0)
    assert shares.loc["aam", "within_every_task"] == pytest.approx(4 / 6)
    assert (shares.loc["aam", "actual_draws"], shares.loc["aam", "actual_within"]) == (2, 1)
    # the best baseline is never behind itself
    assert shares.loc["random_forest", "within_every_task"] == pytest.approx(1.0)
    assert list(shares.index) == ["random_forest", "aam"]
    # one repeat a draw: C(4, 1) = 4; the forest alone 0.81, 0.85, 0.79, 0.83 -> within on 0.81 and 0.79
    single = margin_shares(pooled, repeats_per_draw=1).set_index("model")
    assert single.loc["aam", "toy/y"] == pytest.approx(0.5)
    assert single.loc["aam", "actual_draws"] == 0  # no draw ran a single repeat
    # the cut summary's means are those of the chosen repeats
    cut = restrict(pooled[1], ["s1:r0f0", "s2:r1f0"])
    assert cut["models"]["aam"]["secondary_means"]["mae"] == pytest.approx(5.1)
    assert cut["folds"] == ["s1:r0f0", "s2:r1f0"]


def test_what_pseudo_draws_cannot_judge_is_refused():
    old = draw({"aam": [0.1, 0.1], "random_forest": [0.2, 0.2]}, task="regression")
    for m in old["models"].values():
        m.pop("secondary_per_fold")
    with pytest.raises(ValueError, match=r"toy/y: 'aam' has no MAE per fold .*run `aam cv-summary` again"):
        margin_shares([old])
    one = draw({"aam": [0.8, 0.8], "random_forest": [0.8, 0.8]})
    with pytest.raises(ValueError, match="2 repeats cannot make draws of 3"):
        margin_shares([one], repeats_per_draw=3)
    other = {**draw({"aam": [0.8, 0.8], "random_forest": [0.8, 0.8]}, dataset="other"), "folds": ["r0f0"]}
    with pytest.raises(ValueError, match="other/y holds repeats"):
        margin_shares([one, other])


def test_pool_script_writes_the_margin_shares(tmp_path):
    runs = {"s1": draw({"aam": [0.80, 0.80], "random_forest": [0.81, 0.85]}),
            "s2": draw({"aam": [0.80, 0.80], "random_forest": [0.79, 0.83]})}
    for label, s in runs.items():
        task = tmp_path / label / "toy" / "cv_summary" / "y"
        task.mkdir(parents=True)
        (task / "summary.json").write_text(json.dumps(s))
        for r in (0, 1):
            split = tmp_path / label / "toy" / "cv" / "split" / f"r{r}"
            split.mkdir(parents=True)
            # each repeat its own partition of the samples
            tests = {"s1": [["a", "b"], ["c", "d"]], "s2": [["a", "c"], ["b", "d"]]}[label][r]
            rows = [{"sample": x, "repeat": r, "fold": 0 if x in tests else 1, "split": "test"}
                    for x in "abcd"]
            pd.DataFrame(rows).to_csv(split / "folds.tsv", sep="\t", index=False)
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "pool_fold_draws.py"), str(tmp_path / "s1"),
                           str(tmp_path / "s2"), "--out-dir", str(tmp_path / "out"), "--pseudo-draws", "2"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    margins = pd.read_csv(tmp_path / "out" / "margins.tsv", sep="\t").set_index("model")
    assert margins.loc["aam", "within_every_task"] == pytest.approx(0.6667, abs=1e-4)
    assert "Within the margins on one draw of 2 repeats" in done.stdout
