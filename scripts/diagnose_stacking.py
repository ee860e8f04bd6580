"""Would learned weights beat the fixed 1/2 of AAM averaged with a baseline? (read-only diagnosis)

Why: `evaluate.combine` averages a run's and a baseline's test predictions with fixed weights
(aam.evaluate.combine), because learning them needs predictions of both models on samples neither
trained on. Each fold has such samples: its validation split, which AAM never trains on (a
classifier keeps its last epoch's weights; a regressor's best epoch and calibration are chosen on
it, so there its validation predictions flatter AAM a little). Per fold, this fits the baseline with
the hyperparameters the benchmark chose for it (its ``metrics.json``) on the training split alone,
predicts the validation split, reads the run's validation predictions (its fine-tuning's
``predictions.tsv``), and chooses the weight ``w`` of ``w AAM + (1 - w) baseline`` on a 0.05 grid by
the validation log loss (classification) or squared error (regression), ties to the weight nearest
1/2. The test fold's blend with that ``w`` is scored beside AAM, the baseline and the fixed mean, all
from the evaluation's ``predictions.tsv``; nothing of the test fold chooses anything.

    python scripts/diagnose_stacking.py results_benchmark --baseline linear_clr --run aam
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from aam.data.split import fold_file
from aam.evaluate.baselines import BaselineSettings, FittedBaseline
from aam.evaluate.fold_baselines import fold_data
from aam.evaluate.metrics import PRIMARY_METRIC, compute_metrics
from aam.io.biom import read_table, table_to_csr

WEIGHTS = np.round(np.linspace(0.0, 1.0, 21), 2)


def choose_weight(loss) -> float:
    """The grid weight of least `loss(w)`; ties (to 1e-12) go to the weight nearest 1/2."""
    losses = np.array([loss(w) for w in WEIGHTS])
    tied = WEIGHTS[losses <= losses.min() + 1e-12]
    return float(tied[np.argmin(np.abs(tied - 0.5))])


def fold_row(results: Path, metrics_file: Path, baseline: str, run: str, threads: int) -> dict | None:
    fold_dir, target = metrics_file.parents[2], metrics_file.parent.name
    dataset = fold_dir.parents[1].name
    tuned = fold_dir / "models" / run / "finetune" / target / "predictions.tsv"
    evaluated = fold_dir / "eval" / run / target / "predictions.tsv"
    if not (tuned.exists() and evaluated.exists()):
        return None
    meta = json.loads(metrics_file.read_text())
    task, classes = meta["task"], meta["classes"]
    table = str(results / dataset / "rarefied" / "table.biom")
    splits = str(results / dataset / fold_file(fold_dir.name))
    samples_file = str(results / dataset / "ingest" / "samples.parquet")
    classes_arg = json.dumps(classes) if task == "classification" else ""
    data = fold_data(table, splits, samples_file, meta["column"], task, classes_arg,
                     meta.get("positive_class") or "", ("train",))
    settings = BaselineSettings.from_dict({"n_jobs": threads}, seed=42)
    model = FittedBaseline(baseline, task, meta["models"][baseline]["params"], settings.options[baseline],
                           classes, settings.seed, threads).fit(data.x_train, data.y_train)
    val = pd.read_csv(tuned, sep="\t", dtype={"sample": str})
    val = val[val["split"] == "val"]
    counts, samples, _ = table_to_csr(read_table(table))
    row_of = {s: i for i, s in enumerate(samples)}
    base_pred, base_proba = model.predict(counts.tocsr()[[row_of[s] for s in val["sample"]]].toarray())
    if task == "classification":
        aam_proba = val[[f"prob_{c}" for c in classes]].to_numpy(float)
        truth = np.array([classes.index(str(y)) for y in val["y_true"]])

        def loss(w: float) -> float:
            p = np.clip(w * aam_proba + (1 - w) * base_proba, 1e-6, 1.0)
            return float(-np.log(p[np.arange(truth.size), truth]).mean())
    else:
        aam_pred, truth = val["y_pred"].to_numpy(float), val["y_true"].to_numpy(float)

        def loss(w: float) -> float:
            return float(np.mean((w * aam_pred + (1 - w) * base_pred - truth) ** 2))
    w = choose_weight(loss)
    test = pd.read_csv(evaluated, sep="\t", dtype={"sample": str})
    metric = PRIMARY_METRIC[task]

    def score(weight: float) -> float:
        if task == "classification":
            proba = (weight * test[[f"aam_prob_{c}" for c in classes]].to_numpy(float)
                     + (1 - weight) * test[[f"{baseline}_prob_{c}" for c in classes]].to_numpy(float))
            pred = np.asarray(classes, dtype=object)[proba.argmax(1)]
            return compute_metrics(task, test["y_true"].astype(str).to_numpy(), pred, proba, classes)[metric]
        pred = (weight * test["aam_pred"].to_numpy(float)
                + (1 - weight) * test[f"{baseline}_pred"].to_numpy(float))
        return compute_metrics(task, test["y_true"].to_numpy(float), pred)[metric]

    return {"task": dataset, "fold": fold_dir.name, "n_val": len(val), "w": w, run: score(1.0),
            baseline: score(0.0), "mean": score(0.5), "stacked": score(w)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="the benchmark's results folder")
    parser.add_argument("--baseline", default="linear_clr")
    parser.add_argument("--run", default="aam", help="the AAM run (aam.runs) to combine")
    parser.add_argument("--datasets", nargs="*", help="only these datasets (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    rows = []
    for metrics_file in sorted(args.results.glob("*/cv/r*f*/baselines/*/metrics.json")):
        if args.datasets and metrics_file.parents[4].name not in args.datasets:
            continue
        row = fold_row(args.results, metrics_file, args.baseline, args.run, args.threads)
        if row is not None:
            rows.append(row)
            print("\t".join(str(v if isinstance(v, str) else round(v, 4)) for v in row.values()), flush=True)
    frame = pd.DataFrame(rows)
    columns = ["n_val", "w", args.run, args.baseline, "mean", "stacked"]
    print(f"\nper task, mean over folds: validation samples, chosen weight of {args.run}, "
          "and the test scores")
    print(frame.groupby("task")[columns].mean().round(3).to_string())
    wins = (frame.groupby("task")["stacked"].mean() > frame.groupby("task")["mean"].mean()).sum()
    print(f"stacked above the fixed mean on {wins} of {frame['task'].nunique()} tasks")


if __name__ == "__main__":
    main()
