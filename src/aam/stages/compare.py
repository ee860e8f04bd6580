"""Compare the evaluated runs of a dataset: one table and one bar chart, the forest beside each run.

Input: the metrics.json files written by `aam evaluate` (eval/{run}/{target}/metrics.json).
Output: comparison.tsv, one row per (target, run), sorted by target then run, with columns
  target, task, run, n_test, metric (the primary metric: AUROC or R^2), aam, random_forest,
  difference (aam - random_forest), then every test metric of both models as aam_<m> and rf_<m>;
a column ``degenerate`` (the model's degenerate_predictions: null, or why its test predictions
ignore the input); with ``--cv-summaries`` (the cv_summary JSON files) the cross-validation columns
cv_n_folds, cv_aam_mean, cv_aam_sd, cv_rf_mean, cv_rf_sd, cv_difference, cv_wilcoxon_p, cv_sign_p;
and comparison.png, the primary metric per run beside the forest, one panel per target.
The forest is trained and tested on the same split for every run, so its numbers repeat across runs
of one target; they differ only if runs were evaluated on different test samples.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from aam.errors import InputError
from aam.evaluate import plots
from aam.evaluate.metrics import PRIMARY_METRIC, metric_names
from aam.io.atomic import publish_files

log = logging.getLogger(__name__)


def comparison_table(metrics_files: list[str | Path]) -> pd.DataFrame:
    rows = []
    for path in metrics_files:
        path = Path(path)
        try:
            m = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: cannot read evaluation metrics ({err})") from err
        try:
            task = m["task"]
            ours, forest = m["test"]["aam"], m["test"]["random_forest"]
            target, run = m["target"], m["run"]
        except (KeyError, TypeError) as err:
            raise InputError(f"{path}: not an `aam evaluate` metrics.json (missing {err})") from err
        primary = PRIMARY_METRIC[task]
        names = metric_names(task)
        a, f = ours.get(primary), forest.get(primary)
        row = {
            "target": target,
            "task": task,
            "run": run,
            "n_test": m.get("n_test"),
            "metric": primary,
            "aam": a,
            "random_forest": f,
            "difference": None if a is None or f is None else a - f,
            "degenerate": m.get("degenerate_predictions"),
        }
        for name in names:
            row[f"aam_{name}"] = ours.get(name)
        for name in names:
            row[f"rf_{name}"] = forest.get(name)
        rows.append(row)
    columns = ["target", "task", "run", "n_test", "metric", "aam", "random_forest", "difference",
               "degenerate"]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=columns)
    if df.duplicated(["target", "run"]).any():
        dup = df.loc[df.duplicated(["target", "run"]), ["target", "run"]].iloc[0].tolist()
        raise InputError(f"two metrics files for target/run {dup}")
    extra = [c for c in df.columns if c not in columns]
    return df[columns + extra].sort_values(["target", "run"], kind="stable").reset_index(drop=True)


CV_COLUMNS = ("cv_n_folds", "cv_aam_mean", "cv_aam_sd", "cv_rf_mean", "cv_rf_sd", "cv_difference",
              "cv_wilcoxon_p", "cv_sign_p")


def add_cv_columns(table: pd.DataFrame, summaries: list[str | Path]) -> pd.DataFrame:
    """Each (target, run) row gains its cross-validation result from the cv_summary JSON files."""
    values: dict[tuple[str, str], dict] = {}
    for path in summaries:
        try:
            s = json.loads(Path(path).read_text())
            forest = s["models"]["random_forest"]
            runs = {k: v for k, v in s["models"].items() if k != "random_forest"}
            for run, m in runs.items():
                versus = m["versus_forest"]
                values[(s["target"], run)] = {
                    "cv_n_folds": m["n_folds"], "cv_aam_mean": m["mean"], "cv_aam_sd": m["sd"],
                    "cv_rf_mean": forest["mean"], "cv_rf_sd": forest["sd"], "cv_difference": versus["mean"],
                    "cv_wilcoxon_p": versus["wilcoxon_p"], "cv_sign_p": versus["sign_p"],
                }
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise InputError(f"{path}: not an `aam cv-summary` JSON ({err})") from err
    table = table.copy()
    for column in CV_COLUMNS:
        table[column] = [values.get((t, r), {}).get(column) for t, r in zip(table["target"], table["run"],
                                                                               strict=True)]
    return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", nargs="+", required=True, help="eval/{run}/{target}/metrics.json files")
    parser.add_argument("--cv-summaries", nargs="*", default=[],
                        help="cv_summary/{target}/summary.json files (cross-validation columns)")
    parser.add_argument("--out", required=True, help="comparison.tsv to write")
    parser.add_argument("--plot", required=True, help="comparison.png to write")


def run(args: argparse.Namespace) -> None:
    table = comparison_table(args.metrics)
    summaries = [p for p in args.cv_summaries if p]  # an empty list may reach us as one ''
    if summaries:
        table = add_cv_columns(table, summaries)
    with publish_files([args.out, args.plot]) as (out, plot):  # both or neither
        table.to_csv(out, sep="\t", index=False, float_format="%.4f")
        plots.plot_comparison(table, plot)
    for row in table.itertuples():
        log.info("%s / %s: %s AAM %s vs random forest %s", row.target, row.run, row.metric, row.aam,
                 row.random_forest)
