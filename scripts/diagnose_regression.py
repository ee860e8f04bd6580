"""Diagnose AAM regression runs of a cross-validated results folder (read-only).

Why: on the benchmark's regression tasks AAM scored R^2 below predicting the mean although its
predictions correlate with the target (docs/benchmark.md, "Regression: diagnosis"). This prints,
per fold and run, what separates the two: the spread of the test predictions against the targets',
Pearson r, the mean shift, the epoch early stopping chose and the range of validation R^2 over the
epochs, the offset of the mean output on the training samples (the head replayed on the saved
sample embeddings), the test R^2 after ``finetune.calibrate``'s rule (same replay), and whether the
signal is there at all: ridge regression on the fine-tuned embeddings, on CLR of every feature, and
on CLR of each sample's ``--top`` most abundant features (what ``asv_limit`` lets the model see).
Baselines are read from the same folds, so every number has its reference beside it.

    python scripts/diagnose_regression.py results_benchmark claesson age AGE aam [run ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import biom
import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score

from aam.io.model_files import load_model
from aam.training.calibration import fit_calibration

ALPHAS = np.logspace(-2, 6, 17)


def clr(counts: np.ndarray) -> np.ndarray:
    """Centred log-ratio with a pseudocount of 0.5 (what the CLR + ridge baseline reads)."""
    logs = np.log(counts + 0.5)
    return logs - logs.mean(1, keepdims=True)


def ridge_r2(x: np.ndarray, y: np.ndarray, test: np.ndarray) -> float:
    model = RidgeCV(alphas=ALPHAS).fit(x[~test], y[~test])
    return float(r2_score(y[test], model.predict(x[test])))


def fold_row(fold: Path, run: str, target: str, age: pd.Series, table: pd.DataFrame, top: int) -> dict | None:
    d = fold / "models" / run / "finetune" / target
    if not (fold / "eval" / run / target / "metrics.json").exists():
        return None
    model, meta = load_model(d)
    if not hasattr(model, "target_head"):
        raise SystemExit(f"{d}: an ensemble; replay its members one by one")
    preds = pd.read_csv(d / "predictions.tsv", sep="\t", dtype={"sample": str})
    test = preds[preds["split"] == "test"]
    hist = pd.read_csv(d / "metrics.csv").dropna(subset=["val/loss"]).reset_index(drop=True)
    best = int(hist["val/loss"].idxmin())
    emb = pd.read_parquet(d / "embeddings.parquet")
    x = np.stack(emb["embedding"].to_numpy())
    split = emb["split"].to_numpy()
    y = age.reindex(emb["id"]).to_numpy(float)
    with torch.no_grad():
        z = model.target_head(torch.from_numpy(x).float()).squeeze(-1).double().numpy()
    mean, sd = meta["target_mean"], meta["target_std"]
    is_test = split == "test"
    cal = fit_calibration(z[split == "train"], z[split == "val"], (y[split == "val"] - mean) / sd)
    calibrated = (cal.scale * (z[is_test] - cal.centre)) * sd + mean
    counts = table.reindex(emb["id"]).to_numpy(float)
    ranks = np.argsort(np.argsort(-counts, axis=1, kind="stable"), axis=1)
    baselines = json.loads((fold / "baselines" / target / "metrics.json").read_text())["models"]
    return {
        "run": run, "fold": fold.name,
        "r2": r2_score(test["y_true"], test["y_pred"]),
        "r": np.corrcoef(test["y_true"], test["y_pred"])[0, 1],
        "sd_ratio": test["y_pred"].std(ddof=0) / test["y_true"].std(ddof=0),
        "shift": test["y_pred"].mean() - test["y_true"].mean(),
        "best_epoch": int(hist.loc[best, "epoch"]),
        "val_r2_min": hist["val/r2"].min(), "val_r2_max": hist["val/r2"].max(),
        "train_offset_sd": cal.centre,
        "r2_calibrated": r2_score(y[is_test], calibrated),
        "r2_mean": r2_score(y[is_test], np.full(is_test.sum(), mean)),
        "ridge_embedding": ridge_r2(x, y, is_test),
        "ridge_clr": ridge_r2(clr(counts), y, is_test),
        f"ridge_clr_top{top}": ridge_r2(clr(np.where(ranks < top, counts, 0)), y, is_test),
        **{f"base_{k}": v["test"]["r2"] for k, v in baselines.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("dataset")
    parser.add_argument("target", help="the target's name (folder), e.g. age")
    parser.add_argument("column", help="its metadata column, e.g. AGE")
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--top", type=int, default=128, help="the asv_limit to mimic (default 128)")
    args = parser.parse_args()
    root = args.results / args.dataset
    samples = pd.read_parquet(root / "ingest" / "samples.parquet").set_index("sample")
    age = pd.to_numeric(samples[args.column], errors="coerce")
    rarefied = biom.load_table(str(root / "rarefied" / "table.biom"))
    table = pd.DataFrame(rarefied.matrix_data.T.toarray(), index=rarefied.ids(),
                         columns=rarefied.ids("observation"))
    present = (table > 0).sum(axis=1)
    top_share = np.sort(table.to_numpy(), axis=1)[:, ::-1][:, : args.top].sum(1) / table.sum(axis=1)
    print(f"{args.dataset}: {len(table)} samples, features per sample median {present.median():.0f}, "
          f"{(present > args.top).mean():.0%} above {args.top}; reads in the top {args.top}: "
          f"median {np.median(top_share):.3f}")
    rows = [row for run in args.runs for fold in sorted((root / "cv").glob("r*f*"))
            if (row := fold_row(fold, run, args.target, age, table, args.top)) is not None]
    if not rows:
        raise SystemExit(f"no evaluated fold of {args.runs} under {root / 'cv'}")
    frame = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    print(frame.round(3).to_string(index=False))
    print(frame.drop(columns="fold").groupby("run").mean().round(3).T.to_string())


if __name__ == "__main__":
    main()
