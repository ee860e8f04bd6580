"""What the per-ASV readout loses where several features share one sequence (read-only).

Why: ``model.asv_readout`` names each ASV by a hash of its sequence (``asv_readout_key:
sequence``), so features with one sequence share one coefficient and their x (presence, or
log(1 + count)) adds up. The benchmark's Greengenes-based studies are closed-reference OTU tables
whose features carry the OTU's 150-nt V4 sequence, and many OTUs share it. A linear model tells
them apart; this measures what that is worth (docs/benchmark.md, "Fourteenth round"). Per task:
the share of the rarefied table's reads in features that share their sequence with another
feature; then, per fold (train + val samples, scored on the test fold), an L2 logistic / ridge
regression with the ``linear_clr`` baseline's grid, chosen by its inner grouped folds
(:mod:`aam.evaluate.baselines`), on:

- ``presence_feature`` / ``presence_sequence``: 1 per feature present / the number of present
  features per sequence (the ``presence`` readout's view keyed by sequence);
- ``log_feature`` / ``log_sequence``: log(1 + count) per feature / its sum per sequence (the
  ``log`` readout's view);
- ``clr_sequence``: the CLR + L2 baseline itself on counts summed per sequence, beside its documented
  score on the features (``clr_feature``).

    python scripts/diagnose_shared_sequences.py results_benchmark kostic claesson

Prints one row per fold and the mean per task (AUROC or R^2, the tasks' primary metric).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import scipy.sparse as sp

from aam.evaluate.baselines import (
    BaselineSettings,
    baseline_estimator,
    estimator_predictions,
    grid,
    inner_folds,
    inner_score,
    nested_fit_predict,
    search_grid,
)
from aam.evaluate.fold_baselines import recorded_fold
from aam.evaluate.metrics import PRIMARY_METRIC, compute_metrics
from aam.io.biom import read_table, table_to_csr

VIEWS = ("presence_feature", "presence_sequence", "log_feature", "log_sequence")


def sequence_map(results: Path, dataset: str) -> tuple[sp.csr_matrix, float, int, int]:
    """(features x sequences 0/1 map over the rarefied table's features, the share of its reads in
    features whose sequence another feature has, its features, its distinct sequences)."""
    counts, _, features = table_to_csr(read_table(str(results / dataset / "rarefied" / "table.biom")))
    cached = pq.read_table(results / dataset / "ingest" / "features.parquet").to_pandas()
    sequence_of = dict(zip(cached["feature_id"], cached["sequence"], strict=True))
    codes, distinct = pd.factorize(pd.Series([sequence_of[f] for f in features]))
    mapping = sp.csr_matrix((np.ones(len(features)), (np.arange(len(features)), codes)),
                            shape=(len(features), len(distinct)))
    shared = np.bincount(codes)[codes] > 1
    reads = np.asarray(counts.sum(axis=0)).ravel()
    return mapping, float(reads[shared].sum() / reads.sum()), len(features), len(distinct)


def nested_l2(x_train, y_train, groups, x_test, task: str, settings: BaselineSettings, classes):
    """The linear_clr baseline's estimator and search on features given as they are (no CLR)."""
    options = settings.options["linear_clr"]

    def model(params: dict):
        return baseline_estimator("linear_clr", task, params, options, settings.seed, settings.n_jobs, True)

    y = np.asarray([str(v) for v in y_train], dtype=object) if task == "classification" else y_train

    def score(params: dict, fit_rows: np.ndarray, val_rows: np.ndarray) -> float | None:
        fitted = model(params).fit(x_train[fit_rows], y[fit_rows])
        pred, proba = estimator_predictions(fitted, x_train[val_rows], task, classes)
        return inner_score(task, y[val_rows], pred, proba, classes)

    splits = inner_folds(groups, y if task == "classification" else None, settings.inner_folds, settings.seed)
    chosen, _ = search_grid(grid("linear_clr", task, options), splits, score)
    return estimator_predictions(model(chosen).fit(x_train, y), x_test, task, classes)


def fold_scores(results: Path, dataset: str, metrics_file: Path, mapping: sp.csr_matrix,
                settings: BaselineSettings) -> dict:
    meta, fold, data = recorded_fold(results, dataset, metrics_file)
    task = meta["task"]
    metric = PRIMARY_METRIC[task]
    row = {"task": dataset, "fold": fold, "clr_feature": meta["models"]["linear_clr"]["test"][metric]}
    fit = nested_fit_predict("linear_clr", data.x_train @ mapping, data.y_train, data.groups,
                             data.x_test @ mapping, task, settings, data.classes)
    row["clr_sequence"] = compute_metrics(task, data.y_test, fit.predictions, fit.proba, data.classes)[metric]
    views = {"presence_feature": lambda x: (x > 0).astype(float),
             "presence_sequence": lambda x: (x > 0).astype(float) @ mapping,
             "log_feature": np.log1p,
             "log_sequence": lambda x: np.log1p(x) @ mapping}
    for name, view in views.items():
        pred, proba = nested_l2(view(data.x_train), data.y_train, data.groups, view(data.x_test), task,
                                settings, data.classes)
        row[name] = compute_metrics(task, data.y_test, pred, proba, data.classes)[metric]
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="the benchmark's results folder")
    parser.add_argument("datasets", nargs="+", help="datasets (folders of RESULTS) to diagnose")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    settings = BaselineSettings.from_dict({"n_jobs": args.threads}, seed=42)
    rows, shares = [], {}
    for dataset in args.datasets:
        mapping, share, n_features, n_sequences = sequence_map(args.results, dataset)
        shares[dataset] = share
        print(f"{dataset}: {n_features} features, {n_sequences} distinct sequences, "
              f"{share:.3f} of the reads in features that share theirs", flush=True)
        for metrics_file in sorted(args.results.glob(f"{dataset}/cv/r*f*/baselines/*/metrics.json")):
            rows.append(fold_scores(args.results, dataset, metrics_file, mapping, settings))
            print("\t".join(str(v if isinstance(v, str) else round(v, 4)) for v in rows[-1].values()),
                  flush=True)
    means = pd.DataFrame(rows).groupby("task")[["clr_feature", "clr_sequence", *VIEWS]].mean()
    means.insert(0, "shared_reads", pd.Series(shares))
    print("\nper task, mean over folds")
    print(means.round(3).to_string())


if __name__ == "__main__":
    main()
