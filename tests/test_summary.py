"""The results page: tables worked out by hand from small artifacts, and the stage's HTML."""

from __future__ import annotations

import json
import re

import pandas as pd
from helpers.results import CLASSES, SPLITS, write_toy_results

from aam.cli import main
from aam.evaluate.summary import (
    cv_table,
    evaluation_tables,
    fold_sizes,
    headline,
    html_table,
    sequence_rows,
    split_before_after,
    taxonomy_rows,
)


def test_split_before_and_after_rarefaction_by_hand():
    # rarefaction drops a2 (group A keeps a1) and both samples of test group C
    table, lost = split_before_after(SPLITS, ["a2", "c1", "c2"], CLASSES)
    rows = {(r["split"], r["class"]): r for r in table.to_dict("records")}
    assert rows[("train", "all")] == {"split": "train", "class": "all", "samples": 3, "groups": 2,
                                      "samples after rarefaction": 2, "groups after rarefaction": 2}
    assert (rows[("test", "CD")]["samples"], rows[("test", "CD")]["samples after rarefaction"]) == (2, 0)
    assert (rows[("test", "all")]["groups"], rows[("test", "all")]["groups after rarefaction"]) == (2, 1)
    assert rows[("val", "all")]["samples"] == 0
    assert lost == {"test": ["C"]}


def test_headline_puts_every_baseline_beside_the_run():
    comparison = pd.DataFrame({
        "target": ["ibd", "ibd"], "task": ["classification"] * 2, "run": ["pre", "scratch"],
        "n_test": [58, 58], "metric": ["auroc"] * 2, "aam": [0.61, 0.55], "random_forest": [0.7, 0.7],
        "linear_clr": [0.72, 0.72], "best_baseline": ["linear_clr"] * 2, "difference": [-0.11, -0.17],
    })
    table = headline(comparison)
    assert list(table.columns) == ["target", "run", "test samples", "metric", "AAM", "random forest",
                                   "CLR + L2 logistic/ridge", "AAM − best baseline", "best baseline"]
    assert list(table["AAM − best baseline"]) == ["-0.110", "-0.170"]


def test_cv_table_of_a_cv_summary():
    frame = pd.DataFrame({
        "model": ["scratch", "random_forest"], "metric": ["auroc"] * 2, "n_folds": [10, 10],
        "mean": [0.8, 0.75], "sd": [0.1, 0.05], "vs_random_forest_difference": [0.05, None],
        "vs_random_forest_wins": [7, None], "vs_random_forest_losses": [3, None],
        "vs_random_forest_wilcoxon_p": [0.01, None], "vs_random_forest_corrected_p": [0.2, None],
        "degenerate_folds": [1, 0],
    })
    table = cv_table(frame)
    assert list(table["model"]) == ["scratch", "random forest"]
    assert list(table["mean ± sd"]) == ["0.800 ± 0.100", "0.750 ± 0.050"]
    assert list(table["vs random forest"]) == ["+0.050 (7/3, p 0.200)", ""]
    assert list(table["degenerate folds"]) == [1, ""]


def test_fold_sizes_of_a_cv_split_summary():
    rows = [("r0f0", "train", "all", 10, 4), ("r0f0", "train", "CD", 6, 2), ("r0f0", "val", "all", 3, 1),
            ("r0f0", "test", "all", 5, 2), ("r0f0", "test", "CD", 2, 1), ("r0f0", "test", "no", 3, 1),
            ("r0f1", "train", "all", 12, 5), ("r0f1", "test", "all", 6, 2), ("r0f1", "test", "no", 6, 2)]
    table = fold_sizes(pd.DataFrame(rows, columns=["fold", "split", "class", "samples", "groups"]))
    assert table.to_dict("records") == [
        {"fold": "r0f0", "train: samples (groups)": "10 (4)", "val: samples (groups)": "3 (1)",
         "test: samples (groups)": "5 (2)", "test by class": "CD 2 (1), no 3 (1)"},
        {"fold": "r0f1", "train: samples (groups)": "12 (5)", "val: samples (groups)": "",
         "test: samples (groups)": "6 (2)", "test by class": "no 6 (2)"},
    ]


def test_evaluation_tables_of_a_metrics_json():
    metrics = {
        "classes": ["Control", "Crohns"], "n_test": 5,
        "test": {"aam": {"n": 5, "accuracy": 0.6, "auroc": 0.5, "confusion_matrix": [[2, 1], [1, 1]],
                         "classes": ["Control", "Crohns"]},
                 "random_forest": {"n": 5, "accuracy": 0.8, "auroc": 0.9,
                                   "confusion_matrix": [[3, 0], [1, 1]]}},
        "val": {"aam": {"n": 3, "accuracy": 1.0, "auroc": 1.0, "confusion_matrix": [[2, 0], [0, 1]]}},
    }
    scores, confusion = evaluation_tables(metrics)
    assert list(zip(scores["split"], scores["model"], scores["accuracy"], strict=True)) == [
        ("test", "AAM", 0.6), ("test", "random forest", 0.8), ("val", "AAM", 1.0)]
    assert [title for title, _ in confusion] == ["AAM: test confusion matrix",
                                                 "random forest: test confusion matrix"]
    forest = confusion[1][1].set_index("true class")
    assert forest.loc["Control", "predicted Control"] == 3 and forest.loc["Crohns", "predicted Control"] == 1
    seen, _ = evaluation_tables({**metrics, "val_seen_in_training": True})
    assert list(seen["split"]) == ["test", "test", "val (seen in training)"]


def test_html_table_escapes_values():
    text = html_table(pd.DataFrame({"sample": ["<b>x</b>"], "reads": [3]}), "t")
    assert "&lt;b&gt;x&lt;/b&gt;" in text and "<b>x" not in text and 'id="t"' in text


def test_sequence_rows_put_the_model_beside_naive_bayes():
    metrics = {"kind": "contrastive", "knn_k": 1,
               "ranks": {"genus": {"n_test": 600, "knn_accuracy": 0.8, "naive_bayes_accuracy": 0.75}}}
    (row,) = sequence_rows("gg", "c", metrics)
    assert row["1-NN accuracy"] == "0.800" and row["naive Bayes accuracy"] == "0.750"
    assert row["model − naive Bayes"] == "0.050"


def test_taxonomy_rows_put_aam_classify_beside_q2_per_rank():
    # hand-worked: genus P 9/10, R 9/12 -> F 2PR/(P+R) = 0.818; q2 P 8/10, R 8/12 -> F 0.727
    def scores(right, assigned, reads):
        p, r = right / assigned, right / reads
        return {"reads": reads, "assigned": assigned, "right": right, "precision": p, "recall": r,
                "f": 2 * p * r / (p + r)}

    metrics = {"kind": "contrastive", "taxonomy": {
        "rank": "genus",
        "aam classify": {"threshold": 0.25, "ranks": {"genus": scores(9, 10, 12),
                                                        "species": {"reads": 0}}},
        "naive Bayes, 7-mers (q2 default)": {"threshold": 0.7, "ranks": {"genus": scores(8, 10, 12)}},
    }}
    (row,) = taxonomy_rows("gg", "c", metrics)  # species: no test sequence names one
    assert row["rank"] == "genus" and row["test sequences"] == 12
    assert row["aam classify P / R / F"] == "0.900 / 0.750 / 0.818"
    assert row["q2 naive Bayes P / R / F"] == "0.800 / 0.667 / 0.727"
    assert row["F: aam − q2"] == "0.091"
    assert taxonomy_rows("gg", "c", {"kind": "contrastive", "note": "no labels"}) == []


def test_stage_writes_the_page(tmp_path):
    plan = write_toy_results(tmp_path / "res")
    out = tmp_path / "summary.html"
    argv = ["summary", "--results", str(tmp_path / "res"), "--settings", json.dumps(plan), "--out", str(out)]
    assert main(argv) == 0
    page = out.read_text()
    assert page.index('id="headline-toy"') < page.index('id="splits-toy"')  # results first
    assert "Rarefied to 20 reads per sample: 3 of 6 samples kept, 3 dropped" in page
    assert "Groups with no sample left after rarefaction</b> — test: C." in page
    first = page[page.index('id="headline-toy"'):]
    first = first[: first.index("</table>")]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", first)
    assert cells == ["dx", "r", "1", "auroc", "0.500", "0.750", "-0.250", "random forest"]
