"""The benchmark's leaderboard as files: the cv-summary JSONs read, the tables as JSON records, the page.

The statistics (ranks, wins and losses against each baseline, sign, Wilcoxon and Friedman tests)
are :func:`aam.evaluate.leaderboard.leaderboard`'s; this module reads its inputs and lays out the
report's benchmark page (an HTML fragment, tables by :mod:`aam.evaluate.summary`).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from aam.errors import InputError
from aam.evaluate import summary
from aam.evaluate.baselines import LABELS


def _p_value(p: float) -> str:
    """'= 0.022', or '< 0.001' where three decimals would print a p-value as 0.000."""
    return "< 0.001" if p < 0.001 else f"= {summary._fmt(p)}"


BEHIND = "behind the best baseline (> 0.02 AUROC, > 5 % MAE)"


def read_summaries(paths: list[str]) -> list[dict]:
    """The cv-summary JSONs; one that lacks a key is one InputError line naming the file."""
    out = []
    for path in paths:
        try:
            s = json.loads(Path(path).read_text())
            _ = s["dataset"], s["target"], s["task"], s["metric"], s["models"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise InputError(f"{path}: not an `aam cv-summary` JSON ({err})") from None
        out.append(s)
    return out


def page(board: pd.DataFrame, tasks: pd.DataFrame, pairs: pd.DataFrame, test: dict) -> str:
    """The benchmark page: the ranked table, the comparisons with each baseline, the tasks."""
    task_names = list(dict.fromkeys(tasks["task"]))
    cells = tasks.set_index(["model", "task"])
    ranked = []
    for row in board.to_dict("records"):
        line = {"model": model_label(row["model"]), "mean rank": summary._fmt(row["mean_rank"], 2),
                "tasks": row["n_tasks"], BEHIND: row["behind"] or "none"}
        for task in task_names:
            if (row["model"], task) in cells.index:
                c = cells.loc[(row["model"], task)]
                rank = "" if pd.isna(c["rank"]) else f" ({c['rank']:g})"
                line[task] = summary._mean_sd(c["mean"], c["sd"]) + rank
        ranked.append(line)
    about = tasks.drop_duplicates("task")[["task", "kind", "metric", "n_samples", "n_folds"]].rename(
        columns={"n_samples": "samples", "n_folds": "folds"})
    versus = pairs.assign(model=pairs["model"].map(model_label),
                          baseline=pairs["baseline"].map(model_label)).rename(
        columns={"n_tasks": "tasks", "mean_difference": "mean difference"}) if len(pairs) else pairs
    friedman = ("Friedman's test over the tasks every model has a score on: "
                f"p {_p_value(test['p'])} ({test['n_tasks']} tasks, {test['n_models']} models)."
                if test["p"] is not None else "")
    return "\n".join([
        '<div class="aam-leaderboard" id="aam-leaderboard">',
        "<h3>Benchmark leaderboard</h3>",
        "<p>Each task is cross-validated with grouped folds (subjects, families or pairs never span "
        "train and test); every model is trained and tested on the same folds. Cells: the mean ± sd "
        "over the folds of the task's metric (AUROC, macro one-vs-rest for several classes; R² for "
        "regression), and in parentheses the model's rank on the task (1 = best). Mean rank: over the "
        "tasks. Behind the best baseline: the tasks where the model's mean trails the best baseline's by "
        "more than 0.02 (AUROC), or its mean MAE the best baseline's by more than 5 % (regression), "
        "with the shortfall. The baselines choose their hyperparameters by inner cross-validation "
        "on each training fold. Rows <code>run+baseline (mean)</code> average the run's and the "
        "baseline's predictions (class probabilities, or values) on each test fold, "
        "<code>run+baseline+baseline (mean)</code> "
        "the run's and both baselines' (<code>evaluate.combine</code>): equal weights, nothing "
        "fitted; rows <code>run+run (mean)</code> average runs trained apart "
        "(<code>evaluate.average_runs</code>), the same way.</p>",
        summary.html_table(pd.DataFrame(ranked), "leaderboard"),
        "<h4>Each model against each baseline</h4>",
        *(versus_section(versus, friedman) if len(task_names) > 1 else [
            "<p>One task: a comparison over tasks needs several (its tests would all read p = 1). "
            "Each model's paired per-fold comparison with each baseline (wins, losses, the corrected "
            "t-test) is in the task's cross-validated summary.</p>"]),
        "<h4>Tasks</h4>",
        summary.html_table(about, "leaderboard-tasks"),
        "</div>",
    ]) + "\n"


def versus_section(versus: pd.DataFrame, friedman: str) -> list[str]:
    """The comparisons with each baseline over the tasks: what they are, and the table."""
    return [
        "<p>Over the tasks: wins, losses and ties of the CV means; the sign test and the Wilcoxon "
        "signed-rank test of the per-task differences; and the tasks where the corrected repeated "
        "k-fold t-test of that task's folds (Nadeau and Bengio; it allows for the samples that folds "
        f"share) has p &lt; 0.05 ({html.escape('significant wins / losses')}). {friedman}</p>",
        summary.html_table(versus, "leaderboard-pairs"),
    ]


def model_label(model: str) -> str:
    """A model's name on the page (a baseline's label)."""
    return LABELS.get(model, model)


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts: NaN as null, NumPy scalars as Python numbers."""
    return [{k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in frame.to_dict("records")]
