"""Stage `aam leaderboard`: every model ranked over every cross-validated task (the benchmark's page).

Input: the cv_summary JSON of each dataset and target (`aam cv-summary`). Statistics in
aam.evaluate.leaderboard. Outputs in --out-dir (published all or none, aam.io.atomic):
  leaderboard.tsv   one row per model, best mean rank first: model, model_kind, mean_rank, n_tasks,
                    the CV mean on each task (a column per dataset/target), and per baseline b:
                    vs_<b>_wins, _losses, _ties (tasks), _sign_p, _wilcoxon_p (over tasks),
                    _significant_wins, _significant_losses (tasks whose corrected t-test over the
                    folds has p < 0.05, aam.evaluate.cv);
                    n_behind and behind: the tasks where the model trails the best baseline by
                    more than 0.02 AUROC or 5 % MAE, each with its shortfall
  tasks.tsv         one row per task and model: kind, metric, samples, folds, mean, sd, rank
  pairs.tsv         one row per model and baseline: the comparison over tasks
  leaderboard.json  the three tables and Friedman's test
  leaderboard.html  the report's benchmark page (an HTML fragment)
  leaderboard.png   ranks per task and model, the CV means written in
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from aam.errors import InputError
from aam.evaluate import plots, summary
from aam.evaluate.leaderboard import leaderboard
from aam.evaluate.leaderboard_page import model_label, page, read_summaries, records
from aam.io.atomic import publish_files

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summaries", nargs="+", required=True, help="{dataset}/cv_summary/{target}.json")
    parser.add_argument("--out-dir", required=True, help="the folder to write (results/benchmark)")


def run(args: argparse.Namespace) -> None:
    summaries = read_summaries(args.summaries)
    try:
        board, tasks, pairs, test = leaderboard(summaries)
    except ValueError as err:
        raise InputError(str(err)) from None
    document = {"leaderboard": records(board), "tasks": records(tasks), "pairs": records(pairs),
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
        plots.plot_leaderboard(tasks, [model_label(m) for m in board["model"]], png,
                               order=list(board["model"]))
    for row in board.itertuples():
        log.info("%s: mean rank %s over %d tasks", row.model, summary._fmt(row.mean_rank, 2), row.n_tasks)
