"""Stage `aam cv-summary`: one target's cross-validation, every AAM run beside the random forest.

Input: the fold metrics.json files of `aam evaluate --fold` (``cv/{fold}/eval/{run}/{target}/``),
every run and fold of one dataset and target. Outputs (statistics in aam.evaluate.cv):
  --out       one row per model (each run, then ``random_forest``): metric, n_folds, mean, sd, the
              value of each fold (columns r0f0, r0f1, ...), for runs the paired difference to the
              forest (difference_mean, difference_sd, wins, losses, wilcoxon_p, sign_p), the means
              of the secondary metrics and degenerate_folds (folds whose predictions ignored the input)
  --json      the same with the per-fold values and each degenerate fold's reason
  --plot      one point per fold per model, lines joining a fold
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from aam.errors import InputError
from aam.evaluate import plots
from aam.evaluate.cv import FOREST, fold_scores, summarize
from aam.io.atomic import publish_files

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics", nargs="+", required=True, help="cv/{fold}/eval/{run}/{target}/metrics.json"
    )
    parser.add_argument("--out", required=True, help="summary table to write")
    parser.add_argument("--json", required=True, help="summary with per-fold values to write")
    parser.add_argument("--plot", required=True, help="per-fold plot to write")


def read_records(paths: list[str]) -> list[dict]:
    records = []
    for path in paths:
        try:
            m = json.loads(Path(path).read_text())
            _ = m["test"]["aam"], m["test"]["random_forest"], m["run"], m["task"], m["target"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise InputError(f"{path}: not an `aam evaluate` metrics.json ({err})") from None
        records.append(m)
    targets = {(m.get("dataset"), m["target"]) for m in records}
    if len(targets) > 1:
        raise InputError(f"metrics of several datasets/targets given: {sorted(map(str, targets))}")
    return records


def run(args: argparse.Namespace) -> None:
    records = read_records(args.metrics)
    try:
        scores, task = fold_scores(records)
    except ValueError as err:
        raise InputError(str(err)) from None
    summary, result = summarize(scores, task)
    dataset, target = records[0].get("dataset"), records[0]["target"]
    result = {"dataset": dataset, "target": target, **result}
    wide = summary.set_index("model")[result["folds"]].T.astype(float)
    with publish_files([args.out, args.json, args.plot]) as (out, json_out, plot):  # all or none
        summary.to_csv(out, sep="\t", index=False, float_format="%.4f")
        json_out.write_text(json.dumps(result, indent=2) + "\n")
        plots.plot_cv_folds(
            wide,
            result["metric"],
            task,
            plot,
            title=f"{dataset}: {target}, test {result['metric']} over {len(result['folds'])} folds",
        )
    for row in summary.itertuples():
        extra = (
            ""
            if row.model == FOREST
            else (
                f"; vs forest {_fmt(row.difference_mean)} ({row.wins} wins, {row.losses} losses), "
                f"Wilcoxon p {row.wilcoxon_p}, sign test p {row.sign_p}"
            )
        )
        log.info(
            "%s: %s %s +- %s over %d folds%s",
            row.model,
            row.metric,
            _fmt(row.mean),
            _fmt(row.sd),
            row.n_folds,
            extra,
        )


def _fmt(value) -> str:
    return "n/a" if value is None or value != value else f"{value:+.3f}"
