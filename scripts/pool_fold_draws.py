"""The benchmark's leaderboard over several fold draws (runs with other `seed:`s), their folds pooled.

Why: a small task's margin moves with the fold draw by more than issue 24's 0.02 AUROC; pooling
the repeats of several draws estimates each task's gap more precisely than any one draw
(aam.evaluate.pooled_draws says how, and what is refused). Each draw is a benchmark results folder
(`make benchmark SEED=N` writes results_benchmark_sN; a config of `seed: N` and `results:` merged
after config/benchmark.yaml does the same); nothing is trained or fitted here.

    .venv/bin/python scripts/pool_fold_draws.py results_benchmark_s2026 results_benchmark_s2027 \\
        --out-dir pooled_s2026_s2027

Reads `<results>/<dataset>/cv_summary/<target>/summary.json` and the draws' partitions
`<results>/<dataset>/cv/split/r<i>/folds.tsv` (two draws sharing a repeat's folds are refused).
Writes leaderboard.tsv, tasks.tsv and pairs.tsv as `aam leaderboard` does, and prints each task's
pooled means, the leaderboard, and each model's shortfalls beyond the margins. With
`--pseudo-draws R` it also writes margins.tsv: how often one draw of R repeats, taken from the
pooled repeats, finds each model within the margins on every task (aam.evaluate.pseudo_draws).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from aam.errors import InputError
from aam.evaluate.leaderboard import leaderboard, task_id
from aam.evaluate.leaderboard_page import read_summaries
from aam.evaluate.pooled_draws import check_distinct_draws, pool_draws, repeat_partitions
from aam.evaluate.pseudo_draws import margin_shares
from aam.io.atomic import publish_files


def read_draw(results: Path) -> list[dict]:
    """The cv-summaries of one results folder, in task order; a file that is not one exits in one
    line naming it."""
    paths = sorted(results.glob("*/cv_summary/*/summary.json"))
    if not paths:
        sys.exit(f"{results}: no */cv_summary/*/summary.json (not a benchmark results folder?)")
    try:
        return read_summaries([str(p) for p in paths])
    except InputError as err:
        sys.exit(str(err))


def draw_partitions(results: Path, dataset: str) -> list:
    """Every repeat partition of one dataset's folds in one results folder."""
    out = []
    for folds in sorted((results / dataset / "cv" / "split").glob("r*/folds.tsv")):
        out.extend(repeat_partitions(pd.read_csv(folds, sep="\t", dtype={"sample": str})).values())
    if not out:
        sys.exit(f"{results / dataset / 'cv' / 'split'}: no r*/folds.tsv to check the draws against")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="benchmark results folders, one per draw")
    parser.add_argument("--out-dir", type=Path, required=True, help="where to write the pooled tables")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="MODEL",
                        help="rows left out of the ranking, e.g. 'aam+random_forest (mean)'")
    parser.add_argument("--pseudo-draws", type=int, metavar="R",
                        help="also judge every draw of R of the pooled repeats (the benchmark's: 2)")
    args = parser.parse_args()
    if len(args.results) < 2:
        sys.exit("pooling needs at least two results folders")
    labels = [p.resolve().name for p in args.results]
    if len(set(labels)) != len(labels):
        sys.exit(f"two results folders share a name ({labels}): each names its draw")
    draws = {label: [{**s, "models": {m: v for m, v in s["models"].items() if m not in args.exclude}}
                     for s in read_draw(p)]
             for label, p in zip(labels, args.results, strict=True)}
    try:
        for s in draws[labels[0]]:
            check_distinct_draws({label: draw_partitions(p, s["dataset"])
                                  for label, p in zip(labels, args.results, strict=True)}, task_id(s))
        pooled = pool_draws(draws)
        board, tasks, pairs, friedman = leaderboard(pooled)
        tables = {"leaderboard.tsv": board, "tasks.tsv": tasks, "pairs.tsv": pairs}
        if args.pseudo_draws is not None:
            tables["margins.tsv"] = margin_shares(pooled, args.pseudo_draws)
    except ValueError as err:
        sys.exit(str(err))
    with publish_files([args.out_dir / n for n in tables]) as files:
        for frame, path in zip(tables.values(), files, strict=True):
            frame.to_csv(path, sep="\t", index=False, float_format="%.4f")
    folds = {task_id(s): len(s["folds"]) for s in pooled}
    print(f"{len(labels)} draws ({', '.join(labels)}); folds per task: {sorted(set(folds.values()))}")
    wide = tasks.pivot(index="task", columns="model", values="mean").loc[list(folds)]
    print(wide[list(board["model"])].to_string(float_format=lambda v: f"{v:.3f}"))
    print()
    compact = board[["model", "mean_rank"]].copy()
    for b in dict.fromkeys(pairs["baseline"] if len(pairs) else []):
        won = [f"vs_{b}_{k}" for k in ("wins", "losses", "significant_wins", "significant_losses")]
        compact[f"vs {b}: W-L (significant)"] = [
            "" if pd.isna(row[won[0]]) else
            f"{row[won[0]]:.0f}-{row[won[1]]:.0f} ({row[won[2]]:.0f}-{row[won[3]]:.0f})"
            for row in board.to_dict("records")]
    compact["behind the best baseline"] = board["behind"].fillna("")
    print(compact.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if friedman["p"] is not None:
        print(f"Friedman p {friedman['p']:.3g} over {friedman['n_tasks']} tasks")
    if "margins.tsv" in tables:
        margins = tables["margins.tsv"]
        print(f"\nWithin the margins on one draw of {args.pseudo_draws} repeats "
              f"({margins['pseudo_draws'].iloc[0]} drawn from the pooled repeats; actual draws in brackets):")
        shown = margins[["model", "within_every_task"]].copy()
        shown["actual draws"] = [f"{w}/{n}" for w, n in zip(margins["actual_within"], margins["actual_draws"],
                                                              strict=True)]
        for t in folds:
            shown[t] = margins[t]
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
