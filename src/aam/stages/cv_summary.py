"""Stage `aam cv-summary`: one target's cross-validation, every AAM run beside every baseline.

Inputs: the fold metrics.json files of `aam evaluate --fold` (``cv/{fold}/eval/{run}/{target}/``,
every run and fold of one dataset and target) and of `aam baselines` (``cv/{fold}/baselines/
{target}/``, every fold). Outputs (statistics in aam.evaluate.cv):
  --out       one row per model (each run; each combination of a run with a baseline, named
              ``<run>+<baseline> (mean)``; each group of runs of --average, averaged after training
              from their predictions.tsv beside the metrics.json, ``<run>+<run> (mean)``,
              aam.evaluate.average_runs; then each baseline): metric, n_folds, mean, sd, the
              value of each fold (columns r0f0, r0f1, ...), per baseline the paired difference to
              it (vs_<baseline>_difference, _wins, _losses, _wilcoxon_p, _sign_p, _corrected_p), the means of
              the secondary metrics and degenerate_folds (folds whose predictions ignored the input)
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
from aam.evaluate.average_runs import averaged_records, parse_groups
from aam.evaluate.cv import fold_scores, summarize
from aam.io.atomic import publish_files

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics", nargs="*", default=[], help="cv/{fold}/eval/{run}/{target}/metrics.json"
    )
    parser.add_argument(
        "--baselines", nargs="*", default=[], help="cv/{fold}/baselines/{target}/metrics.json"
    )
    parser.add_argument(
        "--average", nargs="*", default=[], metavar="RUN,RUN",
        help="runs to average after training, one more model per group (evaluate.average_runs)",
    )
    parser.add_argument("--out", required=True, help="summary table to write")
    parser.add_argument("--json", required=True, help="summary with per-fold values to write")
    parser.add_argument("--plot", required=True, help="per-fold plot to write")


def read_records(paths: list[str], stage: str) -> list[dict]:
    """The metrics.json files of `aam evaluate` (stage "evaluate") or `aam baselines`."""
    records = []
    for path in [p for p in paths if p]:  # an empty list may reach us as one ''
        try:
            m = json.loads(Path(path).read_text())
            _ = (m["test"]["aam"], m["run"]) if stage == "evaluate" else m["models"]
            _ = [(m["test"][key], c["members"], c["method"]) for key, c in (m.get("combined") or {}).items()]
            _ = m["task"], m["target"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise InputError(f"{path}: not an `aam {stage}` metrics.json ({err})") from None
        records.append(m)
    return records


def check_one_target(records: list[dict]) -> None:
    targets = {(m.get("dataset"), m["target"]) for m in records}
    if len(targets) > 1:
        raise InputError(f"metrics of several datasets/targets given: {sorted(map(str, targets))}")


def run(args: argparse.Namespace) -> None:
    paths = [p for p in args.metrics if p]
    records = read_records(paths, "evaluate")
    baselines = read_records(args.baselines, "baselines")
    if not records + baselines:
        raise InputError("no metrics given (--metrics or --baselines)")
    check_one_target(records + baselines)
    averages = averaged_records(parse_groups(args.average), records,
                                [Path(p).with_name("predictions.tsv") for p in paths])
    try:
        scores, task = fold_scores(records, baselines, averages)
    except ValueError as err:
        raise InputError(str(err)) from None
    summary, result = summarize(scores, task)
    first = (records + baselines)[0]
    dataset, target = first.get("dataset"), first["target"]
    result = {"dataset": dataset, "target": target, "classes": first.get("classes"), **result}
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
    for model, m in result["models"].items():
        versus = "; ".join(f"vs {b} {_fmt(v['mean'])} ({v['wins']} wins, {v['losses']} losses, corrected "
                           f"t-test p {_p(v['corrected_p'])}, Wilcoxon p {_p(v['wilcoxon_p'])})"
                           for b, v in m["versus"].items())
        log.info("%s: %s %s +- %s over %d folds; %s", model, result["metric"], _fmt(m["mean"]), _fmt(m["sd"]),
                 m["n_folds"], versus)


def _p(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _fmt(value) -> str:
    return "n/a" if value is None or value != value else f"{value:+.3f}"
