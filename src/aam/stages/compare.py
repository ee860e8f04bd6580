"""Compare the evaluated runs of a dataset: one table and one bar chart, the baselines beside each run.

Input: the metrics.json files written by `aam evaluate` (eval/{run}/{target}/metrics.json).
Output: comparison.tsv, one row per (target, run), sorted by target then run, with columns
  target, task, run, n_test, metric (the primary metric: AUROC or R^2), aam, one column per
  baseline (random_forest, linear_clr, hist_gradient_boosting: those evaluated), best_baseline
  (the baseline with the highest value), difference (aam - best baseline), degenerate (the
  model's degenerate_predictions: null, or why its test predictions ignore the input), then every
  test metric of each model as <model>_<metric>;
and comparison.png, the primary metric per run beside the baselines, one panel per target.
The baselines are fit once per split and target, so their numbers repeat across runs of a target.
This is the single split's table; with cross-validation (evaluate.cv) the summaries are
cv_summary/{target}/summary.tsv and the leaderboard.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from aam.errors import InputError
from aam.evaluate import plots
from aam.evaluate.baselines import BASELINES
from aam.evaluate.metrics import PRIMARY_METRIC, metric_names
from aam.io.atomic import publish_files

log = logging.getLogger(__name__)

COLUMNS = ["target", "task", "run", "n_test", "metric", "aam", *BASELINES, "best_baseline", "difference",
           "degenerate"]


def comparison_table(metrics_files: list[str | Path]) -> pd.DataFrame:
    rows = []
    for path in metrics_files:
        path = Path(path)
        try:
            m = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: cannot read evaluation metrics ({err})") from err
        try:
            task, scores = m["task"], m["test"]
            target, run = m["target"], m["run"]
            _ = scores["aam"]
        except (KeyError, TypeError) as err:
            raise InputError(f"{path}: not an `aam evaluate` metrics.json (missing {err})") from err
        primary = PRIMARY_METRIC[task]
        names = metric_names(task)
        row = {"target": target, "task": task, "run": run, "n_test": m.get("n_test"), "metric": primary,
               "aam": scores["aam"].get(primary), "degenerate": m.get("degenerate_predictions")}
        baselines = {b: scores[b].get(primary) for b in BASELINES if b in scores}
        row.update(baselines)
        scored = {b: v for b, v in baselines.items() if v is not None}
        if scored:
            best = max(scored, key=scored.get)
            row["best_baseline"] = best
            row["difference"] = None if row["aam"] is None else row["aam"] - scored[best]
        for model in ["aam", *baselines]:
            for name in names:
                row[f"{model}_{name}"] = scores[model].get(name)
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    if df.duplicated(["target", "run"]).any():
        dup = df.loc[df.duplicated(["target", "run"]), ["target", "run"]].iloc[0].tolist()
        raise InputError(f"two metrics files for target/run {dup}")
    columns = [c for c in COLUMNS if c in df.columns]
    extra = [c for c in df.columns if c not in columns]
    return df[columns + extra].sort_values(["target", "run"], kind="stable").reset_index(drop=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", nargs="+", required=True, help="eval/{run}/{target}/metrics.json files")
    parser.add_argument("--out", required=True, help="comparison.tsv to write")
    parser.add_argument("--plot", required=True, help="comparison.png to write")


def run(args: argparse.Namespace) -> None:
    table = comparison_table(args.metrics)
    with publish_files([args.out, args.plot]) as (out, plot):  # both or neither
        table.to_csv(out, sep="\t", index=False, float_format="%.4f")
        plots.plot_comparison(table, plot)
    for row in table.itertuples():
        log.info("%s / %s: %s AAM %s, best baseline %s (%s)", row.target, row.run, row.metric, row.aam,
                 getattr(row, "best_baseline", None), getattr(row, "difference", None))
