"""Which equal-weight means of AAM and the baselines rank best, and does AAM add to them? (read-only)

Why: `evaluate.combine` scores AAM's mean with baselines (aam.evaluate.combine), always with AAM
among the members. Whether a combination ranks first because of AAM or merely because averaging
two baselines already helps needs the means without AAM too. This reads every fold's evaluation
(``<dataset>/cv/<fold>/eval/<run>/<target>/predictions.tsv``, which holds AAM's and each baseline's
test predictions side by side) and scores each of {run, forest, CLR + L2, HistGB} and every
equal-weight mean of two or more of them with the evaluation's own metrics (aam.evaluate.metrics),
on the same folds.
Printed: per task, the CV mean of the primary metric (AUROC; R² for regression) and each model's
mean rank over the tasks among all the rows; then each model's gap to the best single baseline on
each task (the metric; for regression also the MAE as a share of the lowest baseline MAE, the
leaderboard's rule); nothing is fitted.

    python scripts/diagnose_combinations.py results_benchmark --run aam
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from aam.evaluate.baselines import BASELINES
from aam.evaluate.combine import mean_outputs
from aam.evaluate.metrics import PRIMARY_METRIC, compute_metrics


def fold_scores(predictions: Path, run: str) -> list[dict]:
    """Every combination's primary metric and MAE (regression) on one fold's test samples."""
    pred = pd.read_csv(predictions, sep="\t", dtype={"sample": str})
    pred = pred[pred["split"] == "test"]
    classes = [c.removeprefix("aam_prob_") for c in pred.columns if c.startswith("aam_prob_")]
    task = "classification" if classes else "regression"
    y = pred["y_true"].astype(str if classes else float).to_numpy()
    members = {"aam": run, **{b: b for b in BASELINES if f"{b}_pred" in pred}}
    outputs = {name: (pred[f"{name}_pred"].to_numpy(),
                      pred[[f"{name}_prob_{c}" for c in classes]].to_numpy(float) if classes else None)
               for name in members}
    rows = []
    for size in range(1, len(members) + 1):
        for group in itertools.combinations(members, size):
            mean = mean_outputs(task, [outputs[m] for m in group], classes)
            scores = compute_metrics(task, y, *mean, classes)
            rows.append({"model": "+".join(members[m] for m in group),
                         "score": scores[PRIMARY_METRIC[task]], "mae": scores.get("mae", np.nan)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the benchmark's results folder")
    parser.add_argument("--run", default="aam", help="the AAM run (of aam.runs)")
    args = parser.parse_args()
    rows = []
    for predictions in sorted(args.results.glob(f"*/cv/r*f*/eval/{args.run}/*/predictions.tsv")):
        task = f"{predictions.parents[5].name}/{predictions.parent.name}"
        rows += [{"task": task, **row} for row in fold_scores(predictions, args.run)]
    if not rows:
        raise SystemExit(f"{args.results}: no evaluations of run {args.run!r} under */cv/*/eval/")
    frame = pd.DataFrame(rows).groupby(["task", "model"], sort=False).mean(numeric_only=True)
    means = frame["score"].unstack("task")
    tasks = list(means.columns)
    means["mean_rank"] = means[tasks].rank(ascending=False).mean(axis=1)
    order = means.sort_values("mean_rank").index
    pd.set_option("display.width", 250)
    print(means.loc[order].round(3).to_string())
    baselines = [b for b in BASELINES if b in means.index]
    best = means.loc[baselines, tasks].idxmax()
    gaps = pd.DataFrame({t: means[t] - means.loc[best[t], t] for t in tasks})
    print("\nthe metric minus the best single baseline's (that baseline: "
          + ", ".join(f"{t} {best[t]}" for t in tasks) + ")")
    print(gaps.loc[order].round(3).to_string())
    mae = frame["mae"].unstack("task").dropna(axis=1, how="all")
    if not mae.empty:
        print("\nregression: MAE over the lowest baseline MAE, minus 1")
        share = mae / mae.loc[baselines].min() - 1
        print(share.loc[order].round(3).to_string())


if __name__ == "__main__":
    main()
