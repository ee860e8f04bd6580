"""Stage `aam leaderboard`: every model ranked over every cross-validated task (the benchmark's page).

Input: the cv_summary JSON of each dataset and target (`aam cv-summary`). Statistics in
aam.evaluate.leaderboard. Outputs in --out-dir (published all or none, aam.io.atomic):
  leaderboard.tsv   one row per model, best mean rank first: model, model_kind, mean_rank, n_tasks,
                    the CV mean on each task (a column per dataset/target), and per baseline b:
                    vs_<b>_wins, _losses, _ties (tasks), _sign_p, _wilcoxon_p (over tasks),
                    _significant_wins, _significant_losses (tasks with per-fold Wilcoxon p < 0.05)
  tasks.tsv         one row per task and model: kind, metric, samples, folds, mean, sd, rank
  pairs.tsv         one row per model and baseline: the comparison over tasks
  leaderboard.json  the three tables and Friedman's test
  leaderboard.html  the report's benchmark page (an HTML fragment)
  leaderboard.png   ranks per task and model, the CV means written in
"""

from __future__ import annotations

import argparse
import html
import json
import logging
from pathlib import Path

import pandas as pd

from aam.errors import InputError
from aam.evaluate import plots, summary
from aam.evaluate.baselines import LABELS
from aam.evaluate.leaderboard import leaderboard
from aam.io.atomic import publish_files

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summaries", nargs="+", required=True, help="{dataset}/cv_summary/{target}.json")
    parser.add_argument("--out-dir", required=True, help="the folder to write (results/benchmark)")


def read_summaries(paths: list[str]) -> list[dict]:
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
        line = {"model": _name(row["model"]), "mean rank": summary._fmt(row["mean_rank"], 2),
                "tasks": row["n_tasks"]}
        for task in task_names:
            if (row["model"], task) in cells.index:
                c = cells.loc[(row["model"], task)]
                rank = "" if pd.isna(c["rank"]) else f" ({c['rank']:g})"
                line[task] = summary._mean_sd(c["mean"], c["sd"]) + rank
        ranked.append(line)
    about = tasks.drop_duplicates("task")[["task", "kind", "metric", "n_samples", "n_folds"]].rename(
        columns={"n_samples": "samples", "n_folds": "folds"})
    versus = pairs.assign(model=pairs["model"].map(_name), baseline=pairs["baseline"].map(_name)).rename(
        columns={"n_tasks": "tasks", "mean_difference": "mean difference"}) if len(pairs) else pairs
    friedman = ("Friedman's test over the tasks every model has a score on: "
                f"p = {summary._fmt(test['p'])} ({test['n_tasks']} tasks, {test['n_models']} models)."
                if test["p"] is not None else "")
    return "\n".join([
        '<div class="aam-leaderboard" id="aam-leaderboard">',
        "<h3>Benchmark leaderboard</h3>",
        "<p>Each task is cross-validated with grouped folds (subjects, families or pairs never span "
        "train and test); every model is trained and tested on the same folds. Cells: the mean ± sd "
        "over the folds of the task's metric (AUROC, macro one-vs-rest for several classes; R² for "
        "regression), and in parentheses the model's rank on the task (1 = best). Mean rank: over the "
        "tasks. The baselines choose their hyperparameters by inner cross-validation on each training "
        "fold.</p>",
        summary.html_table(pd.DataFrame(ranked), "leaderboard"),
        "<h4>Each model against each baseline</h4>",
        "<p>Over the tasks: wins, losses and ties of the CV means; the sign test and the Wilcoxon "
        "signed-rank test of the per-task differences; and the tasks where the per-fold Wilcoxon test "
        f"of that task has p &lt; 0.05 ({html.escape('significant wins / losses')}). {friedman}</p>",
        summary.html_table(versus, "leaderboard-pairs"),
        "<h4>Tasks</h4>",
        summary.html_table(about, "leaderboard-tasks"),
        "</div>",
    ]) + "\n"


def _name(model: str) -> str:
    return LABELS.get(model, model)


def run(args: argparse.Namespace) -> None:
    summaries = read_summaries(args.summaries)
    try:
        board, tasks, pairs, test = leaderboard(summaries)
    except ValueError as err:
        raise InputError(str(err)) from None
    document = {"leaderboard": _records(board), "tasks": _records(tasks), "pairs": _records(pairs),
                "friedman": test}
    out = Path(args.out_dir)
    names = ["leaderboard.tsv", "tasks.tsv", "pairs.tsv", "leaderboard.json", "leaderboard.html",
             "leaderboard.png"]
    with publish_files([out / name for name in names]) as files:
        board_tsv, tasks_tsv, pairs_tsv, doc, html_page, png = files
        for frame, path in ((board, board_tsv), (tasks, tasks_tsv), (pairs, pairs_tsv)):
            frame.to_csv(path, sep="\t", index=False, float_format="%.4f")
        doc.write_text(json.dumps(document, indent=2) + "\n")
        html_page.write_text(page(board, tasks, pairs, test), encoding="utf-8")
        plots.plot_leaderboard(tasks, [_name(m) for m in board["model"]], png, order=list(board["model"]))
    for row in board.itertuples():
        log.info("%s: mean rank %s over %d tasks", row.model, summary._fmt(row.mean_rank, 2), row.n_tasks)


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts: NaN as null, NumPy scalars as Python numbers."""
    return [{k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in frame.to_dict("records")]
