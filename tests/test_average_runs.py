"""Runs averaged after training (aam.evaluate.average_runs, `aam cv-summary --average`, the config's
evaluate.average_runs): the mean of the runs' test predictions, scored against hand-worked values."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from aam.cli import main
from aam.config import load_config
from aam.errors import InputError
from aam.workflow.commands import average_arg

# Binary fold r0f0, classes N and P (P positive), test samples s1-s4 with truth N, P, N, P.
#   run a: P(P) = 0.2, 0.4, 0.6, 0.9 -> AUROC: of the 4 (positive, negative) pairs, 0.4 > 0.2 and
#          0.9 > both, 0.4 < 0.6: 3 / 4
#   run b: P(P) = 0.5, 0.7, 0.1, 0.3 -> 0.7 > both, 0.3 > 0.1 only: 3 / 4
#   mean:  0.35, 0.55, 0.35, 0.6    -> both positives above both negatives: 1; classes N, P, N, P
TRUTH = ["N", "P", "N", "P"]
PROB_P = {"a": [0.2, 0.4, 0.6, 0.9], "b": [0.5, 0.7, 0.1, 0.3]}
# Regression fold r0f1: truth 1, 2, 3, 4; a 2, 2, 2, 6; b 0, 2, 4, 2 -> mean 1, 2, 3, 4: R2 1, MAE 0.
# a alone: residuals -1, 0, 1, -2 -> R2 = 1 - 6 / 5 = -0.2
VALUES = {"a": [2.0, 2.0, 2.0, 6.0], "b": [0.0, 2.0, 4.0, 2.0]}
SAMPLES = ["s1", "s2", "s3", "s4"]


def write_run(folder, run, fold, task, auroc_or_r2, outputs, reverse=False, samples="fp"):
    """An `aam evaluate --fold` metrics.json and predictions.tsv of one run: the test rows (in reverse
    order with `reverse`: averaging aligns by sample) and one validation row that must be ignored."""
    folder.mkdir(parents=True)
    classes = ["N", "P"] if task == "classification" else None
    key = "auroc" if classes else "r2"
    (folder / "metrics.json").write_text(json.dumps({
        "dataset": "toy", "run": run, "fold": fold, "target": "t", "task": task, "classes": classes,
        "n_test": 4, "test_samples": samples, "fold_samples": {"train": "x", "val": "y", "test": samples},
        "degenerate_predictions": None, "test": {"aam": {key: auroc_or_r2}},
    }))
    rows = []
    for sample, truth, out in zip(SAMPLES, TRUTH if classes else [1.0, 2.0, 3.0, 4.0], outputs, strict=True):
        row = {"sample": sample, "split": "test", "y_true": truth}
        if classes:
            row |= {"aam_pred": "P" if out > 0.5 else "N", "aam_prob_N": 1 - out, "aam_prob_P": out}
        else:
            row |= {"aam_pred": out}
        rows.append(row)
    rows = rows[::-1] if reverse else rows
    rows.append({**rows[0], "sample": "v1", "split": "val"})
    pd.DataFrame(rows).to_csv(folder / "predictions.tsv", sep="\t", index=False)
    return str(folder / "metrics.json")


def summary(tmp_path, metrics, average):
    out = tmp_path / "out"
    argv = ["cv-summary", "--metrics", *metrics, "--average", *average, "--out", str(out / "s.tsv"),
            "--json", str(out / "s.json"), "--plot", str(out / "s.png")]
    return main(argv), out


def test_averaged_classification_is_scored_on_the_mean_probabilities(tmp_path):
    metrics = [write_run(tmp_path / "a", "a", "r0f0", "classification", 0.75, PROB_P["a"]),
               write_run(tmp_path / "b", "b", "r0f0", "classification", 0.75, PROB_P["b"], reverse=True)]
    code, out = summary(tmp_path, metrics, ["a,b"])
    assert code == 0
    result = json.loads((out / "s.json").read_text())
    row = result["models"]["a+b (mean)"]
    assert row["kind"] == "combined" and row["per_fold"] == {"r0f0": pytest.approx(1.0)}
    assert row["secondary_means"]["accuracy"] == pytest.approx(1.0)
    assert result["models"]["a"]["mean"] == pytest.approx(0.75)


def test_averaged_regression_is_scored_on_the_mean_values(tmp_path):
    metrics = [write_run(tmp_path / "a", "a", "r0f1", "regression", -0.2, VALUES["a"]),
               write_run(tmp_path / "b", "b", "r0f1", "regression", 0.0, VALUES["b"], reverse=True)]
    code, out = summary(tmp_path, metrics, ["a,b"])
    assert code == 0
    row = json.loads((out / "s.json").read_text())["models"]["a+b (mean)"]
    assert row["per_fold"]["r0f1"] == pytest.approx(1.0)
    assert row["secondary_means"]["mae"] == pytest.approx(0.0)


def test_runs_of_other_samples_or_a_missing_run_are_refused(tmp_path, capsys):
    a = write_run(tmp_path / "a", "a", "r0f0", "classification", 0.75, PROB_P["a"])
    other = write_run(tmp_path / "b", "b", "r0f0", "classification", 0.75, PROB_P["b"], samples="other")
    code, out = summary(tmp_path, [a, other], ["a,b"])
    assert code != 0 and not out.exists()
    assert "cannot be averaged" in capsys.readouterr().err
    code, out = summary(tmp_path, [a], ["a,c"])
    assert code != 0 and not out.exists()
    assert "no evaluation of run 'c'" in capsys.readouterr().err
    code, out = summary(tmp_path, [a], ["a"])
    assert code != 0 and "two or more distinct runs" in capsys.readouterr().err


def test_the_config_names_runs_that_exist(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("datasets: {}\naam: {runs: {aam: {}, aam_s43: {}}}\n")
    assert average_arg(load_config(path)) == ""
    path.write_text("datasets: {}\naam: {runs: {aam: {}, aam_s43: {}}}\n"
                    "evaluate: {average_runs: [[aam, aam_s43]]}\n")
    assert average_arg(load_config(path)) == "--average aam,aam_s43"
    path.write_text("datasets: {}\naam: {runs: {aam: {}, aam_s43: {}}}\n"
                    "evaluate: {average_runs: [[aam, aam_s44]]}\n")
    with pytest.raises(InputError, match="evaluate/average_runs: 'aam_s44' is not a run of aam/runs"):
        load_config(path)
    path.write_text("datasets: {}\naam: {runs: {aam: {}}}\nevaluate: {average_runs: [[aam]]}\n")
    with pytest.raises(InputError, match="average_runs"):  # the schema: two runs or more
        load_config(path)
