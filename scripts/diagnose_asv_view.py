"""What a linear model gets from what AAM sees, on a cross-validated results folder (read-only).

Why: AAM reads each sample's ``--top`` most abundant ASVs (``data.asv_limit``) as a set of sequences,
without their abundances (docs/benchmark.md, "Tenth round"). If CLR + L2 logistic/ridge regression on
the mere presence of those ASVs scores above AAM on a task, the information is in AAM's input and
the model does not take it up; if only the abundances of the same ASVs score above it, what AAM
lacks is abundance. Per task and fold this refits the benchmark's ``linear_clr`` baseline (its nested
grouped search, the fold's train + val samples, scored on the test fold, exactly as
:mod:`aam.evaluate.fold_baselines` does) on three views of the rarefied table, beside the documented
score on every feature:

- ``top``: the counts of each sample's ``--top`` most abundant features (others 0);
- ``presence``: 1 for those features, 0 elsewhere.

    python scripts/diagnose_asv_view.py results_benchmark kostic claesson [--top 128]

Prints one row per fold and the mean per task (AUROC or R^2, the tasks' primary metric).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from aam.evaluate.baselines import BaselineSettings, nested_fit_predict
from aam.evaluate.fold_baselines import recorded_fold
from aam.evaluate.metrics import PRIMARY_METRIC, compute_metrics


def top_counts(counts: np.ndarray, top: int) -> np.ndarray:
    """Each row's `top` largest counts kept (ties: the first feature), every other set to 0."""
    out = np.zeros_like(counts)
    for i, row in enumerate(counts):
        keep = np.argsort(-row, kind="stable")[:top]
        keep = keep[row[keep] > 0]
        out[i, keep] = row[keep]
    return out


def fold_scores(results: Path, dataset: str, metrics_file: Path, top: int,
                settings: BaselineSettings) -> dict:
    """The fold's documented CLR + L2 score and its refits on the `top` and `presence` views."""
    meta, fold, data = recorded_fold(results, dataset, metrics_file)
    task = meta["task"]
    metric = PRIMARY_METRIC[task]
    row = {"task": dataset, "fold": fold, "all": meta["models"]["linear_clr"]["test"][metric]}
    views = {"top": lambda x: top_counts(x, top),
             "presence": lambda x: (top_counts(x, top) > 0).astype(float)}
    for name, view in views.items():
        fit = nested_fit_predict("linear_clr", view(data.x_train), data.y_train, data.groups,
                                 view(data.x_test), task, settings, data.classes)
        row[name] = compute_metrics(task, data.y_test, fit.predictions, fit.proba, data.classes)[metric]
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="the benchmark's results folder")
    parser.add_argument("datasets", nargs="+", help="datasets (folders of RESULTS) to diagnose")
    parser.add_argument("--top", type=int, default=128, help="ASVs per sample AAM reads (data.asv_limit)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    settings = BaselineSettings.from_dict({"n_jobs": args.threads}, seed=42)
    rows = []
    for dataset in args.datasets:
        for metrics_file in sorted(args.results.glob(f"{dataset}/cv/r*f*/baselines/*/metrics.json")):
            rows.append(fold_scores(args.results, dataset, metrics_file, args.top, settings))
            print("\t".join(str(v if isinstance(v, str) else round(v, 4)) for v in rows[-1].values()),
                  flush=True)
    frame = pd.DataFrame(rows)
    print(f"\nCLR + L2 per task (mean over folds): every feature, each sample's top {args.top}, "
          "their presence")
    print(frame.groupby("task")[["all", "top", "presence"]].mean().round(3).to_string())


if __name__ == "__main__":
    main()
